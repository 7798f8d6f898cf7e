"""ARC (Dbouk & Shanbhag 2022) on randomised ensembles given as ``[M, B, K]`` members.

The known-solution test is the paper's point in miniature: two linear members,
one of them so confident that its cross-entropy gradient vanishes at x, so PGD
on the mean loss follows the other member only and fools one of the two,
while ARC, member by member with its adaptive step, reaches the region that
fools both (a hand-computable point).
"""

import importlib

import numpy as np
import pytest
import tensorflow as tf

import rls_tf.attacks as attacks
from rls_tf.attacks.arc import arc

arc_module = importlib.import_module("rls_tf.attacks.arc")  # the package exports the function

EPS = 0.5  # as in test_strength.py: eps=0.5 in [-1, 1] units.


def report(name, **figures):
    text = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in figures.items())
    print(f"[arc] {name}: {text}")


def linear_members_fn(weights, biases):
    """Members ``logits_m = W_m x + b_m`` on flattened x: ``[M, B, K]``."""
    weights = tf.constant(np.asarray(weights), tf.float32)  # [M, K, D]
    biases = tf.constant(np.asarray(biases), tf.float32)  # [M, K]

    def members_fn(x):
        flat = tf.reshape(x, [tf.shape(x)[0], -1])
        return tf.einsum("mkd,bd->mbk", weights, flat) + biases[:, None, :]

    return members_fn


def binary_members_fn(scores):
    """Two-class members from affine scores ``s_m = w_m . x + b_m``:
    logits ``[-s/2, s/2]``, so member m predicts class 1 iff ``s_m > 0``."""
    w = np.array([[-0.5 * np.asarray(wm), 0.5 * np.asarray(wm)] for wm, _ in scores])
    b = np.array([[-0.5 * bm, 0.5 * bm] for _, bm in scores])
    return linear_members_fn(w, b)


def expected_loss(members_fn, x, y, weights):
    pred = np.argmax(members_fn(tf.constant(x)).numpy(), axis=-1)  # [M, B]
    return np.asarray(weights) @ (pred != np.asarray(y)[None]).astype(np.float64)


# The two members of the known-solution test, on x in R^2 (shape [B, 1, 2, 1]),
# true class 0. Member 1 is fooled iff x1 - x2 > 0.5 (scale 100: confident,
# its CE gradient at x is ~1e-20); member 2 iff x1 + x2 > 0.5 (scale 1).
# In the ball |x|_inf <= 1 around 0 both are fooled e.g. at (1, 0); PGD on the
# mean CE follows member 2's gradient to (1, 1), where member 1 is not fooled.
CONFIDENT = (np.array([100.0, -100.0]), -50.0)
GENTLE = (np.array([1.0, 1.0]), -0.5)
X_TWO = np.array([[0.0, 0.0], [-0.1, 0.1]], np.float32).reshape(2, 1, 2, 1)
Y_TWO = np.array([0, 0])
RANGE_TWO = {"clip_min": -3.0, "clip_max": 3.0}


def test_known_solution_arc_fools_both_members_where_pgd_fools_one():
    members_fn = binary_members_fn([CONFIDENT, GENTLE])
    x_adv, info = arc(members_fn, X_TWO, Y_TWO, eps=1.0, nb_iter=5, return_info=True,
                      **RANGE_TWO)
    x_adv = x_adv.numpy()
    np.testing.assert_array_equal(info["expected_loss_clean"], [0.0, 0.0])
    np.testing.assert_array_equal(info["expected_loss_adv"], [1.0, 1.0])
    np.testing.assert_array_equal(expected_loss(members_fn, x_adv, Y_TWO, [0.5, 0.5]), [1, 1])
    assert np.abs(x_adv - X_TWO).max() <= 1.0 + 1e-6
    # By hand, example 0: member 1's step is eta * sign = (1, -1) (fools it);
    # at (1, -1) member 2's boundary is at L-inf distance zeta = 0.25 along
    # g = (1, 1), g2 . delta_l = 0, so beta = 1 / (1 - 0.25) * 0.25 + rho
    # (rho = 0.05) = 0.3833 and delta_l + beta g = (1.3833, -0.6167), rescaled
    # to L-inf norm eta = 1: (1, -0.4458); both are fooled after one iteration.
    beta = 1.0 / 0.75 * 0.25 + 0.05
    expected = np.array([1.0 + beta, -1.0 + beta]) / (1.0 + beta)
    np.testing.assert_allclose(x_adv[0].reshape(2), expected, atol=1e-5)

    # EOT-style PGD on the mean cross-entropy of the two rows.
    x_pgd = attacks.pgd(members_fn, X_TWO, Y_TWO, eps=1.0, nb_iter=20, **RANGE_TWO).numpy()
    pgd_loss = expected_loss(members_fn, x_pgd, Y_TWO, [0.5, 0.5])
    report("known solution", arc_loss=info["expected_loss_adv"].tolist(),
           pgd_loss=pgd_loss.tolist(), arc_point=np.round(x_adv[0].reshape(2), 4).tolist(),
           pgd_point=np.round(x_pgd[0].reshape(2), 4).tolist())
    np.testing.assert_allclose(x_pgd[0].reshape(2), [1.0, 1.0], atol=1e-6)
    np.testing.assert_array_equal(pgd_loss, [0.5, 0.5])  # only member 2 is fooled


