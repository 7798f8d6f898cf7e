"""Helpers shared by the attacks: EOT losses, the decision function, Foolbox.

A ``model_fn`` returns logits ``[B, K]`` or ``[E, B, K]``, E stochastic draws
of a randomised model (Expectation over Transformation, Athalye et al. 2018).

- Loss-based attacks (FGSM, PGD, APGD) compute the per-example loss of every
  draw and average it over the E axis, so the gradient of one call is the
  mean of the E per-draw gradients (EOT).
- Minimum-norm attacks (DeepFool, C&W, EAD) need one decision function. For a
  rank-3 output they use ``log(mean_e softmax(logits_e))``, the log of the
  ensemble's mean probabilities: its argmax is the ensemble's prediction and
  its differences are log-probability ratios.

Common draws (``tied_fn``). The score-based attacks (Square, SPSA) compare
the loss of nearby points: a candidate against the current point, or
``x + delta v`` against ``x - delta v``. With E independent draws per point
the difference of two such estimates is dominated by the draws' noise (an
RLS path changes the margin by far more than one square or one SPSA
direction does), and the search becomes a random walk. A caller that can
fix the draws hands these attacks a ``tied_fn(x, copies)``: ``x`` is
``copies`` blocks of n examples stacked along the batch axis, and it returns
``[E, copies * n, K]`` logits in which example i of every block is evaluated
with the same E draws (common random numbers); the draws are fresh at every
call. `tied_logits` calls it. The comparison is then the paired difference,
whose noise vanishes where the points coincide.

Randomness inside ``model_fn`` must come from TensorFlow ops
(``tf.random.*``, Keras seed generators), not from NumPy or Python: the
gradients are computed inside ``tf.function`` (CleverHans does so too), where
Python-side randomness would be frozen at tracing time.
"""

import warnings

import numpy as np
import tensorflow as tf

from rls_tf.attacks import checks


def eot_sparse_ce(labels, logits):
    """Per-example sparse cross-entropy from logits, averaged over draws.

    Args:
        labels: int ``[B]``.
        logits: ``[B, K]`` or ``[E, B, K]``.

    Returns:
        ``[B]``: the cross-entropy, or for rank-3 logits its mean over the E
        draws (the EOT loss).

    Its signature ``(labels, logits)`` is CleverHans' ``loss_fn``. It is a
    module-level function so that CleverHans' ``tf.function`` gradient is
    traced once per model, not once per attack call.
    """
    logits = tf.convert_to_tensor(logits)
    labels = tf.cast(labels, tf.int64)
    if logits.shape.rank == 3:
        labels = tf.broadcast_to(labels[None, :], tf.shape(logits)[:2])
        per_draw = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=logits
        )
        return tf.reduce_mean(per_draw, axis=0)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


def tied_logits(model_fn, tied_fn, blocks):
    """Logits of the stacked ``blocks`` (each ``[n, ...]``), with common draws if possible.

    Args:
        model_fn: the attack's ``model_fn``.
        tied_fn: None, or ``(x, copies) -> [E, copies * n, K]`` (module docstring).
        blocks: list of tensors of the same shape ``[n, H, W, C]``.

    Returns:
        ``tied_fn(concat(blocks), len(blocks))``, or ``model_fn(concat(blocks))``
        (independent draws per row) without a ``tied_fn``.
    """
    x = tf.concat(blocks, 0)
    if tied_fn is None:
        return model_fn(x)
    return tied_fn(x, len(blocks))


def margin(labels, logits):
    """Per-draw margin ``max_{i != y} z_i - z_y`` of logits ``[B, K]`` or ``[E, B, K]``.

    Positive iff the logits do not predict ``y`` (up to ties); the shape of
    the logits without the class axis.
    """
    logits = tf.convert_to_tensor(logits)
    one_hot = tf.one_hot(tf.cast(labels, tf.int64), logits.shape[-1], dtype=logits.dtype)
    if logits.shape.rank == 3:
        one_hot = tf.broadcast_to(one_hot[None], tf.shape(logits))
    z_y = tf.reduce_sum(one_hot * logits, axis=-1)
    z_other = tf.reduce_max(
        tf.where(one_hot > 0, tf.constant(-np.inf, logits.dtype), logits), axis=-1
    )
    return z_other - z_y


