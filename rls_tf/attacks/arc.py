"""ARC, the L-inf attack on randomised ensembles of Dbouk & Shanbhag (ICML 2022)."""

import weakref

import numpy as np
import tensorflow as tf

from rls_tf.attacks import checks

_short = checks._short  # pylint: disable=protected-access

# Added to the denominators exactly where the official code adds it.
_TINY = 1e-10
# How far the weights may sum away from 1 (float32 round-off of user input).
_WEIGHT_SUM_TOLERANCE = 1e-5


def arc(
    members_fn,
    x,
    y,
    eps,
    nb_iter=20,
    weights=None,
    eta=None,
    rho=None,
    num_hyperplanes=None,
    clip_min=-1.0,
    clip_max=1.0,
    return_info=False,
    member_fn=None,
):
    """ARC (Attacking Randomized ensembles of Classifiers), L-inf.

    Implements Dbouk & Shanbhag, "Adversarial Vulnerability of Randomized
    Ensembles", ICML 2022 (https://arxiv.org/abs/2206.06737), following the
    authors' code: ``attack_ARC_linf`` (and ``attack_ARC_linf_lite`` for
    ``num_hyperplanes``) in ``attack.py`` of https://github.com/hsndbk4/ARC
    at commit f90f4b95395ed47929c21cd0011993a211345892 (the file is unchanged
    since 2f34396ece4d050f2e19adad90a1d96eeafc1836; the same loop is
    ``arc_attack`` in ``hsndbk4/BARRE`` ``attack.py``). The TensorFlow code
    here is our own, batched and traced.

    A randomised ensemble (REC) draws member ``m`` with probability
    ``alpha_m`` for each input; its expected 0-1 loss at ``x`` is
    ``L(x) = sum_m alpha_m [argmax f_m(x) != y]``, which ARC maximises over
    the eps-ball. With ``delta`` the current perturbation (zero at the start)
    and the members visited by decreasing ``alpha`` (ties by increasing index;
    the official ``np.flip(np.argsort(alpha))`` visits tied members in
    reverse index order), each of the ``nb_iter`` iterations does:

    1. ``delta_l = 0`` (a local perturbation of L-inf norm ``eta``) and
       ``v_l = L(x + delta)``.
    2. For each member ``f_m`` in that order, at the point
       ``x + delta + delta_l`` (not projected, as in the official code):
       ``yhat`` its predicted class; for every class ``j != yhat``,
       ``w_j = grad(f_m[yhat] - f_m[j])`` and the L-inf distance to the
       linearised boundary ``zeta_j = |f_m[yhat] - f_m[j]| / (|w_j|_1 +
       1e-10)``; ``j*`` the closest (first on ties), ``zeta = zeta_j*``,
       ``g = -sign(w_j*)`` (the L-inf steepest direction towards that
       boundary) and ``g2 = -w_j* / (|w_j*|_1 + 1e-10)``.
       Step size ``beta = eta``, except for all but the first member where
       ``zeta < eta``: ``beta = eta / (eta - zeta + 1e-10) *
       |zeta - g2 . delta_l| + rho`` (from the local linear model: a step
       meant to just cross this member's boundary, ``rho`` past it, while
       keeping what ``delta_l`` already achieved).
       Candidate ``delta_hat = eta * (delta_l + beta g) / (|delta_l +
       beta g|_inf + 1e-10)``; it is kept (``delta_l = delta_hat``) iff
       ``L(x + P(delta + delta_hat)) >= v_l``, ``v_l`` the running max.
       ``P`` clips to ``[-eps, eps]`` and then ``x + .`` to
       ``[clip_min, clip_max]``.
    3. ``delta = P(delta + delta_l)`` iff that does not decrease ``L``.

    Acceptance, per example, is on "not lower" (the official ``new_acc <=
    acc``): ties are accepted, which lets ARC cross the plateaus of the 0-1
    loss, and ``L`` of the returned point is never below ``L(x)``. Like the
    official evaluation scripts (``--rand-init`` off) it starts from ``x``, so
    it is deterministic. Defaults: ``nb_iter=20`` and ``eta=eps`` as in the
    repository's README for ARC (``--attack-iters 20 --eta 8 --epsilon 8``),
    ``rho = 0.05 * eps`` as hard-coded there.

    Cost per iteration: for each member the gradients of member m's K logits
    and one call of ``members_fn`` for the candidate's loss. Without a
    ``member_fn`` the gradients come from a call of ``members_fn``, which
    evaluates all M members to use one (M times the work: on 50 MNIST images
    and 10 pinned RLS paths, 590 s per eps against 9 s for the plain network).
    ``num_hyperplanes=g`` is the official "lite" variant: only the ``g``
    classes with the largest logits after ``yhat`` are searched, and only
    ``g + 1`` gradients are taken.

    Args:
        members_fn: callable ``x -> logits [M, B, K]``: the M members of the
            REC, member m's logits in row m. The members must be fixed,
            deterministic functions (e.g. the pinned sampled models of a
            randomised network) and example b's logits must depend on
            ``x[b]`` only (per-example gradients are taken by one batched
            Jacobian).
        x: float ``[B, H, W, C]`` in ``[clip_min, clip_max]``.
        y: int ``[B]`` true labels (required).
        eps: L-inf radius of the ball, ``>= 0`` (0 returns ``x``).
        nb_iter: number of ARC iterations K, ``>= 1``.
        weights: the sampling probabilities ``alpha`` ``[M]``, non-negative,
            summing to 1; None means uniform ``1 / M``.
        eta: the local radius (step size), ``0 < eta <= eps``; None means
            ``eps``.
        rho: the positive constant added to the adaptive step to step past
            the boundary, ``>= 0``; None means ``0.05 * eps``.
        num_hyperplanes: None (all ``K - 1`` decision boundaries of each
            member, the full ARC) or an integer ``g`` in ``[1, K - 1]``
            (ARC-lite: the top ``g`` competing classes).
        clip_min: lowest valid pixel value.
        clip_max: highest valid pixel value.
        return_info: if True, also return a dict of NumPy arrays:
            ``"expected_loss_clean"`` and ``"expected_loss_adv"`` (float
            ``[B]``, the REC's expected 0-1 loss at ``x`` and at the result)
            and ``"order"`` (int ``[M]``, the member visiting order).
        member_fn: optional ``(x, m) -> logits [B, K]`` of member ``m`` alone
            (``m`` an int32 scalar tensor), equal to ``members_fn(x)[m]``:
            the gradient steps then evaluate one member, not all M.

    Returns:
        float32 ``tf.Tensor`` ``[B, H, W, C]`` with ``|x_adv - x|_inf <= eps``
        and values in ``[clip_min, clip_max]``; with ``return_info`` the pair
        ``(x_adv, info)``.

    Raises:
        ValueError: on a bad argument (the message names it).

    Example:

    ```python
    # Two members drawn with probabilities 0.9 and 0.1.
    members_fn = lambda v: tf.stack([model_a(v), model_b(v)])
    x_adv, info = arc(members_fn, x, y, eps=0.3, weights=[0.9, 0.1],
                      return_info=True)
    robust = 1.0 - info["expected_loss_adv"].mean()  # the REC's accuracy
    ```
    """
    if not callable(members_fn):
        raise ValueError(
            "`members_fn` must be a callable mapping x to the members' logits "
            f"[M, B, K]. Received: members_fn={_short(members_fn)}"
        )
    x = checks.check_x(x, clip_min, clip_max)
    y = checks.check_labels(y, x.shape[0])
    checks.check_non_negative(eps, "eps")
    checks.check_positive_int(nb_iter, "nb_iter")
    if eta is None:
        eta = eps
    else:
        checks.check_positive(eta, "eta")
        if eps > 0 and eta > eps:
            raise ValueError(
                f"`eta` must be <= `eps`. Received: eta={eta!r}, eps={eps!r}"
            )
    if rho is None:
        rho = 0.05 * eps
    checks.check_non_negative(rho, "rho")
    if num_hyperplanes is not None:
        checks.check_positive_int(num_hyperplanes, "num_hyperplanes")
    checks.check_bool("return_info", return_info)
    if member_fn is not None and not callable(member_fn):
        raise ValueError("`member_fn` must be None or a callable (x, m) -> logits [B, K]. "
                         f"Received: member_fn={_short(member_fn)}")

    batch = x.shape[0]
    if batch == 0:
        clean_loss = np.zeros([0], np.float32)
        order = None
        if weights is not None:
            order = _descending_order(_check_weights(weights, None))
        return _result(x, clean_loss, clean_loss, order, return_info)

    logits = members_fn(x)
    num_members, num_classes = _check_members_output(logits, batch)
    checks.check_labels_in_range(y, num_classes)
    alpha = _check_weights(weights, num_members)
    if num_hyperplanes is not None and num_hyperplanes > num_classes - 1:
        raise ValueError(
            "`num_hyperplanes` must be at most K - 1 = "
            f"{num_classes - 1} (the number of competing classes). "
            f"Received: num_hyperplanes={num_hyperplanes!r}"
        )
    order = _descending_order(alpha)
    alpha_t = tf.constant(alpha, tf.float32)
    clean_loss = _expected_loss(tf.convert_to_tensor(logits), y, alpha_t)
    if eps == 0:
        return _result(x, clean_loss.numpy(), clean_loss.numpy(), order, return_info)

    run = _traced_attack(members_fn, num_hyperplanes, member_fn)
    x_adv, adv_loss = run(
        x,
        y,
        alpha_t,
        tf.constant(order, tf.int32),
        clean_loss,
        tf.constant(float(eps), tf.float32),
        tf.constant(float(eta), tf.float32),
        tf.constant(float(rho), tf.float32),
        tf.constant(int(nb_iter), tf.int32),
        tf.constant(float(clip_min), tf.float32),
        tf.constant(float(clip_max), tf.float32),
    )
    return _result(x_adv, clean_loss.numpy(), adv_loss.numpy(), order, return_info)


