"""`rls_tf.pgd_core`: the L-inf PGD update of adversarial training (the attacks take the same update through CleverHans)."""

import numpy as np
import tensorflow as tf

from rls_tf import adversarial
from rls_tf import pgd_core


def test_step_and_projection():
    x = tf.constant([[0.0, 0.9, -0.95]])
    grad = tf.constant([[1.0, 1.0, np.nan]])
    moved = pgd_core.linf_step(x, grad, 0.5)
    np.testing.assert_allclose(moved.numpy(), [[0.5, 1.4, -0.95]])
    projected = pgd_core.linf_project(moved, x, eps=0.3)
    np.testing.assert_allclose(projected.numpy(), [[0.3, 1.0, -0.95]], atol=1e-7)


def test_random_start_stays_in_the_ball_and_range():
    x = tf.constant(np.linspace(-1, 1, 50, dtype="float32")[None])
    start = pgd_core.linf_random_start(x, 0.2).numpy()
    assert np.all(np.abs(start - x.numpy()) <= 0.2 + 1e-6)
    assert np.all((start >= -1) & (start <= 1))
    seeded = pgd_core.linf_random_start(
        x, 0.2, uniform=lambda shape: tf.random.stateless_uniform(shape, [1, 2], -1, 1))
    np.testing.assert_array_equal(seeded.numpy(), pgd_core.linf_random_start(
        x, 0.2, uniform=lambda shape: tf.random.stateless_uniform(shape, [1, 2], -1, 1)).numpy())


def test_adversarial_training_crafts_with_the_core():
    # One step without random start is exactly project(step(x, grad)).
    w = tf.constant([[1.0, -1.0], [-1.0, 1.0]])

    def probs_fn(images):
        return tf.nn.softmax(tf.matmul(images, w))

    x = tf.constant([[0.1, -0.2], [0.3, 0.4]])
    y = tf.constant([0, 1])
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(adversarial.crossentropy(y, probs_fn(x)))
    expected = pgd_core.linf_project(pgd_core.linf_step(x, tape.gradient(loss, x), 0.05), x, 0.1)
    got = adversarial.pgd_examples(probs_fn, x, y, eps=0.1, steps=1, step_size=0.05,
                                   random_start=False)
    np.testing.assert_allclose(got.numpy(), expected.numpy())
