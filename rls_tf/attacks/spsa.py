"""SPSA (L-inf) of Uesato et al. 2018, batched, in TensorFlow.

Uesato, O'Donoghue, van den Oord & Kohli, "Adversarial Risk and the Dangers
of Evaluating Against Weak Attacks", ICML 2018
(https://arxiv.org/abs/1802.05666), Algorithm 1 with the Adam update and
the margin (logit-difference) loss of CleverHans' implementation
(``cleverhans.tf2.attacks.spsa``: ``SPSAAdam``, ``margin_logit_loss``,
``projected_optimization``).

Implementation choice: our own TensorFlow code, not a wrapper of CleverHans
4.0's ``spsa``. That function was tried first, under TF 2.21 / Keras 3:

- it fails at once: ``SPSAAdam`` subclasses ``tf.optimizers.Adam`` (now the
  Keras 3 optimizer) and calls ``super().__init__(lr=...)``, which raises
  ``ValueError: Argument(s) not recognized: {'lr': 0.01}``. A shim that
  replaces ``SPSAAdam`` by a plain class borrowing its methods does run
  (inside a ``tf.function``; a Keras optimizer cannot even be constructed
  there, it creates variables), about 0.3 s per image for 100 iterations of
  128 samples on the test CNN;
- it refuses any batch but one (``ValueError: For SPSA, input tensor x must
  have batch_size of 1``), so a batch is a Python loop of single images;
- rank-3 ``[E, B, K]`` logits break it (its margin loss is ``[E, 2n]``, then
  reshaped to ``[2n, 1, 1, 1]``: ``InvalidArgumentError``), so EOT would need
  a second patch, of ``margin_logit_loss``;
- its random directions and random start are unseeded ``tf.random.uniform``
  ops: reproducing a run needs the caller's global ``tf.random.set_seed``;
- its early stop compares the batch *mean* loss with a threshold, and it
  reports no query counts.

Three patches of CleverHans' internals and a per-image loop would be
CleverHans in name only, so the algorithm is written out here, batched (every
example of the batch at once, each with its own random directions), with the
same steps as CleverHans, per example:

- start: ``x_0`` uniform in the eps-ball around ``x`` (CleverHans' random
  start; ``rand_init=False`` starts at ``x`` as the paper's Algorithm 1),
  clipped to the pixel range;
- each iteration draws ``nb_sample / 2`` Rademacher directions
  ``v_j in {-1, +1}^D`` and evaluates the loss at the antithetic pairs
  ``x_t +- delta * v_j`` (``nb_sample`` points; like CleverHans they are not
  clipped to the pixel range), and estimates the gradient
  ``g = 1/(nb_sample/2) sum_j (L(x_t + delta v_j) - L(x_t - delta v_j)) / (2 delta) v_j``
  (the paper's estimator; CleverHans' is the same times ``delta``, a scale
  to which Adam is insensitive);
- the loss minimised is CleverHans' untargeted margin loss
  ``z_y - max_{i != y} z_i`` (negative iff misclassified), i.e. minus
  ``_common.eot_margin``; for rank-3 logits the per-draw margin is averaged
  over the E draws;
- Adam step on the perturbation (``beta_1 = 0.9``, ``beta_2 = 0.999``,
  ``epsilon = 1e-7``, step ``learning_rate``, bias-corrected, per-example
  moments), then projection onto the eps-ball and the pixel range;
- early stop, per example (CleverHans: ``early_stop_loss_threshold=0``, but
  per example rather than on the batch mean): the current point ``x_t`` is
  evaluated in the same model call as its samples; once the model
  misclassifies it (the prediction of the mean softmax over the draws, for
  rank-3 logits) the example keeps that point and is no longer queried. Only
  the examples still running are passed to the model, so the work shrinks as
  the attack succeeds. By default only for a deterministic model: for a
  randomised one that judgement is one E-draw estimate, and stopping on a
  lucky one returns a point the defender's fresh draws classify correctly.

Randomised models: the margin of a point is averaged over its E draws
(EOT). Independent draws for ``x + delta v`` and ``x - delta v`` make the
finite difference mostly noise (the draws move the margin far more than a
step of size ``delta``), so the caller that can fix the draws passes a
``tied_fn`` (`_common.tied_logits`): every point of one example's estimate
is then judged by the same E draws, fresh at every iteration.

One iteration is a ``tf.function`` with a dynamic batch dimension, traced
once per call of ``spsa`` (``info["traces"]``). Checked against the shimmed
CleverHans on the test CNN (eps=0.5, 100 iterations of 128 samples, lr
0.01, early stop, the same 40 images): accuracy 5% and 10% in two runs of
CleverHans, 10-20% over three seeds here, the same strength within the
noise; on 2 CPU cores this code takes about 25 s for the 100-image batch,
the shim about 0.2-0.3 s per image.
"""