def test_known_solution_visits_members_by_decreasing_probability():
    # With alpha = (0.1, 0.9) member 2 goes first: (1, 1) fools it, then the
    # adaptive step for member 1 gives (1, 0.4458), which fools both.
    members_fn = binary_members_fn([CONFIDENT, GENTLE])
    x_adv, info = arc(members_fn, X_TWO[:1], Y_TWO[:1], eps=1.0, nb_iter=1,
                      weights=[0.1, 0.9], return_info=True, **RANGE_TWO)
    np.testing.assert_array_equal(info["order"], [1, 0])
    np.testing.assert_allclose(info["expected_loss_adv"], [1.0], atol=1e-6)
    beta = 1.0 / 0.75 * 0.25 + 0.05
    expected = np.array([1.0 + beta, 1.0 - beta]) / (1.0 + beta)
    np.testing.assert_allclose(x_adv.numpy().reshape(2), expected, atol=1e-5)


def test_arc_breaks_an_undefended_model(victim):
    # The victim and a slightly different copy (scaled logits, a class bias).
    bias = tf.constant(np.linspace(-0.5, 0.5, 10), tf.float32)

    def members_fn(x):
        z = victim.model(x, training=False)
        return tf.stack([z, 0.9 * z + bias])

    weights = [0.3, 0.7]
    x_adv, info = arc(members_fn, victim.x, victim.y, eps=EPS, nb_iter=5, weights=weights,
                      return_info=True)
    member_acc = np.mean(
        np.argmax(members_fn(x_adv).numpy(), axis=-1) == victim.y[None], axis=1
    )
    rec_acc = 1.0 - float(np.mean(info["expected_loss_adv"]))
    report("strength", eps=EPS, nb_iter=5, rec_accuracy=rec_acc,
           member_accuracy=member_acc.tolist(), victim_accuracy=victim.accuracy(x_adv))
    assert float(np.mean(info["expected_loss_clean"])) < 0.05  # the copy is accurate too
    assert rec_acc < 0.10
    assert np.all(member_acc < 0.10)
    assert victim.accuracy(x_adv) < 0.10
    assert attacks.linf_distance(victim.x, x_adv).max() <= EPS + 1e-6


def _random_rec(seed, num_members=3, num_classes=4, side=6):
    rng = np.random.default_rng(seed)
    dim = side * side
    w = rng.normal(0, 1, (num_members, num_classes, dim)) / np.sqrt(dim)
    b = rng.normal(0, 0.3, (num_members, num_classes))
    x = rng.uniform(-1, 1, (16, side, side, 1)).astype(np.float32)
    x[:, 0, :, :] = 1.0  # pixels on the range's edges: clipping must hold
    x[:, 1, :, :] = -1.0
    y = rng.integers(0, num_classes, 16)
    return linear_members_fn(w, b), x, y