def eot_margin(labels, logits):
    """Per-example margin loss ``max_{i != y} z_i - z_y``, averaged over draws.

    The high-confidence loss Carlini et al. (2019) advise for transfer and
    for checking an evaluation: positive once the example is misclassified,
    and unbounded, so maximising it pushes past the decision boundary.

    Args:
        labels: int ``[B]``.
        logits: ``[B, K]`` or ``[E, B, K]``.

    Returns:
        ``[B]``, or for rank-3 logits its mean over the E draws.
    """
    per_draw = margin(labels, logits)
    if per_draw.shape.rank == 2:
        return tf.reduce_mean(per_draw, axis=0)
    return per_draw


LOSSES = {"ce": eot_sparse_ce, "margin": eot_margin}


def eot_dlr(labels, logits):
    """Per-example DLR loss (Croce & Hein 2020, eq. 4), averaged over draws.

    ``DLR(z, y) = -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12)`` with
    ``z_pi1 >= z_pi2 >= ...`` the sorted logits. Needs K >= 3.

    Args:
        labels: int ``[B]``.
        logits: ``[B, K]`` or ``[E, B, K]``.

    Returns:
        ``[B]``: the DLR loss, or for rank-3 logits its mean over the draws.
    """
    logits = tf.convert_to_tensor(logits)
    num_classes = logits.shape[-1]
    one_hot = tf.one_hot(tf.cast(labels, tf.int64), num_classes, dtype=logits.dtype)
    if logits.shape.rank == 3:
        one_hot = tf.broadcast_to(one_hot[None], tf.shape(logits))
    z_y = tf.reduce_sum(one_hot * logits, axis=-1)
    # The largest logit among the other classes (the true one pushed to -inf).
    z_other = tf.reduce_max(
        tf.where(one_hot > 0, tf.constant(-np.inf, logits.dtype), logits), axis=-1
    )
    top3 = tf.math.top_k(logits, k=3).values
    dlr = -(z_y - z_other) / (top3[..., 0] - top3[..., 2] + 1e-12)
    if logits.shape.rank == 3:
        return tf.reduce_mean(dlr, axis=0)
    return dlr


def decision_logits(logits):
    """One decision function from logits ``[B, K]`` or ``[E, B, K]``.

    Rank 2: the logits themselves. Rank 3: ``log(mean_e softmax(logits_e))``
    (computed stably as ``logsumexp_e(log_softmax(logits_e)) - log E``).
    """
    logits = tf.convert_to_tensor(logits)
    if logits.shape.rank == 3:
        num_draws = tf.cast(tf.shape(logits)[0], logits.dtype)
        return tf.reduce_logsumexp(tf.nn.log_softmax(logits, axis=-1), axis=0) - (
            tf.math.log(num_draws)
        )
    return logits


def predicted_classes(logits):
    """The (ensemble) prediction ``[B]`` int64 of logits ``[B, K]`` or ``[E, B, K]``."""
    return tf.argmax(decision_logits(logits), axis=-1)


def probe_logits(model_fn, x, y):
    """Calls ``model_fn`` on the first example to check its output and ``y``.

    Returns:
        ``(K, logits)``: the number of classes and the probe's logits
        (``[1, K]``, or ``[E, 1, K]`` for a stochastic ``model_fn``).
    """
    logits = model_fn(x[:1])
    num_classes = checks.check_model_output(logits, 1)
    checks.check_labels_in_range(y, num_classes)
    return num_classes, logits


def probe_model(model_fn, x, y):
    """`probe_logits` without the logits: the number of classes K."""
    return probe_logits(model_fn, x, y)[0]


def make_rng(seed):
    """A ``tf.random.Generator``: seeded, or from a non-deterministic state."""
    if seed is None:
        return tf.random.Generator.from_non_deterministic_state()
    return tf.random.Generator.from_seed(int(seed))


