"""SPSA (Uesato et al. 2018): strength, bounds, seeding, queries, EOT, arguments."""

import time

import numpy as np
import pytest
import tensorflow as tf

import rls_tf.attacks as attacks
from rls_tf.attacks._common import eot_margin
from rls_tf.attacks.spsa import spsa
from tests.attacks.conftest import linear_model_fn
from tests.attacks.conftest import two_linear_models_fn

EPS = 0.5  # as in test_strength.py ([-1, 1] pixels: 0.25 in [0, 1] units)
# The strength budget: 50 Adam steps of 128 samples (6,400 queries + 51 early-stop
# checks at most per image). CleverHans' lr=0.01 is for [0, 1] pixels; at that
# rate 100 steps leave 10-20% of these examples, at 0.05 ~1%.
BUDGET = {"nb_iter": 50, "nb_sample": 128, "learning_rate": 0.05, "delta": 0.01}


def report(name, **figures):
    text = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in figures.items())
    print(f"[strength] {name}: {text}")


def test_spsa_drives_accuracy_below_10_percent(victim):
    start = time.perf_counter()
    x_adv, info = spsa(victim.model, victim.x, victim.y, eps=EPS, seed=0,
                       return_info=True, **BUDGET)
    seconds = time.perf_counter() - start
    acc = victim.accuracy(x_adv)
    queries = info["queries"]
    report("spsa", eps=EPS, accuracy=acc, mean_queries=float(queries.mean()),
           median_queries=float(np.median(queries)), max_queries=int(queries.max()),
           forward_passes=info["forward_passes"], seconds=seconds, **BUDGET)
    assert acc < 0.10
    x_adv = x_adv.numpy()
    assert attacks.linf_distance(victim.x, x_adv).max() <= EPS + 1e-6
    assert x_adv.min() >= -1.0 and x_adv.max() <= 1.0
    # Early stop: the examples reported stopped are those the model gets wrong.
    np.testing.assert_array_equal(info["stopped"], victim.fooled(x_adv))
    per_iteration = BUDGET["nb_sample"] + 1
    ran_out = info["iterations"] == BUDGET["nb_iter"]
    expected = info["iterations"] * per_iteration + np.where(
        ran_out, 1, np.where(info["stopped"], per_iteration, 0))
    np.testing.assert_array_equal(queries, expected)
    assert info["traces"] == 1
    assert info["forward_passes"] <= BUDGET["nb_iter"] + 1


def test_spsa_needs_no_gradients(victim):
    # Gradients masked completely (zero, still connected to x): PGD cannot
    # move, SPSA, which never asks for a gradient, still fools the model.
    def masked(x):
        return victim.model(tf.stop_gradient(x) + 0.0 * x, training=False)

    x, y = victim.x[:20], victim.y[:20]
    assert victim.accuracy(attacks.pgd(masked, x, y, eps=EPS), y) == 1.0
    x_adv = spsa(masked, x, y, eps=EPS, seed=1, **BUDGET)
    assert victim.accuracy(x_adv, y) <= 0.1


def test_spsa_seed_reproduces_and_bounds_hold(victim):
    x, y = victim.x[:10], victim.y[:10]
    kwargs = {"eps": 0.2, "nb_iter": 5, "nb_sample": 16, "return_info": True}
    a, info_a = spsa(victim.model, x, y, seed=3, **kwargs)
    b, info_b = spsa(victim.model, x, y, seed=3, **kwargs)
    c, _ = spsa(victim.model, x, y, seed=4, **kwargs)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(info_a["queries"], info_b["queries"])
    assert not np.array_equal(a.numpy(), c.numpy())
    for adv in (a, c):
        adv = adv.numpy()
        assert adv.dtype == np.float32 and adv.shape == x.shape
        assert attacks.linf_distance(x, adv).max() <= 0.2 + 1e-6
        assert adv.min() >= -1.0 and adv.max() <= 1.0


def test_spsa_without_early_stop_runs_every_iteration(victim):
    x, y = victim.x[:6], victim.y[:6]
    x_adv, info = spsa(victim.model, x, y, eps=0.3, nb_iter=4, nb_sample=8,
                       early_stop=False, seed=0, return_info=True)
    np.testing.assert_array_equal(info["queries"], 4 * 8)
    np.testing.assert_array_equal(info["iterations"], 4)
    assert not info["stopped"].any()
    assert info["forward_passes"] == 4 and info["traces"] == 1
    assert attacks.linf_distance(x, x_adv).max() <= 0.3 + 1e-6


def test_pixel_range_is_respected_at_the_edges():
    # Inputs at the pixel bounds, a model pushing them outwards.
    model_fn = linear_model_fn(np.stack([np.ones(4), -np.ones(4)]).astype(np.float32),
                               np.zeros(2, np.float32))
    x = np.array([1.0, 1.0, -1.0, -1.0, 0.9, 0.0, 0.0, 0.0], np.float32).reshape(2, 2, 2, 1)
    x_adv = spsa(model_fn, x, np.array([0, 1]), eps=0.5, nb_iter=20, nb_sample=8,
                 learning_rate=0.1, early_stop=False, seed=0).numpy()
    assert x_adv.min() >= -1.0 and x_adv.max() <= 1.0
    assert np.abs(x_adv - x).max() <= 0.5 + 1e-6