# -- checks and small helpers -------------------------------------------------


def _check_members_output(logits, batch):
    """``members_fn`` must return float ``[M, B, K]``; returns ``(M, K)``."""
    shape = tuple(getattr(logits, "shape", ()))
    try:
        dtype = tf.as_dtype(logits.dtype)
    except (AttributeError, TypeError):
        dtype = None
    is_float = dtype is not None and dtype.is_floating
    ok = (
        len(shape) == 3
        and is_float
        and shape[0] is not None
        and shape[0] >= 1
        and shape[1] == batch
        and shape[2] is not None
        and shape[2] >= 2
    )
    if not ok:
        name = getattr(dtype, "name", dtype)
        raise ValueError(
            "`members_fn` must return float logits [M, B, K] (M members, B "
            "the batch size of x, K >= 2). Received: members_fn returning "
            f"shape={shape} dtype={name} for a batch of {batch}"
        )
    return int(shape[0]), int(shape[2])


def _check_weights(weights, num_members):
    """The sampling probabilities as float64 ``[M]`` (uniform if None)."""
    if weights is None:
        return np.full([num_members], 1.0 / num_members)
    short = _short(weights)
    try:
        value = weights.numpy() if isinstance(weights, tf.Tensor) else np.asarray(weights)
        real = np.issubdtype(value.dtype, np.floating) or np.issubdtype(
            value.dtype, np.integer
        )
        if value.dtype == np.bool_ or not real:
            raise TypeError
        value = value.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(
            "`weights` must be real sampling probabilities [M]. "
            f"Received: weights={short}"
        ) from err
    if value.ndim != 1 or value.size == 0:
        raise ValueError(
            f"`weights` must be a 1-D array [M] of sampling probabilities. "
            f"Received: weights={short}"
        )
    if num_members is not None and value.size != num_members:
        raise ValueError(
            f"`weights` must have one entry per member, M = {num_members} (the "
            f"first axis of members_fn's output). Received: weights={short} "
            f"with {value.size} entries"
        )
    if not np.all(np.isfinite(value)) or value.min() < 0:
        raise ValueError(
            f"`weights` must be finite and non-negative. Received: weights={short}"
        )
    total = float(value.sum())
    if abs(total - 1.0) > _WEIGHT_SUM_TOLERANCE:
        raise ValueError(
            f"`weights` must sum to 1 (they are sampling probabilities). "
            f"Received: weights={short} with sum={total!r}"
        )
    return value


