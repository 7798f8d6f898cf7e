"""Square Attack (L-inf) of Andriushchenko et al. 2020, in TensorFlow.

Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient
black-box adversarial attack via random search", ECCV 2020
(https://arxiv.org/abs/1912.00049), Algorithm 1 with the L-inf sampling
distribution (Algorithm 2). It is a score-based black-box attack: it uses
only the model's outputs, never a gradient, so it is a useful check against
gradient masking.

Implementation choice: our own TensorFlow code written from the paper; the
details the paper leaves open were checked against the authors' code,
``max-andr/square-attack`` file ``attack.py`` (``square_attack_linf``,
``p_selection``, the margin loss of ``models.py``) and AutoAttack's
``fra31/auto-attack`` file ``autoattack/square.py`` (``SquareAttack``, whose
acceptance rule, "loss improved or misclassified", and CE option we follow).

The algorithm, per example (vectorised over the examples still attacked):

- initialisation by vertical stripes: every column of every channel is
  shifted by ``+eps`` or ``-eps`` (a uniform random sign), clipped to the
  pixel range;
- at iteration i, a square of side ``s = round(sqrt(p_i * H * W))`` (at least
  1, at most ``min(H, W) - 1``) at a uniformly random position of each
  image is set, per channel, to ``x + eps`` or ``x - eps`` (random signs,
  resampled until the candidate differs from the current point, as the
  authors' code does), clipped to the pixel range;
- the candidate replaces the current point if its loss is lower, or if it
  is misclassified (see `accept_candidate`);
- an example is no longer attacked once it is misclassified;
- ``p_i`` follows the paper's schedule (`p_selection`): ``p_init``, halved
  at iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 of 10000,
  rescaled to the number of iterations the budget allows.

Losses (to be minimised): "margin" ``z_y - max_{i != y} z_i`` (the paper's
untargeted loss, the default) or "ce", minus the cross-entropy (AutoAttack's
option). An example counts as misclassified when the margin of the decision
function `_common.decision_logits` is negative.

Randomised models (``model_fn`` returning ``[E, B, K]``, E fresh draws per
call). The loss of a point is the per-draw loss averaged over the E draws,
the EOT loss that PGD and APGD of this package use too, and the one that
Croce & Hein describe for Square Attack on randomised defences ("accept an
update if it reduces the target loss on average over 20 forward passes",
https://arxiv.org/abs/2003.01690, and AutoAttack issue 56). Because every
call draws fresh randomness, a loss cached from an earlier call is a stale,
selected estimate: the current point would keep the luckiest estimate it
ever got, against which most later candidates lose. So at every iteration
the current point is re-evaluated in the same call as its candidate and the
two fresh E-draw estimates are compared; a candidate replaces the current
point iff its estimated loss is lower. Two further rules, both found
necessary on RLS (a first version without them left RLS at 99% under 1,000
queries where EOT-PGD brings it to about 50%):

- common draws: given a ``tied_fn`` (see `_common.tied_logits`) the current
  point and its candidate are judged by the *same* E draws, so their
  difference is the candidate's effect, not the draws' noise. Without one
  the two estimates are independent and the difference of E-draw means of
  two nearly equal points is mostly noise;
- no early stop and no "already misclassified" shortcut: whether a point
  fools the model is itself one E-draw estimate, often a lucky one (a
  first version that stopped there claimed, with E=1 on RLS, 25% of the
  points fooled; the defender's 10 fresh draws classified all of them
  correctly). Every example is attacked for the whole budget, and the
  margin keeps being pushed below zero, which is what makes fresh draws
  misclassify it too. ``success`` is the last estimate of the returned
  point: check ``x_adv`` against more draws.

This costs two queries per iteration. For a deterministic model (``[B, K]``)
the standard algorithm is kept: the current loss is cached, each iteration
costs one query, an example stops once misclassified and candidates are
ranked by being misclassified first (`accept_candidate`).

Query accounting, per example: one query is one evaluation of that example
by ``model_fn`` (for a randomised model, one evaluation of E draws, i.e. E
forward passes). Query 1 is the clean point: on a
deterministic model an example already misclassified there is returned
unchanged after 1 query (AutoAttack, too, attacks only the correctly
classified points). Query 2 is the stripe initialisation; then each
iteration costs 1 query (deterministic model) or 2 (randomised model: the
current point and the candidate), so that at most ``n_queries`` are spent on
any example (on a randomised model, ``n_queries`` or one less on every one).

Deviation from the authors' code: their square position is drawn from
``randint(0, h - s)``, which excludes ``h - s``, so their squares never
reach the last row and column; here positions are uniform over all
``(H - s + 1) * (W - s + 1)`` placements, as in the paper's Algorithm 2.
"""

