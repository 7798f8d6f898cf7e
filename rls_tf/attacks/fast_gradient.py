"""FGSM, the L-inf Fast Gradient Sign Method, via CleverHans 4.0 (TF2)."""

import numpy as np
import tensorflow as tf
from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method

from rls_tf.attacks import _common
from rls_tf.attacks import checks


def fgsm(model_fn, x, y, eps, clip_min=-1.0, clip_max=1.0, targeted=False):
    """Fast Gradient Sign Method (L-inf), EOT-aware.

    Implements Goodfellow, Shlens & Szegedy, "Explaining and Harnessing
    Adversarial Examples", ICLR 2015 (https://arxiv.org/abs/1412.6572):
    ``x_adv = clip(x + eps * sign(grad_x loss(x, y)), clip_min, clip_max)``,
    computed by CleverHans 4.0's ``cleverhans.tf2.attacks.fast_gradient_method``
    with ``norm=np.inf`` and an EOT cross-entropy ``loss_fn``.

    Args:
        model_fn: callable ``x -> logits``, ``[B, K]``, or ``[E, B, K]`` for E
            stochastic draws of a randomised model. With rank-3 logits the
            loss is the per-draw cross-entropy averaged over the E draws, so
            the gradient is the EOT gradient (mean over draws) of one call.
            Randomness must come from TF ops (the gradient runs in a
            ``tf.function``).
        x: float ``[B, H, W, C]`` in ``[clip_min, clip_max]``.
        y: int ``[B]``, the true labels (required; the model's own prediction
            is never used), or the target labels if ``targeted``.
        eps: L-inf size of the step, ``>= 0``, in pixel units (the project's
            pixels are in [-1, 1], so eps=8/255 in [0, 1] units is 16/255).
        clip_min: lowest valid pixel value.
        clip_max: highest valid pixel value.
        targeted: if True, step towards ``y`` (minimise its loss).

    Returns:
        float32 ``tf.Tensor`` ``[B, H, W, C]`` with
        ``|x_adv - x|_inf <= eps`` and values in ``[clip_min, clip_max]``.

    Raises:
        ValueError: on a bad argument (the message names it).

    Example:

    ```python
    x_adv = fgsm(model, x, y, eps=0.1)   # x in [-1, 1], y int [B]
    robust_acc = np.mean(np.argmax(model(x_adv), -1) == y)
    ```
    """
    checks.check_model_fn(model_fn)
    x = checks.check_x(x, clip_min, clip_max)
    y = checks.check_labels(y, x.shape[0])
    checks.check_non_negative(eps, "eps")
    checks.check_bool("targeted", targeted)
    if x.shape[0] == 0:
        return x
    _common.probe_model(model_fn, x, y)
    x_adv = fast_gradient_method(
        model_fn,
        x,
        float(eps),
        np.inf,
        loss_fn=_common.eot_sparse_ce,
        clip_min=float(clip_min),
        clip_max=float(clip_max),
        y=y,
        targeted=bool(targeted),
    )
    return tf.convert_to_tensor(x_adv, tf.float32)
