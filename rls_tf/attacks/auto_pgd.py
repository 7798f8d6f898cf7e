"""APGD, Auto-PGD (L-inf) of Croce & Hein 2020, in TensorFlow.

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble
of diverse parameter-free attacks", ICML 2020 (https://arxiv.org/abs/2003.01690),
Algorithm 1, with the cross-entropy or the DLR loss (APGD-CE, APGD-DLR).

Implementation choice: this is our own TensorFlow implementation written from
the paper. ART 1.20's ``AutoProjectedGradientDescent`` was not adopted (nor
evaluated): it would add a heavy dependency for one attack, and its
classifier wrappers take ``[B, K]`` outputs, so the EOT average of the
per-draw *losses* (not of the logits) would have to be folded into a wrapper
by hand. Here the attack takes the same ``model_fn`` as the others, a rank-3
``[E, B, K]`` output included, and averages the per-draw losses inside the
one model call before the gradient.

The algorithm, per example (all vectorised over the batch):

- random start ``x0`` uniform in the eps-ball (clipped to the pixel range);
  step size ``eta = 2 * eps``;
- ``z = P(x_k + eta * sign(grad f(x_k)))`` and, from the second step on,
  ``x_{k+1} = P(x_k + alpha (z - x_k) + (1 - alpha)(x_k - x_{k-1}))`` with
  momentum ``alpha = 0.75`` (the first step is ``x_1 = z``); ``P`` projects
  onto the eps-ball and the pixel range;
- checkpoints ``w_j = ceil(p_j * nb_iter)`` with ``p_0 = 0``, ``p_1 = 0.22``,
  ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)`` (``apgd_checkpoints``);
  at each one the step size is halved and the iterate restarts from the
  best point so far (with its gradient) if
  (1) fewer than ``rho * (w_j - w_{j-1})`` of the steps since the last
  checkpoint increased the loss, or
  (2) the step size was not reduced at the last checkpoint and the best loss
  has not improved since;
- the best (highest-loss) point is tracked per example; the attack's output
  is, per example, a point that was misclassified (the latest found, over
  all restarts), else the highest-loss point.

Where the authors' released code differs from the paper we follow the
paper: the checkpoint schedule (equal for nb_iter=100: 0, 22, 41, 57, 70,
80, 87, 93, 99; the code's integer schedule differs for small nb_iter),
condition 1's strict "fewer than" (the code uses <=), and condition 2 at the
first checkpoint (the code never applies it there).
"""

import numpy as np
import tensorflow as tf

from rls_tf.attacks import _common
from rls_tf.attacks import checks

LOSSES = ("ce", "dlr")
MOMENTUM = 0.75  # alpha of the paper.
_LOSS_FNS = {"ce": _common.eot_sparse_ce, "dlr": _common.eot_dlr}


def apgd_checkpoints(nb_iter):
    """The iterations at which APGD checks its step size.

    ``w_j = ceil(p_j * nb_iter)`` for ``p_0 = 0``, ``p_1 = 0.22``,
    ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)`` while ``p_j <= 1``
    (computed in exact integer hundredths; duplicates, possible for small
    nb_iter, are dropped).

    Args:
        nb_iter: number of iterations, ``>= 1``.

    Returns:
        Sorted list of ints starting with 0; for ``nb_iter=100``:
        ``[0, 22, 41, 57, 70, 80, 87, 93, 99]``.
    """
    checks.check_positive_int(nb_iter, "nb_iter")
    hundredths = [0, 22]
    while True:
        nxt = hundredths[-1] + max(hundredths[-1] - hundredths[-2] - 3, 6)
        if nxt > 100:
            break
        hundredths.append(nxt)
    return sorted({_common.ceil_div(p * nb_iter, 100) for p in hundredths})