def test_one_pixel_estimate_is_exact_and_the_first_adam_step_is_its_sign():
    # One pixel: v = +-1, so the antithetic difference is the exact derivative of
    # the (locally linear) margin, and Adam's first step is lr * sign(derivative).
    w = np.array([[2.0], [-1.0], [0.5]], np.float32)  # K=3, D=1
    b = np.array([0.0, 0.3, -0.2], np.float32)
    x = np.array([-0.5, 0.1, 0.4, 0.7], np.float32).reshape(4, 1, 1, 1)
    y = np.array([0, 1, 2, 0])
    model_fn = linear_model_fn(w, b)
    x_adv = spsa(model_fn, x, y, eps=0.5, nb_iter=1, nb_sample=2, learning_rate=0.05,
                 rand_init=False, early_stop=False, seed=0).numpy()
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(-eot_margin(y, model_fn(xt)))  # what SPSA descends
    grad = tape.gradient(loss, xt).numpy()
    assert np.all(grad != 0)
    np.testing.assert_allclose(x_adv, x - 0.05 * np.sign(grad), atol=1e-6)


def test_eot_averages_the_margin_over_draws():
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(2, 3, 16)).astype(np.float32)
    b1, b2 = rng.normal(scale=0.1, size=(2, 3)).astype(np.float32)
    x = rng.uniform(-0.5, 0.5, size=(5, 4, 4, 1)).astype(np.float32)
    y = rng.integers(0, 3, size=5)
    logits = np.stack([linear_model_fn(w1, b1)(x), linear_model_fn(w2, b2)(x)])
    per_draw = [eot_margin(y, logits[e]).numpy() for e in range(2)]
    np.testing.assert_allclose(eot_margin(y, logits).numpy(),
                               (per_draw[0] + per_draw[1]) / 2, rtol=1e-6)
    # The draws come in random order at every call: the result must not depend on it.
    kwargs = {"eps": 0.3, "nb_iter": 5, "nb_sample": 8, "seed": 2}
    random_order = two_linear_models_fn(w1, b1, w2, b2)
    fixed_order = lambda v: tf.stack([linear_model_fn(w1, b1)(v),  # noqa: E731
                                      linear_model_fn(w2, b2)(v)])
    a = spsa(random_order, x, y, **kwargs).numpy()
    np.testing.assert_allclose(a, spsa(random_order, x, y, **kwargs).numpy(), atol=1e-6)
    np.testing.assert_allclose(a, spsa(fixed_order, x, y, **kwargs).numpy(), atol=1e-6)


def test_margin_loss_values():
    logits = np.array([[2.0, 1.0, 0.5], [0.0, 3.0, 1.0]], np.float32)
    np.testing.assert_allclose(eot_margin(np.array([0, 0]), logits).numpy(), [-1.0, 3.0])


def test_empty_batch():
    x = np.zeros((0, 2, 2, 1), np.float32)
    model_fn = linear_model_fn(np.ones((2, 4), np.float32), np.zeros(2, np.float32))
    x_adv, info = spsa(model_fn, x, np.zeros(0, np.int64), eps=0.1, return_info=True)
    assert x_adv.shape == (0, 2, 2, 1) and info["queries"].shape == (0,)


@pytest.mark.parametrize("kwargs, match", [
    ({"eps": -0.1}, "eps=-0.1"),
    ({"nb_iter": 0}, "nb_iter=0"),
    ({"nb_iter": 2.0}, "nb_iter=2.0"),
    ({"nb_sample": 0}, "nb_sample=0"),
    ({"nb_sample": 7}, "nb_sample=7"),
    ({"delta": 0.0}, "delta=0.0"),
    ({"delta": -0.01}, "delta=-0.01"),
    ({"learning_rate": 0.0}, "learning_rate=0.0"),
    ({"seed": -1}, "seed=-1"),
    ({"early_stop": 1}, "early_stop=1"),
    ({"clip_min": 1.0}, "clip_min=1.0"),
])
def test_bad_arguments(kwargs, match):
    model_fn = linear_model_fn(np.ones((2, 4), np.float32), np.zeros(2, np.float32))
    x = np.zeros((2, 2, 2, 1), np.float32)
    arguments = {"eps": 0.1, **kwargs}
    with pytest.raises(ValueError, match=f"Received: .*{match}"):
        spsa(model_fn, x, np.array([0, 1]), **arguments)


def test_bad_inputs():
    model_fn = linear_model_fn(np.ones((2, 4), np.float32), np.zeros(2, np.float32))
    x = np.zeros((2, 2, 2, 1), np.float32)
    with pytest.raises(ValueError, match="y=None"):
        spsa(model_fn, x, None, eps=0.1)
    with pytest.raises(ValueError, match="class indices < 2"):
        spsa(model_fn, x, np.array([0, 2]), eps=0.1)
    with pytest.raises(ValueError, match="model_fn="):
        spsa(None, x, np.array([0, 1]), eps=0.1)