import numpy as np
import tensorflow as tf

from rls_tf.attacks import _common
from rls_tf.attacks import checks

ADAM_BETA_1 = 0.9
ADAM_BETA_2 = 0.999
ADAM_EPSILON = 1e-7  # tf.optimizers.Adam's default, which CleverHans' SPSAAdam inherits.


def _make_step_fn(model_fn, rng, image_shape, nb_sample, delta, learning_rate,
                  eps, clip_min, clip_max, early_stop, tied_fn=None):
    """One SPSA iteration on the running examples, a ``tf.function``.

    ``(x, x_adv, y, m, u, t) -> (x_new, m_new, u_new, fooled)``: ``fooled``
    (bool ``[b]``) says that the model misclassifies ``x_adv`` itself (always
    False without early stop, where ``x_adv`` is not evaluated).
    """
    half = nb_sample // 2
    rank = len(image_shape) + 1
    image_spec = tf.TensorSpec([None] + list(image_shape), tf.float32)
    signature = [image_spec, image_spec, tf.TensorSpec([None], tf.int64),
                 image_spec, image_spec, tf.TensorSpec([], tf.float32)]

    @tf.function(input_signature=signature)
    def step_fn(x, x_adv, y, m, u, t):
        batch = tf.shape(x_adv)[0]
        signs = rng.uniform(tf.concat([[half], tf.shape(x_adv)], 0)) < 0.5
        v = tf.where(signs, 1.0, -1.0)  # [half, b, ...] Rademacher
        points = [x_adv[None] + delta * v, x_adv[None] - delta * v]
        if early_stop:
            points.insert(0, x_adv[None])
        points = tf.concat(points, 0)  # [P, b, ...], P = nb_sample (+ 1)
        num_points = int(points.shape[0])
        # Point-major blocks of the running examples: with a tied_fn every
        # point of an example is judged by that example's same E draws.
        logits = _common.tied_logits(model_fn, tied_fn, tf.unstack(points, axis=0))
        labels = tf.tile(y, [num_points])
        loss = tf.reshape(-_common.eot_margin(labels, logits), [num_points, batch])
        if early_stop:
            center = logits[:batch] if logits.shape.rank == 2 else logits[:, :batch]
            fooled = tf.not_equal(_common.predicted_classes(center), y)
            loss = loss[1:]
        else:
            fooled = tf.zeros([batch], tf.bool)
        diff = (loss[:half] - loss[half:]) / (2.0 * delta)  # [half, b]
        grad = tf.reduce_mean(tf.reshape(diff, [half, batch] + [1] * (rank - 1)) * v, 0)
        m_new = ADAM_BETA_1 * m + (1.0 - ADAM_BETA_1) * grad
        u_new = ADAM_BETA_2 * u + (1.0 - ADAM_BETA_2) * tf.square(grad)
        m_hat = m_new / (1.0 - tf.pow(ADAM_BETA_1, t))
        u_hat = u_new / (1.0 - tf.pow(ADAM_BETA_2, t))
        x_new = x_adv - learning_rate * m_hat / (tf.sqrt(u_hat) + ADAM_EPSILON)
        x_new = tf.clip_by_value(x_new, tf.maximum(x - eps, clip_min),
                                 tf.minimum(x + eps, clip_max))
        return x_new, m_new, u_new, fooled

    return step_fn


def _make_predict_fn(model_fn, image_shape):
    """``(x, y) -> misclassified [b]``, a ``tf.function`` (the final check)."""

    @tf.function(input_signature=[tf.TensorSpec([None] + list(image_shape), tf.float32),
                                  tf.TensorSpec([None], tf.int64)])
    def predict_fn(x, y):
        return tf.not_equal(_common.predicted_classes(model_fn(x)), y)

    return predict_fn