# -- Foolbox -------------------------------------------------------------------


def import_foolbox():
    """Imports Foolbox (only the minimum-norm attacks need it), quietly.

    Foolbox 3.3.4 imports ``scipy.ndimage.filters``, deprecated in SciPy.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import foolbox  # pylint: disable=import-outside-toplevel

    return foolbox


def _default_device():
    # Foolbox's own default calls the deprecated tf.test.is_gpu_available().
    return "/GPU:0" if tf.config.list_physical_devices("GPU") else "/CPU:0"


def foolbox_model(model_fn, clip_min, clip_max):
    """Wraps ``model_fn`` as a Foolbox ``TensorFlowModel`` on the decision logits.

    The wrapped callable is a ``tf.function`` (eager Keras calls are several
    times slower for the hundreds of steps of C&W/EAD); it returns
    ``decision_logits(model_fn(x))``.
    """
    fb = import_foolbox()

    @tf.function(reduce_retracing=True)
    def decision_fn(x):
        return decision_logits(model_fn(x))

    return fb.TensorFlowModel(
        decision_fn, bounds=(float(clip_min), float(clip_max)), device=_default_device()
    ), decision_fn


def recording_criterion(labels):
    """A Foolbox ``Misclassification`` criterion that remembers its hits.

    C&W and EAD call their criterion on every iterate (with the confidence
    already added to the true class's logit) and store an iterate as best
    adversarial only when it returns True; for examples where it never did
    Foolbox returns an all-zero image. ``criterion.ever_adversarial`` (bool
    ``[B]``) tells the two apart exactly.
    """
    fb = import_foolbox()

    class RecordingMisclassification(fb.criteria.Misclassification):
        def __init__(self, labels):
            super().__init__(labels)
            self.ever_adversarial = np.zeros(len(labels), dtype=bool)

        def __call__(self, perturbed, outputs):
            is_adv = super().__call__(perturbed, outputs)
            self.ever_adversarial |= np.asarray(is_adv.numpy(), dtype=bool)
            return is_adv

    return RecordingMisclassification(labels)


def run_foolbox(attack, model_fn, x, y, clip_min, clip_max, success="recorded"):
    """Runs a Foolbox minimisation attack; returns x where it found nothing.

    Args:
        attack: a Foolbox ``MinimizationAttack`` instance.
        model_fn: the model (rank-2 or rank-3 logits).
        x: checked float32 tensor, within the clip range.
        y: checked int64 labels.
        clip_min, clip_max: the bounds given to Foolbox.
        success: "recorded" (an example succeeded iff the attack's criterion
            ever accepted one of its iterates: C&W, EAD) or "final" (iff the
            returned point is misclassified by one call of the decision
            function: DeepFool, whose result is its last iterate).

    Returns:
        float32 ``tf.Tensor`` like x: the attack's adversarial where it
        succeeded, x elsewhere.
    """
    fmodel, decision_fn = foolbox_model(model_fn, clip_min, clip_max)
    # int64 labels: Foolbox compares them with an int64 argmax, and eagerpy
    # 0.30 promotes mixed dtypes with np.find_common_type, gone in NumPy 2.
    criterion = recording_criterion(tf.cast(y, tf.int64))
    adv = attack.run(fmodel, x, criterion)
    adv = tf.convert_to_tensor(adv, tf.float32)
    if success == "recorded":
        found = tf.constant(criterion.ever_adversarial)
    else:
        pred = tf.argmax(decision_fn(adv), axis=-1)
        found = tf.not_equal(pred, y)
    finite = tf.reduce_all(
        tf.math.is_finite(tf.reshape(adv, [tf.shape(adv)[0], -1])), axis=1
    )
    found = tf.logical_and(found, finite)
    adv = tf.where(found[:, None, None, None], adv, x)
    return tf.clip_by_value(adv, clip_min, clip_max)


def ceil_div(numerator, denominator):
    """Integer ceiling of ``numerator / denominator`` (exact)."""
    return -((-numerator) // denominator)