import math

import numpy as np
import tensorflow as tf

from rls_tf.attacks import _common
from rls_tf.attacks import checks

LOSSES = ("margin", "ce")
# Iterations (out of 10000) after which p is halved (the paper and the
# authors' ``p_selection``).
P_HALVING_ITERATIONS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
# The redrawn sign vectors are bit masks of an int64: enough for every real
# image format (beyond 62 channels only the first 62 are ever flipped).
_MAX_MASK_BITS = 62


def p_selection(p_init, it, n_iters):
    """The fraction p of pixels changed at iteration ``it`` of ``n_iters``.

    The paper's piecewise-constant schedule for 10000 iterations, rescaled to
    ``n_iters`` as in the authors' code: ``it' = int(it / n_iters * 10000)``
    and p is ``p_init`` halved once for every threshold of
    ``P_HALVING_ITERATIONS`` that ``it'`` exceeds.

    Args:
        p_init: the initial fraction, in ``(0, 1]``.
        it: the iteration, ``0 <= it < n_iters``.
        n_iters: the number of iterations, ``>= 1``.

    Returns:
        float p: ``p_init`` for ``it' <= 10``, ``p_init / 2`` for
        ``10 < it' <= 50``, ..., ``p_init / 512`` for ``it' > 8000``.
    """
    scaled = int(it / n_iters * 10000)
    halvings = sum(scaled > threshold for threshold in P_HALVING_ITERATIONS)
    return p_init / 2**halvings


def square_side(p, height, width):
    """The side of the square of area ``p * height * width`` (rounded).

    Clipped to ``[1, min(height, width) - 1]`` as in the authors' code (to
    ``1`` for an image one pixel high or wide).
    """
    side = int(round(math.sqrt(p * height * width)))
    return min(max(side, 1), max(min(height, width) - 1, 1))


def margin_loss(labels, logits):
    """Per-draw margin ``z_y - max_{i != y} z_i`` of logits ``[..., B, K]``.

    Negative iff the logits do not predict ``y`` (up to ties): minus
    `_common.margin`.
    """
    return -_common.margin(labels, tf.cast(logits, tf.float32))


def evaluate_logits(labels, logits, loss):
    """The attack's view of one model call: ``(loss [B], fooled [B])``.

    Args:
        labels: int ``[B]``.
        logits: ``[B, K]`` or ``[E, B, K]``.
        loss: "margin" or "ce".

    Returns:
        ``loss``: float32 ``[B]`` to be minimised, the margin or minus the
        cross-entropy, averaged over the E draws for rank-3 logits (EOT).
        ``fooled``: bool ``[B]``, the margin of the decision logits
        (``log mean_e softmax``) is negative, i.e. the (ensemble)
        prediction is not ``y``.
    """
    logits = tf.cast(logits, tf.float32)
    if loss == "margin":
        value = margin_loss(labels, logits)
        if logits.shape.rank == 3:
            value = tf.reduce_mean(value, axis=0)
    else:
        value = -_common.eot_sparse_ce(labels, logits)
    fooled = margin_loss(labels, _common.decision_logits(logits)) < 0.0
    return value, fooled


