"""APGD (Croce & Hein 2020): schedule, step-size rules, losses, EOT."""

import numpy as np
import pytest
import tensorflow as tf

import rls_tf.attacks as attacks
from rls_tf.attacks import _common
from rls_tf.attacks import auto_pgd
from tests.attacks.conftest import linear_model_fn
from tests.attacks.conftest import two_linear_models_fn


def test_checkpoints_follow_the_paper():
    # p = 0, .22, .41 (=.22+.19), .57 (+.16), .70 (+.13), .80 (+.10), .87 (+.07),
    #     .93 (+max(.04, .06)), .99 (+.06); the next, 1.05, is past the end.
    assert attacks.apgd_checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    assert attacks.apgd_checkpoints(1000) == [0, 220, 410, 570, 700, 800, 870, 930, 990]
    # ceil(p * 10): 0, 2.2->3, 4.1->5, 5.7->6, 7, 8, 8.7->9, 9.3->10, 9.9->10.
    assert attacks.apgd_checkpoints(10) == [0, 3, 5, 6, 7, 8, 9, 10]
    assert attacks.apgd_checkpoints(1) == [0, 1]
    with pytest.raises(ValueError, match="nb_iter=0"):
        attacks.apgd_checkpoints(0)


class ScriptedLoss:
    """A fake step function: the loss of the n-th evaluation is script[n]."""

    def __init__(self, script):
        self.script = [float(v) for v in script]
        self.calls = 0

    def __call__(self, x_adv, y):
        loss = self.script[self.calls]
        self.calls += 1
        batch = x_adv.shape[0]
        return (tf.fill([batch], loss), tf.ones_like(x_adv),
                tf.ones([batch], tf.bool))


def run_script(script, nb_iter=100, rho=0.75, eps=0.25):
    x = tf.zeros([1, 2, 2, 1])
    run = auto_pgd._apgd_run(ScriptedLoss(script), x, tf.constant([0], tf.int64), eps,
                             nb_iter, rho, _common.make_rng(0), -1.0, 1.0)
    return run["step_trace"].numpy()[:, 0] / (2 * eps)  # in units of the initial step


def test_condition_1_halves_when_fewer_than_rho_of_the_steps_increased():
    # First interval: 22 steps, threshold 0.75 * 22 = 16.5 increases.
    def script(dips):
        values, losses = [0.0], 0.0
        for k in range(1, 101):
            losses = losses - 0.5 if k in dips else float(k)
            values.append(losses)
        return values

    six_dips = {3, 6, 9, 12, 15, 18}  # 16 increases < 16.5: halve
    assert run_script(script(six_dips))[22] == 0.5
    assert run_script(script(six_dips - {18}))[22] == 1.0  # 17 increases: keep
    # "Fewer than": exactly rho * interval increases (rho=0.5: 11 of 22) keeps the step.
    eleven_dips = set(range(2, 23, 2))
    assert run_script(script(eleven_dips), rho=0.5)[22] == 1.0
    assert run_script(script(eleven_dips | {1}), rho=0.5)[22] == 0.5


def test_condition_2_halves_when_best_loss_stalls_after_an_unreduced_checkpoint():
    # The start has the best loss (10) and is never beaten, yet the loss rises at
    # every step, so condition 1 never fires. Condition 2 (no reduction at the last
    # checkpoint, best loss unchanged since) halves at w_1 (the paper counts w_0 as
    # unreduced), not at w_2 (reduced at w_1), at w_3, not w_4, ...
    script = [10.0] + [0.05 * k for k in range(1, 101)]
    steps = run_script(script)
    checkpoints = [22, 41, 57, 70, 80, 87, 93, 99]
    assert [steps[w] for w in checkpoints] == [0.5, 0.5, 0.25, 0.25, 0.125, 0.125,
                                               0.0625, 0.0625]


def test_constant_loss_halves_at_every_checkpoint():
    steps = run_script([1.0] * 101)
    assert steps[-1] == 0.5 ** 8
    assert np.all(np.diff(steps) <= 0)