@pytest.mark.parametrize("num_hyperplanes", [None, 1])
def test_norm_bound_clip_range_and_monotone_acceptance(num_hyperplanes):
    members_fn, x, y = _random_rec(0)
    weights = [0.2, 0.5, 0.3]
    eps = 0.3
    x_adv, info = arc(members_fn, x, y, eps=eps, nb_iter=4, weights=weights,
                      num_hyperplanes=num_hyperplanes, return_info=True)
    assert x_adv.dtype == tf.float32 and x_adv.shape == x.shape
    x_adv = x_adv.numpy()
    assert np.abs(x_adv - x).max() <= eps + 1e-6
    assert x_adv.min() >= -1.0 and x_adv.max() <= 1.0
    clean = expected_loss(members_fn, x, y, weights)
    adv = expected_loss(members_fn, x_adv, y, weights)
    np.testing.assert_allclose(info["expected_loss_clean"], clean, atol=1e-6)
    np.testing.assert_allclose(info["expected_loss_adv"], adv, atol=1e-6)
    np.testing.assert_array_equal(info["order"], [1, 2, 0])
    assert 0 < clean.mean() < 1  # some members already wrong: a real test
    assert np.all(adv >= clean - 1e-6)  # never below the clean loss
    assert adv.mean() > clean.mean()
    report("monotone", num_hyperplanes=num_hyperplanes, clean=float(clean.mean()),
           adv=float(adv.mean()))
    # Deterministic, and traced once for this members_fn and shape.
    again = arc(members_fn, x, y, eps=eps, nb_iter=4, weights=weights,
                num_hyperplanes=num_hyperplanes)
    np.testing.assert_array_equal(again.numpy(), x_adv)
    traced = arc_module._TRACED[members_fn][(num_hyperplanes, None)]  # pylint: disable=protected-access
    assert traced.experimental_get_tracing_count() == 1


def test_more_iterations_never_lower_the_loss():
    members_fn, x, y = _random_rec(1)
    losses = [arc(members_fn, x, y, eps=0.2, nb_iter=k, return_info=True)[1]
              ["expected_loss_adv"] for k in (1, 3)]
    assert np.all(losses[1] >= losses[0] - 1e-6)


def test_eps_zero_and_empty_batch():
    members_fn, x, y = _random_rec(2)
    x_adv, info = arc(members_fn, x, y, eps=0.0, return_info=True)
    np.testing.assert_array_equal(x_adv.numpy(), x)
    np.testing.assert_array_equal(info["expected_loss_adv"], info["expected_loss_clean"])
    empty = arc(members_fn, x[:0], y[:0], eps=0.1)
    assert empty.shape == (0,) + x.shape[1:]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"weights": [0.5, 0.6, -0.1]}, "non-negative"),
        ({"weights": [0.3, 0.3, 0.3]}, "sum to 1"),
        ({"weights": [0.5, 0.5]}, "one entry per member"),
        ({"weights": [[0.2, 0.5, 0.3]]}, "1-D"),
        ({"weights": ["a", "b", "c"]}, "weights"),
        ({"weights": [np.nan, 0.5, 0.5]}, "finite"),
        ({"eps": -0.1}, "eps"),
        ({"eps": float("inf")}, "eps"),
        ({"eps": "0.3"}, "eps"),
        ({"nb_iter": 0}, "nb_iter"),
        ({"nb_iter": 2.0}, "nb_iter"),
        ({"nb_iter": True}, "nb_iter"),
        ({"eta": 0.5}, "eta"),
        ({"eta": 0.0}, "eta"),
        ({"rho": -1.0}, "rho"),
        ({"num_hyperplanes": 0}, "num_hyperplanes"),
        ({"num_hyperplanes": 4}, "num_hyperplanes"),
        ({"return_info": 1}, "return_info"),
        ({"clip_min": 1.0, "clip_max": -1.0}, "clip_min"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    members_fn, x, y = _random_rec(3)
    args = {"eps": 0.3, "nb_iter": 1}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match) as err:
        arc(members_fn, x, y, **args)
    assert "Received:" in str(err.value)


def test_bad_members_fn_x_and_labels_raise():
    members_fn, x, y = _random_rec(4)
    with pytest.raises(ValueError, match="members_fn.*callable"):
        arc("model", x, y, eps=0.1)
    with pytest.raises(ValueError, match=r"members_fn.*\[M, B, K\]"):
        arc(lambda v: members_fn(v)[0], x, y, eps=0.1)  # [B, K]: no member axis
    with pytest.raises(ValueError, match="x"):
        arc(members_fn, x[..., 0], y, eps=0.1)
    with pytest.raises(ValueError, match="y"):
        arc(members_fn, x, None, eps=0.1)
    with pytest.raises(ValueError, match="y"):
        arc(members_fn, x, np.full_like(y, 4), eps=0.1)  # K = 4 classes


