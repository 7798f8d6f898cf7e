"""Square Attack (Andriushchenko et al. 2020): strength, seeding, queries, EOT rule."""

import importlib

import time

import numpy as np
import pytest
import tensorflow as tf

from rls_tf.attacks.square import square
from tests.attacks.conftest import linear_model_fn
from tests.attacks.conftest import two_linear_models_fn

square_module = importlib.import_module("rls_tf.attacks.square")  # the package exports the function

EPS = 0.5  # [-1, 1] pixels: 0.25 in [0, 1] units, as in test_strength.py.
# The smallest round budget that leaves the victim below 10% with a margin:
# accuracy 17-18% at 150 queries, 8-14% at 200, 5-6% at 250, 3-6% at 300 and
# 1-3% at 400 (seeds 0, 1, 2; the median successful example needs ~35).
STRENGTH_QUERIES = 400


def unbreakable_model(num_pixels, num_classes=3):
    """A linear model whose class 0 wins by ~100 for any x in [-1, 1]."""
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(num_classes, num_pixels)).astype(np.float32) * 0.01
    bias = np.zeros(num_classes, np.float32)
    bias[0] = 100.0
    return linear_model_fn(weights, bias)


# -- the schedule ----------------------------------------------------------------


def test_p_schedule_halves_at_the_papers_iterations():
    p = [square_module.p_selection(0.8, it, 10000) for it in
         (0, 10, 11, 50, 51, 200, 201, 500, 501, 1000, 1001, 2000, 2001, 4000, 4001,
          6000, 6001, 8000, 8001, 9999)]
    halvings = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9]
    assert p == [0.8 / 2**h for h in halvings]
    # Rescaled to the budget: iteration 2 of 1000 is iteration 20 of 10000.
    assert square_module.p_selection(0.8, 1, 1000) == 0.8
    assert square_module.p_selection(0.8, 2, 1000) == 0.4
    assert square_module.p_selection(0.8, 999, 1000) == 0.8 / 512


def test_square_side_from_p():
    assert square_module.square_side(0.8, 28, 28) == 25  # round(sqrt(627.2))
    assert square_module.square_side(0.05, 32, 32) == 7  # round(sqrt(51.2))
    assert square_module.square_side(1.0, 28, 28) == 27  # at most h - 1
    assert square_module.square_side(0.8 / 512, 28, 28) == 1  # at least 1
    assert square_module.square_side(1.0, 1, 5) == 1


def test_resampled_signs_always_change_the_square():
    rng = tf.random.Generator.from_seed(0)
    # One channel whose square is all +1: the sign must be -1.
    signs = square_module._window_signs(rng, tf.fill([50, 1], 9.0), 9.0).numpy()
    assert np.all(signs == -1.0)
    # Three channels, all +1 on the square: any vector but (+1, +1, +1), each
    # of the 7 others drawn; a mixed channel (sum 3 of area 9) never blocks.
    sums = tf.constant([[4.0, 4.0, 4.0]] * 2000)
    signs = square_module._window_signs(rng, sums, 4.0).numpy()
    assert not np.any(np.all(signs == 1.0, axis=1))
    assert len({tuple(s) for s in signs}) == 7
    mixed = square_module._window_signs(rng, tf.constant([[4.0, 2.0, 4.0]] * 500), 4.0)
    assert np.any(np.all(mixed.numpy() == 1.0, axis=1))


# -- strength, seeding -------------------------------------------------------------


def test_square_drives_accuracy_below_10_percent(victim):
    start = time.perf_counter()
    x_adv, info = square(victim.model, victim.x, victim.y, eps=EPS,
                         n_queries=STRENGTH_QUERIES, seed=0, return_info=True)
    seconds = time.perf_counter() - start
    acc = victim.accuracy(x_adv)
    fooled = info["success"]
    print(f"[strength] square: eps={EPS}, n_queries={STRENGTH_QUERIES}, "
          f"accuracy={acc:.3f}, mean queries={info['queries'].mean():.1f}, "
          f"median queries of the fooled={np.median(info['queries'][fooled]):.1f}, "
          f"seconds={seconds:.2f}")
    assert acc < 0.10
    x_adv = x_adv.numpy()
    assert x_adv.dtype == np.float32
    assert np.abs(x_adv - victim.x).max() <= EPS + 1e-6
    assert x_adv.min() >= -1.0 and x_adv.max() <= 1.0
    assert info["queries"].max() <= STRENGTH_QUERIES
    # The attacker's estimate is the model's verdict (a deterministic model).
    assert np.mean(fooled == victim.fooled(x_adv)) >= 0.99
    assert info["forward_passes"] == info["queries"].sum()


def test_ce_loss_also_fools_the_victim(victim):
    x, y = victim.x[:30], victim.y[:30]
    x_adv, info = square(victim.model, x, y, eps=EPS, n_queries=200, loss="ce", seed=0,
                         return_info=True)
    assert victim.accuracy(x_adv, y) < 0.3
    assert np.array_equal(info["success"], victim.fooled(x_adv, y))