def test_best_loss_is_monotone_and_the_output_is_the_best_point(victim):
    x = tf.constant(victim.x[:30])
    y = tf.constant(victim.y[:30])
    step_fn = auto_pgd._make_step_fn(victim.model, _common.eot_sparse_ce)
    run = auto_pgd._apgd_run(step_fn, x, y, 0.25, 40, 0.75, _common.make_rng(0), -1.0, 1.0)
    trace = run["best_loss_trace"].numpy()
    assert trace.shape == (41, 30)
    assert np.all(np.diff(trace, axis=0) >= 0)
    assert np.all(trace[-1] > trace[0])  # every example's loss went up
    steps = run["step_trace"].numpy()
    assert np.all(np.diff(steps, axis=0) <= 0) and steps.min() < steps.max()
    # The recorded best loss is the loss at the recorded best point.
    np.testing.assert_allclose(
        _common.eot_sparse_ce(y, victim.model(run["x_best"])).numpy(),
        run["loss_best"].numpy(), rtol=1e-4, atol=1e-4)
    # Public API: examples not fooled come back at a point of higher loss than x.
    x_adv = attacks.apgd(victim.model, x, y, eps=0.15, nb_iter=20, seed=0)
    clean = _common.eot_sparse_ce(y, victim.model(x)).numpy()
    adv = _common.eot_sparse_ce(y, victim.model(x_adv)).numpy()
    kept = ~victim.fooled(x_adv, victim.y[:30])
    assert kept.any()
    assert np.all(adv[kept] > clean[kept])


def test_dlr_loss_matches_the_formula_and_eot_averages_per_draw():
    logits = np.array([[3.0, 1.0, 2.0, -1.0], [0.0, 4.0, 1.0, 2.0]], np.float32)
    y = np.array([0, 2])
    # Example 0: z_y=3, max other=2, sorted 3,2,1 -> -(3-2)/(3-1) = -0.5.
    # Example 1: z_y=1, max other=4, sorted 4,2,1 -> -(1-4)/(4-1) = 1.
    np.testing.assert_allclose(_common.eot_dlr(y, logits).numpy(), [-0.5, 1.0], rtol=1e-6)
    draws = np.stack([logits, logits[:, ::-1], 2 * logits])
    for loss_fn in (_common.eot_dlr, _common.eot_sparse_ce):
        per_draw = [loss_fn(y, d).numpy() for d in draws]
        np.testing.assert_allclose(loss_fn(y, draws).numpy(), np.mean(per_draw, axis=0),
                                   rtol=1e-6)


def test_step_gradient_with_eot_is_the_mean_loss_gradient():
    rng = np.random.default_rng(2)
    w1, w2 = rng.normal(size=(2, 4, 16)).astype(np.float32)
    b1, b2 = rng.normal(scale=0.1, size=(2, 4)).astype(np.float32)
    x = tf.constant(rng.uniform(-0.5, 0.5, size=(5, 4, 4, 1)).astype(np.float32))
    y = tf.constant(rng.integers(0, 4, size=5), tf.int64)
    for loss_fn in (_common.eot_sparse_ce, _common.eot_dlr):
        step_fn = auto_pgd._make_step_fn(two_linear_models_fn(w1, b1, w2, b2), loss_fn)
        with tf.GradientTape() as tape:
            tape.watch(x)
            expected_loss = (loss_fn(y, linear_model_fn(w1, b1)(x))
                             + loss_fn(y, linear_model_fn(w2, b2)(x))) / 2
            total = tf.reduce_sum(expected_loss)
        expected = tape.gradient(total, x).numpy()
        for _ in range(3):
            loss, grad, _ = step_fn(x, y)
            np.testing.assert_allclose(loss.numpy(), expected_loss.numpy(), rtol=1e-5)
            np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-4, atol=1e-6)


def test_seed_and_restarts(victim):
    x, y = victim.x[:40], victim.y[:40]
    kwargs = dict(eps=0.3, nb_iter=10, loss="dlr")
    a = attacks.apgd(victim.model, x, y, seed=5, **kwargs).numpy()
    b = attacks.apgd(victim.model, x, y, seed=5, **kwargs).numpy()
    np.testing.assert_array_equal(a, b)
    two = attacks.apgd(victim.model, x, y, seed=5, n_restarts=2, **kwargs)
    # The first restart is the same run; the second only adds fooled examples.
    assert victim.fooled(two, y).sum() >= victim.fooled(a, y).sum()
    assert attacks.linf_distance(x, two).max() <= 0.3 + 1e-6