def _reference_arc_linf(w, b, x, y, alpha, eps, eta, nb_iter, clip_min=-1.0, clip_max=1.0):
    """A per-example NumPy transcription of the official ``attack_ARC_linf``
    (hsndbk4/ARC attack.py, rand_init off) for linear members, whose logit
    gradients are the rows of W: an independent check of the batched code."""
    rho = 0.05 * eps
    order = np.argsort(-np.asarray(alpha), kind="stable")
    flat_x = x.reshape(len(x), -1).astype(np.float64)

    def loss(point, label):
        pred = np.argmax(np.einsum("mkd,d->mk", w, point) + b, axis=-1)
        return float(np.dot(alpha, pred != label))

    def project(x0, delta):
        return np.clip(x0 + np.clip(delta, -eps, eps), clip_min, clip_max)

    out = np.empty_like(flat_x)
    for n, (x0, label) in enumerate(zip(flat_x, y)):
        x_adv, best = x0.copy(), loss(x0, label)
        for _ in range(nb_iter):
            delta, local, v_local = x_adv - x0, np.zeros_like(x0), best
            for position, m in enumerate(order):
                z = w[m] @ (x0 + delta + local) + b[m]
                yhat = int(np.argmax(z))
                zeta, g, g2 = np.inf, None, None
                for j in range(len(z)):
                    if j == yhat:
                        continue
                    wj = w[m, yhat] - w[m, j]
                    norm = np.abs(wj).sum()
                    zeta_j = abs(z[yhat] - z[j]) / (norm + 1e-10)
                    if zeta > zeta_j:
                        zeta, g, g2 = zeta_j, -np.sign(wj), -wj / (norm + 1e-10)
                beta = eta
                if position > 0 and zeta < eta:
                    beta = eta / (eta - zeta + 1e-10) * abs(zeta - g2 @ local) + rho
                step = local + beta * g
                hat = eta * step / (np.abs(step).max() + 1e-10)
                v_new = loss(project(x0, delta + hat), label)
                if v_new >= v_local:
                    local, v_local = hat, v_new
            cand = project(x0, delta + local)
            v_new = loss(cand, label)
            if v_new >= best:
                x_adv, best = cand, v_new
        out[n] = x_adv
    return out.reshape(x.shape)


def test_matches_a_transcription_of_the_official_loop():
    rng = np.random.default_rng(5)
    num_members, num_classes, dim = 3, 5, 16
    w = rng.normal(0, 1, (num_members, num_classes, dim)) / 4.0
    b = rng.normal(0, 0.3, (num_members, num_classes))
    x = rng.uniform(-1, 1, (12, 4, 4, 1)).astype(np.float32)
    y = rng.integers(0, num_classes, 12)
    alpha = np.array([0.25, 0.45, 0.3])
    members_fn = linear_members_fn(w, b)
    x_adv = arc(members_fn, x, y, eps=0.25, nb_iter=3, weights=alpha, eta=0.15).numpy()
    expected = _reference_arc_linf(w, b, x, y, alpha, eps=0.25, eta=0.15, nb_iter=3)
    np.testing.assert_allclose(x_adv, expected, atol=1e-4)
    assert np.abs(expected - x).max() > 0.1  # the attack moved


@pytest.mark.parametrize("num_hyperplanes", [None, 2])
def test_member_fn_gives_the_same_attack_with_one_member_per_gradient(num_hyperplanes):
    members_fn, x, y = _random_rec(5)
    calls = []

    def member_fn(v, m):
        calls.append(1)  # traced once per build, not per member
        return tf.gather(members_fn(v), m)

    kwargs = {"eps": 0.3, "nb_iter": 3, "weights": [0.5, 0.3, 0.2],
              "num_hyperplanes": num_hyperplanes}
    reference = arc(members_fn, x, y, **kwargs).numpy()
    fast = arc(members_fn, x, y, member_fn=member_fn, **kwargs).numpy()
    np.testing.assert_allclose(fast, reference, atol=1e-6)
    assert calls  # the gradient steps went through member_fn
    with pytest.raises(ValueError, match="Received: member_fn=3"):
        arc(members_fn, x, y, eps=0.1, member_fn=3)