def accept_candidate(current_loss, current_fooled, candidate_loss, candidate_fooled):
    """Which candidates replace the current points (bool ``[B]``).

    Points are ranked first by being misclassified, then by a lower loss: a
    candidate is accepted if it is misclassified and the current point is
    not, or if both are alike in that respect and the candidate's loss is
    strictly lower. For a deterministic model the current point of an
    attacked example is never misclassified, so this is AutoAttack's rule
    ("loss improved or misclassified"); for a randomised model the losses
    are E-draw means from the same call, so a candidate that improves some
    draws but worsens the mean is rejected.
    """
    return tf.logical_or(
        tf.logical_and(candidate_fooled, tf.logical_not(current_fooled)),
        tf.logical_and(
            tf.equal(candidate_fooled, current_fooled), candidate_loss < current_loss
        ),
    )


def _random_window(rng, n, height, width, side):
    """One ``side x side`` square per example, uniform over its placements.

    Returns:
        float32 ``[n, H, W, 1]``: 1 on each example's square, 0 elsewhere.
    """
    top = rng.uniform([n], 0, height - side + 1, dtype=tf.int32)
    left = rng.uniform([n], 0, width - side + 1, dtype=tf.int32)
    rows = tf.range(height, dtype=tf.int32)[None, :]
    cols = tf.range(width, dtype=tf.int32)[None, :]
    in_rows = tf.logical_and(rows >= top[:, None], rows < top[:, None] + side)
    in_cols = tf.logical_and(cols >= left[:, None], cols < left[:, None] + side)
    return (
        tf.cast(in_rows, tf.float32)[:, :, None, None]
        * tf.cast(in_cols, tf.float32)[:, None, :, None]
    )


def _window_signs(rng, window_sums, area):
    """Random square signs ``[n, C]`` (float32 +-1) that change the point.

    The authors' code redraws the C signs of the square until the candidate
    differs from the current point. A current point is ``x + sign * eps``
    (clipped) with signs +-1 (``x + eps`` and ``x - eps`` differ, even
    clipped, as eps > 0), so a channel's square is left unchanged by at most
    one sign, the one all its pixels already have, and at most one sign
    vector leaves the whole square unchanged. Where the uniform draw hit it,
    it is replaced by a uniform draw among the ``2^C - 1`` others (that
    vector with a uniform non-empty set of channels flipped): the redraw
    loop's distribution, without a loop.

    Args:
        rng: the attack's ``tf.random.Generator``.
        window_sums: float32 ``[n, C]``, the sum of the current signs over
            each example's square, per channel (``+-area`` where uniform).
        area: float32 scalar, the square's number of pixels.
    """
    n = tf.shape(window_sums)[0]
    channels = window_sums.shape[-1]
    unchanged_by = tf.where(
        tf.equal(window_sums, area),
        1.0,
        tf.where(tf.equal(window_sums, -area), -1.0, 0.0),
    )
    draws = rng.uniform([n, channels], 0, 2, dtype=tf.int32)
    signs = tf.cast(draws * 2 - 1, tf.float32)
    # All equal: the draw leaves every channel unchanged (never where one is 0).
    collide = tf.reduce_all(tf.equal(signs, unchanged_by), axis=1)
    bits_used = min(channels, _MAX_MASK_BITS)
    flips = rng.uniform([n], 1, 2**bits_used, dtype=tf.int64)
    shifts = tf.range(channels, dtype=tf.int64)[None]
    bits = tf.bitwise.bitwise_and(tf.bitwise.right_shift(flips[:, None], shifts), 1)
    redrawn = unchanged_by * (1.0 - 2.0 * tf.cast(bits, tf.float32))
    return tf.where(collide[:, None], redrawn, signs)


