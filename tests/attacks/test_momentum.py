"""MI-FGSM (Dong et al. 2018): strength, bounds, BIM equivalence, CleverHans, EOT."""

import numpy as np
import pytest
import tensorflow as tf
from cleverhans.tf2.attacks.momentum_iterative_method import momentum_iterative_method

import rls_tf.attacks as attacks
from rls_tf.attacks._common import eot_margin
from rls_tf.attacks._common import eot_sparse_ce
from rls_tf.attacks.momentum import mi_fgsm
from tests.attacks.conftest import linear_model_fn
from tests.attacks.conftest import two_linear_models_fn

EPS = 0.5  # as in test_strength.py

RNG = np.random.default_rng(2)
K, D = 3, 16
W1, W2 = RNG.normal(size=(2, K, D)).astype(np.float32)
B1, B2 = RNG.normal(scale=0.1, size=(2, K)).astype(np.float32)
X = RNG.uniform(-0.5, 0.5, size=(8, 4, 4, 1)).astype(np.float32)
Y = RNG.integers(0, K, size=8).astype(np.int64)


def report(name, **figures):
    text = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in figures.items())
    print(f"[strength] {name}: {text}")


def test_mi_fgsm_drives_accuracy_below_10_percent(victim):
    for loss in ("ce", "margin"):
        x_adv = mi_fgsm(victim.model, victim.x, victim.y, eps=EPS, nb_iter=10, loss=loss)
        acc = victim.accuracy(x_adv)
        report(f"mi_fgsm-{loss}", eps=EPS, nb_iter=10, accuracy=acc)
        assert acc < 0.10, loss
        x_adv = x_adv.numpy()
        assert x_adv.dtype == np.float32 and x_adv.shape == victim.x.shape
        assert attacks.linf_distance(victim.x, x_adv).max() <= EPS + 1e-6
        assert x_adv.min() >= -1.0 and x_adv.max() <= 1.0


@pytest.mark.parametrize("nb_iter", [1, 3, 10])
def test_no_decay_is_bim_step_for_step(victim, nb_iter):
    x, y = victim.x[:30], victim.y[:30]
    eps, eps_iter = 0.3, 0.07
    bim = attacks.pgd(victim.model, x, y, eps=eps, eps_iter=eps_iter, nb_iter=nb_iter,
                      rand_init=False)
    mi = mi_fgsm(victim.model, x, y, eps=eps, eps_iter=eps_iter, nb_iter=nb_iter,
                 decay=0.0)
    np.testing.assert_array_equal(mi.numpy(), bim.numpy())
    if nb_iter == 10:  # the momentum changes the path
        with_momentum = mi_fgsm(victim.model, x, y, eps=eps, eps_iter=eps_iter,
                                nb_iter=nb_iter, decay=1.0)
        assert not np.array_equal(with_momentum.numpy(), bim.numpy())


def test_agrees_with_cleverhans_momentum_iterative_method(victim):
    # CleverHans normalises by the mean |grad|, the paper by the L1 norm: a
    # factor D apart, the same signs up to rounding on near-cancelled entries.
    # CleverHans' guard max(mean |grad|, 1e-12) also stops normalising vanishing
    # gradients (saturated CE); softened logits (/10) keep the gradients clear of it.
    def soft(v):
        return victim.model(v, training=False) / 10.0

    x, y = victim.x[:30], victim.y[:30]
    for model_fn, inputs, labels in ((soft, x, y), (linear_model_fn(W1, B1), X, Y)):
        ours = mi_fgsm(model_fn, inputs, labels, eps=0.3, eps_iter=0.03,
                       nb_iter=10).numpy()
        theirs = momentum_iterative_method(
            model_fn, tf.constant(inputs), eps=0.3, eps_iter=0.03, nb_iter=10,
            clip_min=-1.0, clip_max=1.0, y=tf.constant(labels), decay_factor=1.0)
        np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-5)


def test_vanishing_gradients_are_normalised_and_zero_ones_ignored():
    # A gradient of 1e-20 per pixel still makes a full step (the paper's
    # normalisation); an exactly zero one leaves x where it is, no NaN.
    direction = tf.constant(np.sign(RNG.normal(size=(1, 4, 4, 1))), tf.float32)

    def tiny(v):  # logits whose CE gradient is ~1e-20 * direction
        score = 1e-20 * tf.reduce_sum(v * direction, axis=[1, 2, 3])
        return tf.stack([score, -score], axis=1)

    x = np.zeros((1, 4, 4, 1), np.float32)
    x_adv = mi_fgsm(tiny, x, np.array([1]), eps=0.1, nb_iter=1).numpy()
    np.testing.assert_allclose(x_adv, 0.1 * direction.numpy(), atol=1e-7)
    flat = lambda v: tf.zeros([tf.shape(v)[0], 3])  # noqa: E731
    np.testing.assert_array_equal(mi_fgsm(flat, X, Y, eps=0.1).numpy(), X)


