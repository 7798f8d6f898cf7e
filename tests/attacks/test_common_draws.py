"""Common draws (``tied_fn``) for the score-based attacks on a randomised model.

The victim is the undefended test CNN plus large zero-mean logit noise, drawn
anew per draw and per example: the noise does not move the mean prediction
(the victim's own), but it is far larger than what one square or one SPSA
direction changes. Judged by independent draws, Square and SPSA then
compare noise; judged by the same draws (a ``tied_fn``), the noise cancels
in every comparison and they work as on the deterministic victim.
"""

import numpy as np
import pytest
import tensorflow as tf

from rls_tf.attacks import _common
from rls_tf.attacks.spsa import spsa
from rls_tf.attacks.square import square

EPS = 0.5
DRAWS = 4
NOISE = 3.0  # std of the logit noise of one draw


def noisy_victim(victim):
    """``(model_fn, tied_fn)`` of the victim with per-draw logit noise."""

    def model_fn(x):
        logits = victim.model(x)
        return logits[None] + NOISE * tf.random.normal(tf.concat([[DRAWS], tf.shape(logits)], 0))

    def tied_fn(x, copies):
        logits = victim.model(x)
        n = tf.shape(x)[0] // copies
        noise = tf.random.normal([DRAWS, n, logits.shape[-1]])
        return logits[None] + NOISE * tf.tile(noise, [1, copies, 1])

    return model_fn, tied_fn


def accuracy(victim, x_adv, y):
    # The noise is zero-mean: the defender's prediction is the victim's.
    return float(np.mean(np.argmax(victim.model(x_adv).numpy(), -1) == y))


def test_tied_logits_stacks_blocks_and_shares_the_draws():
    def tied_fn(x, copies):
        n = tf.shape(x)[0] // copies
        noise = tf.random.normal([3, n, 2])
        return tf.tile(noise, [1, copies, 1]) + tf.reduce_sum(x, axis=[1, 2, 3])[None, :, None]

    a = tf.zeros([5, 2, 2, 1])
    b = tf.ones([5, 2, 2, 1])
    logits = _common.tied_logits(None, tied_fn, [a, b]).numpy()
    assert logits.shape == (3, 10, 2)
    # Same draws: the blocks differ by the inputs' effect (sum of 4 ones) only.
    np.testing.assert_allclose(logits[:, 5:] - logits[:, :5], 4.0, atol=1e-5)
    untied = _common.tied_logits(lambda v: tf.reduce_sum(v, axis=[1, 2, 3])[:, None], None,
                                 [a, b]).numpy()
    np.testing.assert_array_equal(untied[:, 0], [0.0] * 5 + [4.0] * 5)


@pytest.mark.parametrize("attack", ["square", "spsa"])
def test_common_draws_make_the_attack_work_through_the_noise(victim, attack):
    model_fn, tied_fn = noisy_victim(victim)
    x, y = victim.x[:50], victim.y[:50]
    if attack == "square":
        run = lambda **kw: square(model_fn, x, y, eps=EPS, n_queries=800, seed=0,  # noqa: E731
                                  return_info=True, **kw)
    else:
        run = lambda **kw: spsa(model_fn, x, y, eps=EPS, nb_iter=50, nb_sample=64,  # noqa: E731
                                learning_rate=0.05, seed=0, return_info=True, **kw)
    x_tied, info = run(tied_fn=tied_fn)
    x_free, _ = run()
    tied, free = accuracy(victim, x_tied, y), accuracy(victim, x_free, y)
    print(f"[strength] {attack} through logit noise std {NOISE}: accuracy {tied:.2f} with "
          f"common draws, {free:.2f} with independent draws")
    # Measured 0.02 (Square, 800 queries) and 0.10 (SPSA, 50 x 64) against 0.98
    # and 1.00 with independent draws.
    assert tied <= {"square": 0.1, "spsa": 0.25}[attack], tied
    assert free >= tied + 0.3, (free, tied)
    assert np.abs(x_tied.numpy() - x).max() <= EPS + 1e-6
    # A randomised model is attacked for the whole budget (no early stop on
    # one noisy estimate).
    if attack == "square":
        assert set(np.unique(info["queries"])) <= {799, 800}
    else:
        np.testing.assert_array_equal(info["iterations"], [50] * 50)


def test_bad_tied_fn_raises():
    x = np.zeros((2, 2, 2, 1), np.float32)
    fn = lambda v: tf.zeros([2, tf.shape(v)[0], 3])  # noqa: E731
    for attack in (square, spsa):
        with pytest.raises(ValueError, match="tied_fn=3"):
            attack(fn, x, np.zeros(2, np.int64), eps=0.1, tied_fn=3)