def _descending_order(alpha):
    """Member indices by decreasing probability; ties keep index order."""
    return np.argsort(-np.asarray(alpha), kind="stable").astype(np.int32)


def _expected_loss(logits, y, alpha):
    """``sum_m alpha_m [argmax logits_m != y]`` ``[B]`` from ``[M, B, K]``."""
    wrong = tf.not_equal(tf.argmax(logits, axis=-1), tf.cast(y, tf.int64)[None, :])
    return tf.tensordot(alpha, tf.cast(wrong, tf.float32), axes=1)


def _result(x_adv, clean_loss, adv_loss, order, return_info):
    x_adv = tf.convert_to_tensor(x_adv, tf.float32)
    if not return_info:
        return x_adv
    info = {
        "expected_loss_clean": np.asarray(clean_loss, np.float32),
        "expected_loss_adv": np.asarray(adv_loss, np.float32),
        "order": None if order is None else np.asarray(order, np.int32),
    }
    return x_adv, info


# -- the traced attack -------------------------------------------------------

# One tf.function per (members_fn, num_hyperplanes): traced once per input
# shape, reused across calls. Weak keys: the cache does not keep models alive.
_TRACED = weakref.WeakKeyDictionary()


def _traced_attack(members_fn, num_hyperplanes, member_fn=None):
    try:
        per_fn = _TRACED.setdefault(members_fn, {})
    except TypeError:  # not weak-referenceable: build (and trace) afresh
        return _build_attack(members_fn, num_hyperplanes, member_fn)
    key = (num_hyperplanes, member_fn)
    if key not in per_fn:
        per_fn[key] = _build_attack(members_fn, num_hyperplanes, member_fn)
    return per_fn[key]