def _make_search_fn(model_fn, loss, rng, stochastic, tied_fn=None):
    """The random search, all its iterations in one ``tf.function``.

    The state is the whole batch's (fixed shapes, so the function is traced
    once per attack call): the current point of each example as its signs
    ``[B, H, W, C]`` (+-1: the pixel is ``plus = clip(x + eps)`` or
    ``minus = clip(x - eps)``), its loss, whether it is still attacked, its
    queries, whether its point is estimated misclassified. Each iteration of
    the ``tf.while_loop`` attacks the ``active`` examples with one model
    call; the loop ends early when none is left (a randomised model's
    examples stay active to the end). ``sides`` (int32 ``[n_iters]``) is the
    square side of every iteration. Returns the final ``(signs, loss_best,
    active, queries, fooled, n_calls)``.
    """
    cost = tf.constant(2 if stochastic else 1, tf.int64)

    def iteration(signs, plus, minus, y, loss_best, active, queries, fooled, side):
        _, height, width, _ = signs.shape
        idx = tf.where(active)
        cur = tf.gather_nd(signs, idx)
        n = tf.shape(cur)[0]
        window = _random_window(rng, n, height, width, side)
        area = tf.cast(side * side, tf.float32)
        new = _window_signs(rng, tf.reduce_sum(window * cur, axis=[1, 2]), area)
        # Exact in floating point: every term is 0 or +-1 or +-2.
        cand = cur + window * (new[:, None, None, :] - cur)
        plus_a, minus_a = tf.gather_nd(plus, idx), tf.gather_nd(minus, idx)
        y_a = tf.gather_nd(y, idx)
        x_cand = tf.where(cand > 0.0, plus_a, minus_a)
        if stochastic:
            # The current points and their candidates in one call, judged by
            # fresh E-draw estimates, the same draws for both given a
            # tied_fn (see the module docstring).
            x_cur = tf.where(cur > 0.0, plus_a, minus_a)
            both_loss, both_fooled = evaluate_logits(
                tf.concat([y_a, y_a], 0),
                _common.tied_logits(model_fn, tied_fn, [x_cur, x_cand]), loss
            )
            cur_loss, cand_loss = both_loss[:n], both_loss[n:]
            cur_fooled, cand_fooled = both_fooled[:n], both_fooled[n:]
            accept = cand_loss < cur_loss
        else:
            cand_loss, cand_fooled = evaluate_logits(y_a, model_fn(x_cand), loss)
            cur_loss = tf.gather_nd(loss_best, idx)
            cur_fooled = tf.zeros_like(cand_fooled)
            accept = accept_candidate(cur_loss, cur_fooled, cand_loss, cand_fooled)
        kept = cur + tf.cast(accept, tf.float32)[:, None, None, None] * (cand - cur)
        kept_fooled = tf.where(accept, cand_fooled, cur_fooled)
        return (
            tf.tensor_scatter_nd_update(signs, idx, kept),
            tf.tensor_scatter_nd_update(
                loss_best, idx, tf.where(accept, cand_loss, cur_loss)
            ),
            active if stochastic else tf.tensor_scatter_nd_update(
                active, idx, tf.logical_not(kept_fooled)),
            tf.tensor_scatter_nd_add(queries, idx, tf.fill([n], cost)),
            tf.tensor_scatter_nd_update(fooled, idx, kept_fooled),
        )

    @tf.function(reduce_retracing=True)
    def search_fn(signs, plus, minus, y, loss_best, active, queries, fooled, sides):
        n_iters = tf.shape(sides)[0]

        def cond(i, signs, loss_best, active, queries, fooled):
            del signs, loss_best, queries, fooled
            return tf.logical_and(i < n_iters, tf.reduce_any(active))

        def body(i, signs, loss_best, active, queries, fooled):
            state = iteration(
                signs, plus, minus, y, loss_best, active, queries, fooled, sides[i]
            )
            return (i + 1,) + state

        n_calls, signs, loss_best, active, queries, fooled = tf.while_loop(
            cond, body, (tf.constant(0), signs, loss_best, active, queries, fooled)
        )
        return signs, loss_best, active, queries, fooled, n_calls

    return search_fn