def spsa(
    model_fn,
    x,
    y,
    eps,
    nb_iter=100,
    nb_sample=128,
    delta=0.01,
    learning_rate=0.01,
    clip_min=-1.0,
    clip_max=1.0,
    seed=None,
    early_stop=None,
    rand_init=True,
    return_info=False,
    tied_fn=None,
):
    """SPSA (L-inf), a gradient-free attack, batched and EOT-aware.

    Implements Uesato et al., "Adversarial Risk and the Dangers of Evaluating
    Against Weak Attacks", ICML 2018 (https://arxiv.org/abs/1802.05666), as
    CleverHans' ``cleverhans.tf2.attacks.spsa`` does (random start, margin
    loss, Adam on SPSA gradient estimates from antithetic Rademacher pairs,
    projection), but on the whole batch at once, seeded, with per-example
    early stopping and query counts. Our own code: CleverHans 4.0's ``spsa``
    fails under Keras 3 and takes one image at a time (see the module
    docstring for what was tried).

    Only ``model_fn``'s outputs are used, never its gradients: SPSA is the
    check for gradient masking. Each iteration makes one call of
    ``model_fn`` on ``nb_sample`` (+ 1 with ``early_stop``) points per
    running example, so memory grows with ``nb_sample * B``; split large
    batches.

    Args:
        model_fn: callable ``x -> logits`` ``[B, K]`` or ``[E, B, K]`` (E
            stochastic draws; the margin loss of every point is averaged
            over them). Randomness must come from TF ops (it runs in a
            ``tf.function``).
        x: float ``[B, H, W, C]`` in ``[clip_min, clip_max]``.
        y: int ``[B]`` true labels (required).
        eps: L-inf radius of the ball, ``>= 0``.
        nb_iter: number of Adam steps per example, ``>= 1``.
        nb_sample: model evaluations per gradient estimate (``nb_sample / 2``
            antithetic pairs), an even integer ``>= 2`` (CleverHans'
            ``spsa_samples``).
        delta: finite-difference step of the perturbations, ``> 0``.
        learning_rate: Adam's step size, ``> 0`` (about the L-inf move per
            step). 0.01 is CleverHans' default, for ``[0, 1]`` pixels; on the
            project's ``[-1, 1]`` range the same relative step is 0.02. On
            the undefended test CNN at eps=0.5, 100 steps at 0.01 leave
            10-20% of the examples correct, 50 steps at 0.05 about 2%.
        clip_min: lowest valid pixel value.
        clip_max: highest valid pixel value.
        seed: int seed of the random start and the directions (a
            ``tf.random.Generator``; None: non-deterministic). The same seed
            reproduces the attack on a deterministic model; a randomised
            model's own randomness is not seeded by it.
        early_stop: stop an example as soon as the model misclassifies its
            current point (costs one query per iteration, in the same call).
            None (default): on for a deterministic model, off for a
            randomised one, whose "misclassified" is one E-draw estimate,
            often a lucky one: it runs every iteration instead, pushing the
            margin further below zero.
        rand_init: start from a uniform random point of the eps-ball
            (CleverHans); False starts from ``x`` (the paper's Algorithm 1).
        return_info: also return a dict of query counts.
        tied_fn: optional ``(x, copies) -> [E, copies * n, K]`` evaluating
            stacked blocks with common draws (`_common.tied_logits`): for a
            randomised model all the points of one example's gradient
            estimate are then judged by the same E draws, so that the
            finite differences measure the directions, not the draws' noise
            (with independent draws, a difference of two E-draw means
            divided by ``2 delta`` is mostly noise).

    Returns:
        float32 ``tf.Tensor`` ``[B, H, W, C]``, per example its point at the
        early stop, else the last iterate, with ``|x_adv - x|_inf <= eps``
        and values in ``[clip_min, clip_max]``. With ``return_info``, the
        tuple ``(x_adv, info)``, ``info`` a dict of:

        - ``"queries"``: int64 ``[B]``, per example the number of points
          evaluated for it (one query = one example through one call of
          ``model_fn``, whatever its E): ``nb_sample`` (+ 1 with early stop)
          per iteration run, plus, with early stop, one for the final check
          of an example that ran all ``nb_iter`` iterations;
        - ``"iterations"``: int64 ``[B]``, the Adam steps taken;
        - ``"stopped"``: bool ``[B]``, the model misclassified the returned
          point at its last evaluation (always False without early stop);
        - ``"forward_passes"``: int, the calls of ``model_fn`` (each on the
          running examples' points; the argument check's probe of one
          example is not counted);
        - ``"traces"``: int, how often the iteration was traced (1).

    Raises:
        ValueError: on a bad argument (the message names it).

    Example:

    ```python
    x_adv, info = spsa(model, x, y, eps=0.3, nb_iter=100, seed=0,
                       return_info=True)
    print(info["queries"].mean(), np.mean(np.argmax(model(x_adv), -1) == y))
    # EOT against a randomised model: 10 draws per query, averaged, the
    # same draws for all the points of an example (tied_fn as in `square`).
    eot_fn = lambda v: tf.math.log(model.sample(v, 10) + 1e-12)
    x_adv = spsa(eot_fn, x, y, eps=0.3, nb_sample=64, seed=0, tied_fn=tied_fn)
    ```
    """
    checks.check_model_fn(model_fn)
    x = checks.check_x(x, clip_min, clip_max)
    y = checks.check_labels(y, x.shape[0])
    checks.check_non_negative(eps, "eps")
    checks.check_positive_int(nb_iter, "nb_iter")
    checks.check_positive_int(nb_sample, "nb_sample", minimum=2)
    if nb_sample % 2:
        raise ValueError(
            "`nb_sample` must be even (the directions come in antithetic "
            f"pairs +-delta*v). Received: nb_sample={nb_sample!r}"
        )
    checks.check_positive(delta, "delta")
    checks.check_positive(learning_rate, "learning_rate")
    checks.check_seed(seed)
    if early_stop is not None:
        checks.check_bool("early_stop", early_stop)
    checks.check_bool("rand_init", rand_init)
    checks.check_bool("return_info", return_info)
    checks.check_tied_fn(tied_fn)

    batch = int(x.shape[0])
    queries = np.zeros(batch, np.int64)
    iterations = np.zeros(batch, np.int64)
    stopped = np.zeros(batch, bool)
    info = {"queries": queries, "iterations": iterations, "stopped": stopped,
            "forward_passes": 0, "traces": 0}
    if batch == 0:
        return (x, info) if return_info else x
    _, probe = _common.probe_logits(model_fn, x, y)
    if early_stop is None:
        early_stop = tf.convert_to_tensor(probe).shape.rank == 2

    eps = float(eps)
    clip_min, clip_max = float(clip_min), float(clip_max)
    rng = _common.make_rng(seed)
    image_shape = x.shape[1:]
    step_fn = _make_step_fn(model_fn, rng, image_shape, int(nb_sample), float(delta),
                            float(learning_rate), eps, clip_min, clip_max,
                            bool(early_stop), tied_fn)
    lower = tf.maximum(x - eps, clip_min)
    upper = tf.minimum(x + eps, clip_max)
    if rand_init:
        x_adv = tf.clip_by_value(x + rng.uniform(tf.shape(x), -eps, eps), lower, upper)
    else:
        x_adv = x
    # The iterate and Adam's per-example moments of the perturbation.
    state = {"x_adv": x_adv, "m": tf.zeros_like(x), "u": tf.zeros_like(x)}
    per_iteration = int(nb_sample) + int(early_stop)

    for k in range(nb_iter):
        running = np.flatnonzero(~stopped)
        if running.size == 0:
            break
        rows = tf.constant(running[:, None], tf.int64)
        x_new, m_new, u_new, fooled = step_fn(
            tf.gather_nd(x, rows), tf.gather_nd(state["x_adv"], rows),
            tf.gather_nd(y, rows), tf.gather_nd(state["m"], rows),
            tf.gather_nd(state["u"], rows), tf.constant(k + 1, tf.float32),
        )
        info["forward_passes"] += 1
        queries[running] += per_iteration
        fooled = fooled.numpy()
        stopped[running[fooled]] = True  # keeps the point it was fooled at
        moved = ~fooled
        iterations[running[moved]] += 1
        rows_moved = tf.constant(running[moved][:, None], tf.int64)
        for name, new in (("x_adv", x_new), ("m", m_new), ("u", u_new)):
            state[name] = tf.tensor_scatter_nd_update(
                state[name], rows_moved, tf.boolean_mask(new, moved))
    x_adv = state["x_adv"]

    if early_stop:  # the last step's points of the examples still running
        running = np.flatnonzero(~stopped)
        if running.size:
            predict_fn = _make_predict_fn(model_fn, image_shape)
            rows = tf.constant(running[:, None], tf.int64)
            fooled = predict_fn(tf.gather_nd(x_adv, rows), tf.gather_nd(y, rows)).numpy()
            info["forward_passes"] += 1
            queries[running] += 1
            stopped[running[fooled]] = True

    info["traces"] = int(step_fn.experimental_get_tracing_count())
    # Exact bounds (the Adam step and the projection already keep them).
    x_adv = tf.clip_by_value(x_adv, lower, upper)
    x_adv = tf.convert_to_tensor(x_adv, tf.float32)
    return (x_adv, info) if return_info else x_adv