def _build_attack(members_fn, num_hyperplanes, member_fn=None):
    """The whole ARC loop as one ``tf.function`` for this ``members_fn``."""

    def boundary_direction(point, member):
        """``(g, g2, zeta)`` of member ``member`` at ``point`` (step 2)."""
        with tf.GradientTape() as tape:
            tape.watch(point)
            if member_fn is None:
                logits = tf.cast(tf.gather(members_fn(point), member), tf.float32)  # [B, K]
            else:
                logits = tf.cast(member_fn(point, member), tf.float32)
            if num_hyperplanes is None:
                z = logits
            else:  # ARC-lite: the top g + 1 logits, largest first
                z = tf.math.top_k(logits, k=num_hyperplanes + 1).values
        jac = tape.batch_jacobian(z, point)  # [B, K', H, W, C]
        jac = tf.reshape(jac, [tf.shape(jac)[0], tf.shape(jac)[1], -1])  # [B, K', D]
        if num_hyperplanes is None:
            pred = tf.argmax(z, axis=-1, output_type=tf.int32)
        else:
            pred = tf.zeros([tf.shape(z)[0]], tf.int32)
        z_pred = tf.gather(z, pred, batch_dims=1)  # [B]
        jac_pred = tf.gather(jac, pred, batch_dims=1)  # [B, D]
        w = jac_pred[:, None, :] - jac  # [B, K', D]
        w_l1 = tf.reduce_sum(tf.abs(w), axis=-1)  # [B, K']
        zeta_all = tf.abs(z_pred[:, None] - z) / (w_l1 + _TINY)
        is_self = tf.equal(tf.range(tf.shape(z)[1])[None, :], pred[:, None])
        zeta_all = tf.where(is_self, tf.constant(np.inf, z.dtype), zeta_all)
        closest = tf.argmin(zeta_all, axis=-1, output_type=tf.int32)  # first on ties
        zeta = tf.gather(zeta_all, closest, batch_dims=1)
        w_star = tf.gather(w, closest, batch_dims=1)  # [B, D]
        w_star_l1 = tf.gather(w_l1, closest, batch_dims=1)
        shape = tf.shape(point)
        g = tf.reshape(-tf.sign(w_star), shape)
        g2 = tf.reshape(-w_star / (w_star_l1[:, None] + _TINY), shape)
        return g, g2, zeta

    def loss_at(point, y, alpha):
        return _expected_loss(members_fn(point), y, alpha)

    @tf.function(reduce_retracing=True)
    def run(x, y, alpha, order, clean_loss, eps, eta, rho, nb_iter, clip_min, clip_max):
        def project(delta):  # P: into the eps-ball around x, then the pixel range
            inside = x + tf.clip_by_value(delta, -eps, eps)
            return tf.clip_by_value(inside, clip_min, clip_max)

        x_adv = x
        loss_best = clean_loss
        for _ in tf.range(nb_iter):
            delta = x_adv - x
            delta_local = tf.zeros_like(x)
            loss_local = loss_best
            for position in tf.range(tf.shape(order)[0]):
                g, g2, zeta = boundary_direction(x + delta + delta_local, order[position])
                dot = tf.reduce_sum(_flat(g2 * delta_local), axis=1)
                beta_c = eta / (eta - zeta + _TINY) * tf.abs(zeta - dot) + rho
                adaptive = tf.logical_and(position > 0, zeta < eta)
                beta = tf.where(adaptive, beta_c, eta)
                step = delta_local + _per_example(beta) * g
                step_inf = tf.reduce_max(tf.abs(_flat(step)), axis=1)
                delta_hat = eta * step / (_per_example(step_inf) + _TINY)
                loss_new = loss_at(project(delta + delta_hat), y, alpha)
                keep = loss_new >= loss_local
                delta_local = tf.where(_per_example(keep), delta_hat, delta_local)
                loss_local = tf.maximum(loss_local, loss_new)
            x_cand = project(delta + delta_local)
            loss_new = loss_at(x_cand, y, alpha)
            keep = loss_new >= loss_best
            x_adv = tf.where(_per_example(keep), x_cand, x_adv)
            loss_best = tf.maximum(loss_best, loss_new)
        return x_adv, loss_best

    return run


def _flat(t):
    """``[B, ...] -> [B, D]``."""
    return tf.reshape(t, [tf.shape(t)[0], -1])


def _per_example(v):
    """``[B] -> [B, 1, 1, 1]``, to broadcast over an image batch."""
    return tf.reshape(v, [-1, 1, 1, 1])
