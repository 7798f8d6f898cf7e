"""FGSM and PGD: CleverHans under Keras 3, EOT gradients, seeding."""

import keras
import numpy as np
import tensorflow as tf
from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent

import rls_tf.attacks as attacks
from tests.attacks.conftest import linear_model_fn
from tests.attacks.conftest import two_linear_models_fn

RNG = np.random.default_rng(1)
K, D = 3, 16
W1 = RNG.normal(size=(K, D)).astype(np.float32)
B1 = RNG.normal(scale=0.1, size=K).astype(np.float32)
W2 = RNG.normal(size=(K, D)).astype(np.float32)
B2 = RNG.normal(scale=0.1, size=K).astype(np.float32)
# Inputs well inside [-1, 1], so that a small step is never clipped.
X = RNG.uniform(-0.5, 0.5, size=(8, 4, 4, 1)).astype(np.float32)
Y = RNG.integers(0, K, size=8).astype(np.int64)


def eot_loss_gradient(x):
    """Hand-computed gradient of the mean over the two models of the CE."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        losses = [
            tf.nn.sparse_softmax_cross_entropy_with_logits(Y, linear_model_fn(w, b)(x))
            for w, b in ((W1, B1), (W2, B2))
        ]
        loss = tf.reduce_sum((losses[0] + losses[1]) / 2.0)
    return tape.gradient(loss, x).numpy()


def mean_logits_loss_gradient(x):
    """The gradient of a *different* loss: CE of the mean logits (not EOT)."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = (linear_model_fn(W1, B1)(x) + linear_model_fn(W2, B2)(x)) / 2.0
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(Y, logits))
    return tape.gradient(loss, x).numpy()


def test_fgsm_with_eot_follows_the_mean_loss_gradient():
    model_fn = two_linear_models_fn(W1, B1, W2, B2)
    eps = 0.1
    expected = X + eps * np.sign(eot_loss_gradient(X))
    # The test discriminates: the two candidate losses disagree in sign somewhere,
    # and so does each single draw.
    assert np.any(np.sign(mean_logits_loss_gradient(X)) != np.sign(eot_loss_gradient(X)))
    for _ in range(4):  # the draws come in random order at every call
        x_adv = attacks.fgsm(model_fn, X, Y, eps=eps).numpy()
        np.testing.assert_allclose(x_adv, expected, atol=1e-6)


def test_fgsm_on_one_model_is_the_sign_step_and_targeted_descends():
    model_fn = linear_model_fn(W1, B1)
    x = tf.constant(X)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(Y, model_fn(x)))
    grad = tape.gradient(loss, x).numpy()
    np.testing.assert_allclose(
        attacks.fgsm(model_fn, X, Y, eps=0.05).numpy(), X + 0.05 * np.sign(grad), atol=1e-6
    )
    np.testing.assert_allclose(
        attacks.fgsm(model_fn, X, Y, eps=0.05, targeted=True).numpy(),
        X - 0.05 * np.sign(grad),
        atol=1e-6,
    )


def test_pgd_with_eot_follows_the_mean_loss_gradient():
    model_fn = two_linear_models_fn(W1, B1, W2, B2)
    eps, eps_iter, nb_iter = 0.2, 0.08, 3
    expected = X.copy()
    for _ in range(nb_iter):
        expected = expected + eps_iter * np.sign(eot_loss_gradient(expected))
        expected = np.clip(np.clip(expected, X - eps, X + eps), -1.0, 1.0)
    x_adv = attacks.pgd(model_fn, X, Y, eps=eps, eps_iter=eps_iter, nb_iter=nb_iter)
    np.testing.assert_allclose(x_adv.numpy(), expected, atol=1e-5)


def test_pgd_equals_cleverhans_projected_gradient_descent(victim):
    x, y = victim.x[:20], victim.y[:20]
    ours = attacks.pgd(victim.model, x, y, eps=0.3, eps_iter=0.05, nb_iter=5)
    theirs = projected_gradient_descent(
        victim.model, x, 0.3, 0.05, 5, np.inf,
        loss_fn=lambda labels, logits: tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=logits),
        clip_min=-1.0, clip_max=1.0, y=y, rand_init=False,
    )
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-6)


def test_cleverhans_fgm_runs_on_a_keras3_model():
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(K)])
    x_adv = attacks.fgsm(model, X, Y, eps=0.1)
    assert attacks.linf_distance(X, x_adv).max() <= 0.1 + 1e-6
    assert np.all(attacks.linf_distance(X, x_adv) > 0.09)


def test_pgd_default_step_is_eps_over_10():
    model_fn = linear_model_fn(W1, B1)
    a = attacks.pgd(model_fn, X, Y, eps=0.2, nb_iter=4)
    b = attacks.pgd(model_fn, X, Y, eps=0.2, eps_iter=0.02, nb_iter=4)
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_pgd_random_start_is_seeded():
    model_fn = linear_model_fn(W1, B1)
    kwargs = dict(eps=0.2, nb_iter=2, rand_init=True)
    a = attacks.pgd(model_fn, X, Y, seed=3, **kwargs).numpy()
    b = attacks.pgd(model_fn, X, Y, seed=3, **kwargs).numpy()
    c = attacks.pgd(model_fn, X, Y, seed=4, **kwargs).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert attacks.linf_distance(X, a).max() <= 0.2 + 1e-6
    # With a zero-length run the start itself must lie in the rand_minmax ball.
    start = attacks.pgd(model_fn, X, Y, eps=0.2, eps_iter=0.0, nb_iter=1,
                        rand_init=True, rand_minmax=0.05, seed=0)
    assert 0.04 < attacks.linf_distance(X, start).max() <= 0.05 + 1e-6