def _make_step_fn(model_fn, loss_fn):
    """``(x, y) -> (loss [B], grad [B, ...], correct [B])``, one model call."""

    @tf.function(reduce_retracing=True)
    def step_fn(x_adv, y):
        with tf.GradientTape() as tape:
            tape.watch(x_adv)
            logits = model_fn(x_adv)
            loss = loss_fn(y, logits)
            total = tf.reduce_sum(loss)
        grad = tape.gradient(
            total, x_adv, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        correct = tf.equal(_common.predicted_classes(logits), y)
        return loss, grad, correct

    return step_fn


def _apgd_run(step_fn, x, y, eps, nb_iter, rho, rng, clip_min, clip_max):
    """One run (one random start) of APGD on a batch.

    Returns:
        dict with ``x_adv`` (latest misclassified point, else the random
        start), ``fooled`` (bool [B]), ``x_best`` and ``loss_best`` (highest
        loss point and its loss), and ``best_loss_trace`` (``[nb_iter + 1, B]``,
        the best loss after each iteration, the start included) and
        ``step_trace`` (``[nb_iter + 1, B]`` step sizes).
    """
    batch = x.shape[0]
    bshape = [batch] + [1] * (len(x.shape) - 1)
    lower = tf.maximum(x - eps, clip_min)
    upper = tf.minimum(x + eps, clip_max)

    def project(v):
        return tf.clip_by_value(v, lower, upper)

    x_adv = project(x + rng.uniform(tf.shape(x), -eps, eps))
    loss, grad, correct = step_fn(x_adv, y)
    x_out, fooled = x_adv, tf.logical_not(correct)
    x_best, loss_best, grad_best = x_adv, loss, grad
    step = tf.fill([batch], tf.constant(2.0 * eps, tf.float32))
    x_prev = x_adv
    loss_prev = loss

    checkpoints = set(apgd_checkpoints(nb_iter)) - {0}
    last_checkpoint = 0
    n_increased = tf.zeros([batch], tf.float32)
    loss_best_last_check = loss_best
    reduced_last_check = tf.zeros([batch], tf.bool)
    best_trace, step_trace = [loss_best], [step]

    for k in range(nb_iter):
        z = project(x_adv + tf.reshape(step, bshape) * tf.sign(grad))
        if k == 0:
            x_new = z
        else:
            x_new = project(
                x_adv + MOMENTUM * (z - x_adv) + (1.0 - MOMENTUM) * (x_adv - x_prev)
            )
        x_prev, x_adv = x_adv, x_new

        loss, grad, correct = step_fn(x_adv, y)
        miscls = tf.logical_not(correct)
        x_out = tf.where(tf.reshape(miscls, bshape), x_adv, x_out)
        fooled = tf.logical_or(fooled, miscls)
        n_increased += tf.cast(loss > loss_prev, tf.float32)
        loss_prev = loss
        improved = loss > loss_best
        x_best = tf.where(tf.reshape(improved, bshape), x_adv, x_best)
        grad_best = tf.where(tf.reshape(improved, bshape), grad, grad_best)
        loss_best = tf.where(improved, loss, loss_best)

        if k + 1 in checkpoints:
            interval = k + 1 - last_checkpoint
            cond1 = n_increased < rho * interval
            cond2 = tf.logical_and(
                tf.logical_not(reduced_last_check), loss_best <= loss_best_last_check
            )
            reduce = tf.logical_or(cond1, cond2)
            step = tf.where(reduce, step / 2.0, step)
            # Restart from the best point; x_prev stays x_k, so the next
            # momentum term is x_max - x_k, as in the paper's Algorithm 1.
            x_adv = tf.where(tf.reshape(reduce, bshape), x_best, x_adv)
            grad = tf.where(tf.reshape(reduce, bshape), grad_best, grad)
            loss_prev = tf.where(reduce, loss_best, loss_prev)
            reduced_last_check = reduce
            loss_best_last_check = loss_best
            n_increased = tf.zeros([batch], tf.float32)
            last_checkpoint = k + 1
        best_trace.append(loss_best)
        step_trace.append(step)

    return {
        "x_adv": x_out,
        "fooled": fooled,
        "x_best": x_best,
        "loss_best": loss_best,
        "best_loss_trace": tf.stack(best_trace),
        "step_trace": tf.stack(step_trace),
    }


def apgd(
    model_fn,
    x,
    y,
    eps,
    loss="ce",
    nb_iter=100,
    n_restarts=1,
    rho=0.75,
    seed=None,
    clip_min=-1.0,
    clip_max=1.0,
):
    """Auto-PGD (L-inf, untargeted), EOT-aware.

    Croce & Hein, ICML 2020 (https://arxiv.org/abs/2003.01690), Algorithm 1:
    PGD with momentum 0.75 and a step size (2 eps at first) halved at
    checkpoints when progress stalls, restarting from the best point; see
    the module docstring for the exact rules.

    Args:
        model_fn: callable ``x -> logits`` ``[B, K]`` or ``[E, B, K]`` (E
            stochastic draws: the per-draw losses are averaged over E before
            the gradient, i.e. EOT with E samples per step; misclassification
            is judged on the mean softmax of the same draws). Randomness
            must come from TF ops (the step runs in a ``tf.function``).
        x: float ``[B, H, W, C]`` in ``[clip_min, clip_max]``.
        y: int ``[B]`` true labels (required).
        eps: L-inf radius, ``>= 0``.
        loss: "ce" (cross-entropy) or "dlr" (Difference of Logits Ratio,
            ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12)``; K >= 3).
        nb_iter: iterations per restart, ``>= 1``.
        n_restarts: random restarts, ``>= 1``; each restart attacks only the
            examples not yet misclassified.
        rho: condition-1 threshold in ``(0, 1]``.
        seed: int seed of the random starts (None: non-deterministic); the
            model's own randomness is not seeded by it.
        clip_min: lowest valid pixel value.
        clip_max: highest valid pixel value.

    Returns:
        float32 ``tf.Tensor`` ``[B, H, W, C]``, ``|x_adv - x|_inf <= eps``, in
        ``[clip_min, clip_max]``: for each example a point found
        misclassified during the attack, else its highest-loss point.

    Raises:
        ValueError: on a bad argument (the message names it).

    Example:

    ```python
    x_adv = apgd(model, x, y, eps=0.3, loss="dlr", nb_iter=100, seed=0)
    robust_acc = np.mean(np.argmax(model(x_adv), -1) == y)
    ```
    """
    checks.check_model_fn(model_fn)
    x = checks.check_x(x, clip_min, clip_max)
    y = checks.check_labels(y, x.shape[0])
    checks.check_non_negative(eps, "eps")
    checks.check_choice(loss, "loss", LOSSES)
    checks.check_positive_int(nb_iter, "nb_iter")
    checks.check_positive_int(n_restarts, "n_restarts")
    checks.check_fraction(rho, "rho")
    checks.check_seed(seed)
    if x.shape[0] == 0:
        return x
    num_classes = _common.probe_model(model_fn, x, y)
    if loss == "dlr" and num_classes < 3:
        raise ValueError(
            "`loss`='dlr' needs at least 3 classes (it uses the third largest "
            f"logit). Received: loss={loss!r} for a model with {num_classes} classes"
        )
    if eps == 0:
        return x

    eps = float(eps)
    rng = _common.make_rng(seed)
    step_fn = _make_step_fn(model_fn, _LOSS_FNS[loss])
    x_out = x
    fooled = np.zeros(x.shape[0], dtype=bool)
    best_loss = np.full(x.shape[0], -np.inf, dtype=np.float32)
    for _ in range(n_restarts):
        todo = np.flatnonzero(~fooled)
        if todo.size == 0:
            break
        idx = tf.constant(todo[:, None], tf.int64)
        run = _apgd_run(
            step_fn,
            tf.gather_nd(x, idx),
            tf.gather_nd(y, idx),
            eps,
            nb_iter,
            float(rho),
            rng,
            float(clip_min),
            float(clip_max),
        )
        run_fooled = run["fooled"].numpy()
        run_loss = run["loss_best"].numpy()
        # Misclassified points win; otherwise keep the highest loss so far.
        better = run_fooled | (run_loss > best_loss[todo])
        candidate = tf.where(
            tf.reshape(run["fooled"], [-1, 1, 1, 1]), run["x_adv"], run["x_best"]
        )
        upd = todo[better]
        if upd.size:
            x_out = tf.tensor_scatter_nd_update(
                x_out,
                tf.constant(upd[:, None], tf.int64),
                tf.gather_nd(candidate, tf.constant(np.flatnonzero(better)[:, None])),
            )
        best_loss[todo] = np.maximum(best_loss[todo], run_loss)
        fooled[todo] |= run_fooled
    return tf.convert_to_tensor(x_out, tf.float32)
