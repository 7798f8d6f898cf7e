"""PGD, L-inf Projected Gradient Descent, on CleverHans 4.0 (TF2)."""

import numpy as np
import tensorflow as tf
from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method
from cleverhans.tf2.utils import clip_eta

from rls_tf.attacks import _common
from rls_tf.attacks import checks


def pgd(
    model_fn,
    x,
    y,
    eps,
    eps_iter=None,
    nb_iter=10,
    rand_init=False,
    rand_minmax=None,
    clip_min=-1.0,
    clip_max=1.0,
    targeted=False,
    seed=None,
    loss="ce",
):
    """Projected Gradient Descent (L-inf), EOT-aware.

    Implements Madry et al., "Towards Deep Learning Models Resistant to
    Adversarial Attacks", ICLR 2018 (https://arxiv.org/abs/1706.06083); with
    ``rand_init=False`` it is the Basic Iterative Method of Kurakin et al.
    2016. Each of the ``nb_iter`` steps is CleverHans 4.0's
    ``fast_gradient_method`` (sign of the gradient, step ``eps_iter``, an EOT
    cross-entropy ``loss_fn``) followed by CleverHans' ``clip_eta`` projection
    onto the eps-ball and clipping to ``[clip_min, clip_max]``.

    This is, step for step, CleverHans'
    ``cleverhans.tf2.attacks.projected_gradient_descent`` (the tests check
    that the two agree exactly without random start); the loop is spelt out
    here only so that the random start can be seeded: CleverHans draws it
    with an unseeded op.

    Args:
        model_fn: callable ``x -> logits`` ``[B, K]`` or ``[E, B, K]`` (E
            stochastic draws; the per-draw cross-entropy is averaged over
            them, so every step follows the EOT gradient). Randomness must
            come from TF ops.
        x: float ``[B, H, W, C]`` in ``[clip_min, clip_max]``.
        y: int ``[B]`` true labels (required), or target labels if ``targeted``.
        eps: L-inf radius of the ball, ``>= 0``.
        eps_iter: step size, ``0 <= eps_iter <= eps``; None means ``eps / 10``.
        nb_iter: number of steps, ``>= 1``.
        rand_init: start from a uniform random point of the L-inf ball of
            radius ``rand_minmax`` (clipped to the eps-ball and to the pixel
            range) instead of ``x``.
        rand_minmax: radius of the random start; None means ``eps``.
        clip_min: lowest valid pixel value.
        clip_max: highest valid pixel value.
        targeted: if True, descend the loss of the target labels ``y``.
        seed: int seed of the random start (None: non-deterministic). The
            model's own randomness is not seeded by it.
        loss: "ce" (cross-entropy, as Madry et al.) or "margin" (the
            high-confidence loss ``max_{i != y} z_i - z_y``, Carlini et al.
            2019; used for transfer), averaged over E draws either way.

    Returns:
        float32 ``tf.Tensor`` ``[B, H, W, C]``, the last iterate, with
        ``|x_adv - x|_inf <= eps`` and values in ``[clip_min, clip_max]``.

    Raises:
        ValueError: on a bad argument (the message names it).

    Example:

    ```python
    x_adv = pgd(model, x, y, eps=0.3, nb_iter=40, rand_init=True, seed=0)
    # EOT against a randomised model: 10 draws per gradient, one call
    # (log-probabilities are valid logits).
    eot_fn = lambda v: tf.math.log(rls_model.sample_outputs(v, 10) + 1e-12)
    x_adv = pgd(eot_fn, x, y, eps=0.3, nb_iter=40)
    ```
    """
    checks.check_model_fn(model_fn)
    x = checks.check_x(x, clip_min, clip_max)
    y = checks.check_labels(y, x.shape[0])
    checks.check_non_negative(eps, "eps")
    if eps_iter is None:
        eps_iter = eps / 10.0
    checks.check_non_negative(eps_iter, "eps_iter")
    if eps_iter > eps:
        raise ValueError(
            "`eps_iter` must be <= `eps`. "
            f"Received: eps_iter={eps_iter!r}, eps={eps!r}"
        )
    checks.check_positive_int(nb_iter, "nb_iter")
    checks.check_bool("rand_init", rand_init)
    if rand_minmax is None:
        rand_minmax = eps
    checks.check_non_negative(rand_minmax, "rand_minmax")
    checks.check_bool("targeted", targeted)
    checks.check_seed(seed)
    checks.check_choice(loss, "loss", tuple(_common.LOSSES))
    if x.shape[0] == 0:
        return x
    _common.probe_model(model_fn, x, y)

    eps = float(eps)
    clip_min, clip_max = float(clip_min), float(clip_max)
    if rand_init:
        rng = _common.make_rng(seed)
        eta = rng.uniform(tf.shape(x), -float(rand_minmax), float(rand_minmax))
    else:
        eta = tf.zeros_like(x)
    eta = clip_eta(eta, np.inf, eps)
    adv_x = tf.clip_by_value(x + eta, clip_min, clip_max)
    for _ in range(nb_iter):
        adv_x = fast_gradient_method(
            model_fn,
            adv_x,
            float(eps_iter),
            np.inf,
            loss_fn=_common.LOSSES[loss],
            clip_min=clip_min,
            clip_max=clip_max,
            y=y,
            targeted=bool(targeted),
        )
        eta = clip_eta(adv_x - x, np.inf, eps)
        adv_x = tf.clip_by_value(x + eta, clip_min, clip_max)
    return tf.convert_to_tensor(adv_x, tf.float32)