def test_default_step_is_eps_over_nb_iter():
    # A linear model whose gradient has a fixed sign: every step moves eps/nb_iter.
    model_fn = linear_model_fn(W1, B1)
    a = mi_fgsm(model_fn, X, Y, eps=0.2, nb_iter=4).numpy()
    b = mi_fgsm(model_fn, X, Y, eps=0.2, eps_iter=0.05, nb_iter=4).numpy()
    np.testing.assert_array_equal(a, b)
    one = mi_fgsm(model_fn, X, Y, eps=0.2, nb_iter=1).numpy()
    np.testing.assert_allclose(np.abs(one - X).max(), 0.2, atol=1e-6)


def test_first_step_follows_the_sign_of_the_loss_gradient():
    model_fn = linear_model_fn(W1, B1)
    xt = tf.constant(X)
    for loss, loss_fn in (("ce", eot_sparse_ce), ("margin", eot_margin)):
        with tf.GradientTape() as tape:
            tape.watch(xt)
            value = tf.reduce_sum(loss_fn(Y, model_fn(xt)))
        grad = tape.gradient(value, xt).numpy()
        x_adv = mi_fgsm(model_fn, X, Y, eps=0.1, eps_iter=0.1, nb_iter=1, loss=loss)
        np.testing.assert_allclose(x_adv.numpy(), X + 0.1 * np.sign(grad), atol=1e-6)


def test_momentum_accumulates_l1_normalised_gradients():
    # Two steps by hand: g1 = n(grad(x0)), g2 = mu g1 + n(grad(x1)), n = ./||.||_1.
    model_fn = two_linear_models_fn(W1, B1, W2, B2)  # EOT: the mean CE of two models
    eps, step, mu = 0.3, 0.1, 0.5

    def grad(x):
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            losses = [tf.nn.sparse_softmax_cross_entropy_with_logits(
                Y, linear_model_fn(w, b)(xt)) for w, b in ((W1, B1), (W2, B2))]
            value = tf.reduce_sum((losses[0] + losses[1]) / 2)
        g = tape.gradient(value, xt).numpy()
        return g / np.abs(g).sum(axis=(1, 2, 3), keepdims=True)

    g1 = grad(X)
    x1 = np.clip(X + step * np.sign(g1), X - eps, X + eps)
    g2 = mu * g1 + grad(x1)
    x2 = np.clip(x1 + step * np.sign(g2), X - eps, X + eps)
    for _ in range(3):  # the draws' order changes at every call; the mean does not
        x_adv = mi_fgsm(model_fn, X, Y, eps=eps, eps_iter=step, nb_iter=2, decay=mu)
        np.testing.assert_allclose(x_adv.numpy(), x2, atol=1e-6)


def test_bounds_hold_at_the_pixel_edges():
    x = np.where(RNG.uniform(size=X.shape) < 0.5, -1.0, 1.0).astype(np.float32)
    x_adv = mi_fgsm(linear_model_fn(W1, B1), x, Y, eps=0.5, eps_iter=0.2, nb_iter=5,
                    loss="margin").numpy()
    assert x_adv.min() >= -1.0 and x_adv.max() <= 1.0
    assert np.abs(x_adv - x).max() <= 0.5 + 1e-6


def test_zero_eps_and_empty_batch():
    model_fn = linear_model_fn(W1, B1)
    np.testing.assert_array_equal(mi_fgsm(model_fn, X, Y, eps=0.0).numpy(), X)
    empty = mi_fgsm(model_fn, np.zeros((0, 4, 4, 1), np.float32), np.zeros(0, np.int64),
                    eps=0.1)
    assert empty.shape == (0, 4, 4, 1)


@pytest.mark.parametrize("kwargs, match", [
    ({"eps": -0.1}, "eps=-0.1"),
    ({"eps_iter": -0.01}, "eps_iter=-0.01"),
    ({"eps_iter": 0.2}, "eps_iter=0.2"),
    ({"nb_iter": 0}, "nb_iter=0"),
    ({"nb_iter": 1.5}, "nb_iter=1.5"),
    ({"decay": -1.0}, "decay=-1.0"),
    ({"decay": float("nan")}, "decay=nan"),
    ({"loss": "dlr"}, "loss='dlr'"),
    ({"clip_max": -2.0}, "clip_min=-1.0, clip_max=-2.0"),
])
def test_bad_arguments(kwargs, match):
    arguments = {"eps": 0.1, **kwargs}
    with pytest.raises(ValueError, match=f"Received: .*{match}"):
        mi_fgsm(linear_model_fn(W1, B1), X, Y, **arguments)


def test_bad_inputs():
    model_fn = linear_model_fn(W1, B1)
    with pytest.raises(ValueError, match="y=None"):
        mi_fgsm(model_fn, X, None, eps=0.1)
    with pytest.raises(ValueError, match="x="):
        mi_fgsm(model_fn, X * 3, Y, eps=0.1)
    with pytest.raises(ValueError, match="class indices < 3"):
        mi_fgsm(model_fn, X, np.full(8, 3), eps=0.1)