def test_seed_reproduces_exactly_and_seeds_differ(victim):
    x, y = victim.x[:20], victim.y[:20]

    def run(seed):
        x_adv, info = square(victim.model, x, y, eps=0.3, n_queries=60, seed=seed,
                             return_info=True)
        return x_adv.numpy(), info["queries"]

    first, again, other = run(1), run(1), run(2)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


# -- query accounting -----------------------------------------------------------------


def test_queries_misclassified_cost_one_and_unbroken_cost_the_budget():
    x = np.random.default_rng(1).uniform(-1, 1, (6, 8, 8, 1)).astype(np.float32)
    y = np.array([0, 1, 0, 2, 0, 0])  # 1 and 2 are misclassified already
    model = unbreakable_model(64)
    x_adv, info = square(model, x, y, eps=0.05, n_queries=37, seed=0, return_info=True)
    np.testing.assert_array_equal(info["queries"], [37, 1, 37, 1, 37, 37])
    np.testing.assert_array_equal(info["success"],
                                  [False, True, False, True, False, False])
    assert info["forward_passes"] == 4 * 37 + 2 and info["draws"] == 1
    assert info["model_calls"] == 37  # clean, stripes, 35 iterations
    x_adv = x_adv.numpy()
    np.testing.assert_array_equal(x_adv[[1, 3]], x[[1, 3]])  # returned unchanged
    # The others end at a vertex of the box: every pixel at x +- eps (clipped).
    up = x_adv == np.clip(x + np.float32(0.05), -1, 1)
    down = x_adv == np.clip(x - np.float32(0.05), -1, 1)
    assert np.all((up | down)[[0, 2, 4, 5]])


def test_small_budgets_and_zero_eps():
    x = np.random.default_rng(2).uniform(-1, 1, (3, 4, 4, 2)).astype(np.float32)
    y = np.zeros(3, np.int64)
    model = unbreakable_model(32)
    x_adv, info = square(model, x, y, eps=0.1, n_queries=1, return_info=True)
    np.testing.assert_array_equal(x_adv.numpy(), x)  # the clean check only
    np.testing.assert_array_equal(info["queries"], [1, 1, 1])
    x_adv, info = square(model, x, y, eps=0.1, n_queries=2, seed=0, return_info=True)
    np.testing.assert_array_equal(info["queries"], [2, 2, 2])  # + the stripes
    up = x_adv.numpy() == np.clip(x + np.float32(0.1), -1, 1)
    assert np.all(up | (x_adv.numpy() == np.clip(x - np.float32(0.1), -1, 1)))
    assert np.all(up == up[:, :1])  # vertical stripes: one sign per column
    assert 0 < up.mean() < 1
    x_adv, info = square(model, x, y, eps=0.0, n_queries=50, return_info=True)
    np.testing.assert_array_equal(x_adv.numpy(), x)
    np.testing.assert_array_equal(info["queries"], [1, 1, 1])


def test_stochastic_queries_count_current_and_candidate():
    x = np.random.default_rng(3).uniform(-1, 1, (4, 8, 8, 1)).astype(np.float32)
    y = np.zeros(4, np.int64)
    base = unbreakable_model(64)

    def three_draws(v):
        logits = base(v)
        return tf.stack([logits + tf.random.normal(tf.shape(logits)) for _ in range(3)])

    for n_queries, spent in ((40, 40), (41, 40)):  # 1 + 1 + 2 per iteration
        _, info = square(three_draws, x, y, eps=0.1, n_queries=n_queries, seed=0,
                         return_info=True)
        np.testing.assert_array_equal(info["queries"], [spent] * 4)
        assert info["draws"] == 3
        assert info["forward_passes"] == 3 * 4 * spent
        assert info["model_calls"] == 2 + (spent - 2) // 2


# -- randomised models: accept only if the E-draw mean improves ----------------------


def test_acceptance_compares_the_means_over_the_draws():
    y = tf.constant([0, 0], tf.int64)
    # Two points judged in one call: index 0 the current point, 1 the candidate.
    # The current point has margin 2 in both draws.
    worse_on_average = tf.constant([
        [[2.0, 0.0, 0.0], [2.0, 1.0, 0.0]],  # draw 0: candidate margin 1 (better)
        [[2.0, 0.0, 0.0], [5.0, 0.0, 0.0]],  # draw 1: candidate margin 5 (worse)
    ])
    loss, fooled = square_module.evaluate_logits(y, worse_on_average, "margin")
    np.testing.assert_allclose(loss.numpy(), [2.0, 3.0])
    assert not np.any(fooled.numpy())
    accept = square_module.accept_candidate(loss[:1], fooled[:1], loss[1:], fooled[1:])
    assert not bool(accept[0])  # improves one draw, worsens the mean: rejected
    better_on_average = tf.constant([
        [[2.0, 0.0, 0.0], [3.0, 0.0, 0.0]],  # draw 0: margin 3 (worse)
        [[2.0, 0.0, 0.0], [0.5, 0.0, 0.0]],  # draw 1: margin 0.5 (better)
    ])
    loss, fooled = square_module.evaluate_logits(y, better_on_average, "margin")
    accept = square_module.accept_candidate(loss[:1], fooled[:1], loss[1:], fooled[1:])
    assert bool(accept[0])