def square(
    model_fn,
    x,
    y,
    eps,
    n_queries=5000,
    p_init=0.8,
    loss="margin",
    clip_min=-1.0,
    clip_max=1.0,
    seed=None,
    return_info=False,
    tied_fn=None,
):
    """Square Attack (L-inf, untargeted, score-based black box), EOT-aware.

    Andriushchenko et al., ECCV 2020 (https://arxiv.org/abs/1912.00049):
    random search over the vertices of the L-inf ball, from a vertical-stripe
    start, changing one random square per iteration and keeping it if the
    loss decreases; see the module docstring for the exact rules, the
    treatment of randomised models and the query accounting.

    Args:
        model_fn: callable ``x -> logits`` ``[B, K]`` or ``[E, B, K]`` (E
            fresh stochastic draws per call: the loss of a point is the
            per-draw loss averaged over E, and the current point is
            re-evaluated in the same call as its candidate). Randomness
            must come from TF ops (the iteration runs in a ``tf.function``).
        x: float ``[B, H, W, C]`` in ``[clip_min, clip_max]``.
        y: int ``[B]`` true labels (required).
        eps: L-inf radius, ``>= 0``.
        n_queries: the most queries spent on one example, ``>= 1`` (one
            query = one evaluation of the example, all E draws of a
            randomised model counting as one).
        p_init: initial fraction of pixels in the square, in ``(0, 1]``
            (0.05 is the paper's default for undefended ImageNet models,
            0.8, AutoAttack's, suits MNIST/CIFAR models).
        loss: "margin" (``z_y - max_{i != y} z_i``, the paper's) or "ce"
            (the cross-entropy, maximised).
        clip_min: lowest valid pixel value.
        clip_max: highest valid pixel value.
        seed: int seed of the attack's randomness, a ``tf.random.Generator``
            (None: non-deterministic). On a deterministic model a seed
            reproduces the result exactly; the model's own randomness is
            not seeded by it.
        return_info: also return a dict of statistics.
        tied_fn: optional ``(x, copies) -> [E, copies * n, K]`` evaluating
            stacked blocks with common draws (`_common.tied_logits`); used for
            a randomised model's current-versus-candidate comparisons.

    Returns:
        float32 ``tf.Tensor`` ``[B, H, W, C]`` with ``|x_adv - x|_inf <= eps``
        and values in ``[clip_min, clip_max]``: for a deterministic model,
        for each example the first point found misclassified, else the
        lowest-loss point found; for a randomised model the current point at
        the end of the budget. With
        ``return_info=True``, ``(x_adv, info)`` where info has
        ``queries`` (int64 ``[B]``, queries spent per example),
        ``success`` (bool ``[B]``, misclassified by the attacker's last
        estimate), ``forward_passes`` (int, ``sum(queries) * E``),
        ``draws`` (int, E; 1 for a deterministic model) and ``model_calls``
        (int, calls of ``model_fn``).

    Raises:
        ValueError: on a bad argument (the message names it).

    Example:

    ```python
    x_adv, info = square(model, x, y, eps=0.3, n_queries=1000, seed=0,
                         return_info=True)
    robust_acc = np.mean(np.argmax(model(x_adv), -1) == y)
    mean_queries = info["queries"][info["success"]].mean()
    # A randomised model, 10 draws per query (log-probabilities are logits),
    # the current point and its candidate judged by the same draws.
    eot_fn = lambda v: tf.math.log(model.sample(v, 10) + 1e-12)
    def tied_fn(v, copies):
        n = tf.shape(v)[0] // copies
        draws = tf.reshape(model.draw(10 * n), [10, n, -1])
        return tf.math.log(model.outputs(v, tf.tile(draws, [1, copies, 1])) + 1e-12)
    x_adv = square(eot_fn, x, y, eps=0.3, n_queries=1000, seed=0, tied_fn=tied_fn)
    ```
    """
    checks.check_model_fn(model_fn)
    x = checks.check_x(x, clip_min, clip_max)
    y = checks.check_labels(y, x.shape[0])
    checks.check_non_negative(eps, "eps")
    checks.check_positive_int(n_queries, "n_queries")
    checks.check_fraction(p_init, "p_init")
    checks.check_choice(loss, "loss", LOSSES)
    checks.check_seed(seed)
    checks.check_bool("return_info", return_info)
    checks.check_tied_fn(tied_fn)
    batch = int(x.shape[0])
    if batch == 0:
        info = {"queries": np.zeros(0, np.int64), "success": np.zeros(0, bool),
                "forward_passes": 0, "draws": 0, "model_calls": 0}
        return (x, info) if return_info else x

    eps, p_init = float(eps), float(p_init)
    clip_min, clip_max = float(clip_min), float(clip_max)
    _, height, width, channels = x.shape

    # Query 1: the clean points (this call also checks the model's output).
    logits = tf.convert_to_tensor(model_fn(x))
    num_classes = checks.check_model_output(logits, batch)
    checks.check_labels_in_range(y, num_classes)
    stochastic = logits.shape.rank == 3
    draws = int(logits.shape[0]) if stochastic else 1
    loss_best, fooled = evaluate_logits(y, logits, loss)
    # A randomised model's "misclassified" is one estimate: attack every example.
    active = tf.ones_like(fooled) if stochastic else tf.logical_not(fooled)
    queries = tf.ones([batch], tf.int64)
    model_calls = 1
    x_best = x

    if eps > 0 and n_queries >= 2 and bool(tf.reduce_any(active)):
        rng = _common.make_rng(seed)
        plus = tf.clip_by_value(x + eps, clip_min, clip_max)
        minus = tf.clip_by_value(x - eps, clip_min, clip_max)
        # Query 2: vertical stripes, one sign per column and channel.
        stripes = rng.uniform([batch, 1, width, channels], 0, 2, dtype=tf.int32)
        signs = tf.broadcast_to(tf.cast(stripes * 2 - 1, tf.float32), x.shape)
        attacked = active
        idx = tf.where(active)
        x_init = tf.where(tf.gather_nd(signs, idx) > 0.0, tf.gather_nd(plus, idx),
                          tf.gather_nd(minus, idx))
        init_loss, init_fooled = evaluate_logits(
            tf.gather_nd(y, idx), model_fn(x_init), loss
        )
        model_calls += 1
        loss_best = tf.tensor_scatter_nd_update(loss_best, idx, init_loss)
        queries = queries + tf.cast(active, tf.int64)
        fooled = tf.tensor_scatter_nd_update(fooled, idx, init_fooled)
        if not stochastic:
            active = tf.tensor_scatter_nd_update(active, idx, tf.logical_not(init_fooled))

        n_iters = (n_queries - 2) // (2 if stochastic else 1)
        if n_iters > 0 and bool(tf.reduce_any(active)):
            sides = [
                square_side(p_selection(p_init, it, n_iters), height, width)
                for it in range(n_iters)
            ]
            search_fn = _make_search_fn(model_fn, loss, rng, stochastic, tied_fn)
            signs, loss_best, active, queries, fooled, n_calls = search_fn(
                signs, plus, minus, y, loss_best, active, queries, fooled,
                tf.constant(sides, tf.int32),
            )
            model_calls += int(n_calls)
        x_best = tf.where(
            attacked[:, None, None, None], tf.where(signs > 0.0, plus, minus), x
        )

    x_adv = tf.convert_to_tensor(x_best, tf.float32)
    if not return_info:
        return x_adv
    queries = queries.numpy()
    info = {
        "queries": queries,
        "success": fooled.numpy(),
        "forward_passes": int(queries.sum()) * draws,
        "draws": draws,
        "model_calls": model_calls,
    }
    return x_adv, info