def test_acceptance_prefers_misclassified_points():
    accept = square_module.accept_candidate(
        current_loss=tf.constant([1.0, 1.0, -1.0, -1.0]),
        current_fooled=tf.constant([False, False, True, True]),
        candidate_loss=tf.constant([2.0, 0.5, -2.0, -3.0]),
        candidate_fooled=tf.constant([True, False, False, True]),
    )
    # A misclassified candidate wins (even at a higher CE-type loss); a
    # misclassified current point is not given up for a lower loss.
    np.testing.assert_array_equal(accept.numpy(), [True, True, False, True])


def test_stochastic_model_follows_the_mean_not_one_draw():
    # Two draws per call, the two linear models in a random order: draw A's
    # margin 10 - sum(x) falls when a pixel rises, draw B's 10 + 3 sum(x) rises
    # three times as fast, so the mean, 10 + sum(x), falls only when a pixel
    # falls. Raising a pixel helps one draw and worsens the mean: every such
    # candidate must be rejected, every lowering one accepted, so the attack
    # ends with all pixels at -eps. (A rule judging one draw would accept
    # raises whenever that draw is A.)
    num_pixels = 4
    w_a = np.zeros((2, num_pixels), np.float32)
    w_a[1] = 1.0  # margin z0 - z1 = 10 - sum(x)
    w_b = np.zeros((2, num_pixels), np.float32)
    w_b[1] = -3.0  # margin 10 + 3 sum(x)
    bias = np.array([10.0, 0.0], np.float32)
    model_fn = two_linear_models_fn(w_a, bias, w_b, bias)
    x = np.zeros((8, 2, 2, 1), np.float32)
    eps = 0.1
    x_adv, info = square(model_fn, x, np.zeros(8, np.int64), eps=eps, n_queries=82,
                         seed=0, return_info=True)
    np.testing.assert_allclose(x_adv.numpy(), x - eps, atol=1e-7)
    assert not np.any(info["success"])
    np.testing.assert_array_equal(info["queries"], [82] * 8)
    assert info["forward_passes"] == 2 * 8 * 82


def test_noisy_victim_runs_the_stochastic_path(victim):
    # A randomised Keras model (Gaussian input noise, 2 draws per call) inside
    # the attack's tf.while_loop: it must run, respect the budget and the box.
    def noisy(v):
        return tf.stack([victim.model(v + tf.random.normal(tf.shape(v), stddev=0.3))
                         for _ in range(2)])

    x, y = victim.x[:20], victim.y[:20]
    x_adv, info = square(noisy, x, y, eps=EPS, n_queries=100, seed=0, return_info=True)
    assert info["draws"] == 2 and info["queries"].max() <= 100
    assert info["forward_passes"] == 2 * info["queries"].sum()
    assert info["success"].mean() > 0.1
    assert np.abs(x_adv.numpy() - x).max() <= EPS + 1e-6


# -- arguments ------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, received", [
    ({"eps": -0.1}, "eps=-0.1"),
    ({"n_queries": 0}, "n_queries=0"),
    ({"n_queries": 10.0}, "n_queries=10.0"),
    ({"p_init": 0.0}, "p_init=0.0"),
    ({"p_init": 1.5}, "p_init=1.5"),
    ({"loss": "dlr"}, "loss='dlr'"),
    ({"seed": -1}, "seed=-1"),
    ({"return_info": 1}, "return_info=1"),
    ({"clip_min": 1.0}, "clip_min=1.0"),
])
def test_bad_arguments_raise_naming_the_argument(kwargs, received):
    x = np.zeros((2, 4, 4, 1), np.float32)
    args = {"eps": 0.1, **kwargs}
    with pytest.raises(ValueError, match=received.replace("(", r"\(")):
        square(unbreakable_model(16), x, np.zeros(2, np.int64), **args)


def test_bad_model_output_and_labels_raise():
    x = np.zeros((2, 4, 4, 1), np.float32)
    with pytest.raises(ValueError, match="model_fn"):
        square(lambda v: tf.zeros([3, 5]), x, np.zeros(2, np.int64), eps=0.1)
    with pytest.raises(ValueError, match="y="):
        square(unbreakable_model(16), x, np.array([0, 3]), eps=0.1)
