"""MI-FGSM, the Momentum Iterative Fast Gradient Sign Method (L-inf), EOT-aware.

Dong, Liao, Pang, Su, Zhu, Hu & Li, "Boosting Adversarial Attacks with
Momentum", CVPR 2018 (https://arxiv.org/abs/1710.06081), Algorithm 1.

Implementation choice: our own TensorFlow loop, the same steps as CleverHans
4.0's ``cleverhans.tf2.attacks.momentum_iterative_method`` (the tests check
that the two agree on a plain model), which was not wrapped because it
hard-codes its cross-entropy ``loss_fn``: rank-3 ``[E, B, K]`` logits break it
(a ``[B]`` label against ``[E, B, K]`` logits), and it has no margin loss.
CleverHans normalises the gradient by its mean absolute value, the paper by
its L1 norm; the two differ by the constant factor D (pixels per example),
which leaves the sign of the accumulated gradient unchanged. One difference:
CleverHans divides by ``max(mean |grad|, 1e-12)``, so a vanishing gradient
(a saturated cross-entropy, far from the boundary) is not normalised and adds
almost nothing to the momentum; here every non-zero gradient is normalised
to unit L1 norm, as in the paper (an all-zero one adds zero).
"""

import numpy as np
import tensorflow as tf
from cleverhans.tf2.utils import clip_eta

from rls_tf.attacks import _common
from rls_tf.attacks import checks

LOSSES = tuple(_common.LOSSES)


def _make_gradient_fn(model_fn, loss_fn, image_shape):
    """``(x, y) -> grad`` of the summed per-example loss, traced once."""

    @tf.function(input_signature=[tf.TensorSpec([None] + list(image_shape), tf.float32),
                                  tf.TensorSpec([None], tf.int64)])
    def gradient_fn(x_adv, y):
        with tf.GradientTape() as tape:
            tape.watch(x_adv)
            loss = tf.reduce_sum(loss_fn(y, model_fn(x_adv)))
        return tape.gradient(loss, x_adv,
                             unconnected_gradients=tf.UnconnectedGradients.ZERO)

    return gradient_fn


def mi_fgsm(
    model_fn,
    x,
    y,
    eps,
    eps_iter=None,
    nb_iter=10,
    decay=1.0,
    loss="ce",
    clip_min=-1.0,
    clip_max=1.0,
):
    """Momentum Iterative FGSM (L-inf), EOT-aware.

    Implements Dong et al., "Boosting Adversarial Attacks with Momentum",
    CVPR 2018 (https://arxiv.org/abs/1710.06081), untargeted, from
    ``x_0 = x``, per example:

    ``g_{t+1} = decay * g_t + grad L(x_t, y) / ||grad L(x_t, y)||_1``,
    ``x_{t+1} = P(clip(x_t + eps_iter * sign(g_{t+1}), clip_min, clip_max))``

    with ``g_0 = 0`` and ``P`` the projection onto the eps-ball around ``x``
    and the pixel range. With ``decay=0`` it is the Basic Iterative Method,
    step for step ``pgd(..., rand_init=False)``. The momentum makes the
    attack transfer better between models (its purpose in the paper).

    Args:
        model_fn: callable ``x -> logits`` ``[B, K]`` or ``[E, B, K]`` (E
            stochastic draws; the per-draw loss is averaged over them, so
            every step follows the EOT gradient). Randomness must come from
            TF ops (the gradient runs in a ``tf.function``).
        x: float ``[B, H, W, C]`` in ``[clip_min, clip_max]``.
        y: int ``[B]`` true labels (required).
        eps: L-inf radius of the ball, ``>= 0``.
        eps_iter: step size, ``0 <= eps_iter <= eps``; None means
            ``eps / nb_iter`` (the paper's ``alpha = eps / T``).
        nb_iter: number of steps, ``>= 1``.
        decay: momentum decay factor ``mu >= 0`` (the paper's 1.0).
        loss: ``"ce"``, the cross-entropy (the paper's), or ``"margin"``,
            the Carlini & Wagner style ``max_{i != y} z_i - z_y`` on the
            logits, which keeps climbing after misclassification (Carlini et
            al. 2019, "On Evaluating Adversarial Robustness",
            https://arxiv.org/abs/1902.06705, advise margin losses, also for
            transfer attacks).
        clip_min: lowest valid pixel value.
        clip_max: highest valid pixel value.

    Returns:
        float32 ``tf.Tensor`` ``[B, H, W, C]``, the last iterate, with
        ``|x_adv - x|_inf <= eps`` and values in ``[clip_min, clip_max]``.

    Raises:
        ValueError: on a bad argument (the message names it).

    Example:

    ```python
    x_adv = mi_fgsm(model, x, y, eps=0.3, nb_iter=10)   # alpha = 0.03
    # Transfer: craft on a surrogate with the margin loss, test on the target.
    x_adv = mi_fgsm(surrogate, x, y, eps=0.3, nb_iter=20, loss="margin")
    robust_acc = np.mean(np.argmax(target(x_adv), -1) == y)
    ```
    """
    checks.check_model_fn(model_fn)
    x = checks.check_x(x, clip_min, clip_max)
    y = checks.check_labels(y, x.shape[0])
    checks.check_non_negative(eps, "eps")
    checks.check_positive_int(nb_iter, "nb_iter")
    if eps_iter is None:
        eps_iter = eps / nb_iter
    checks.check_non_negative(eps_iter, "eps_iter")
    if eps_iter > eps:
        raise ValueError(
            "`eps_iter` must be <= `eps`. "
            f"Received: eps_iter={eps_iter!r}, eps={eps!r}"
        )
    checks.check_non_negative(decay, "decay")
    checks.check_choice(loss, "loss", LOSSES)
    if x.shape[0] == 0:
        return x
    _common.probe_model(model_fn, x, y)

    eps, eps_iter, decay = float(eps), float(eps_iter), float(decay)
    clip_min, clip_max = float(clip_min), float(clip_max)
    gradient_fn = _make_gradient_fn(model_fn, _common.LOSSES[loss], x.shape[1:])
    axes = list(range(1, len(x.shape)))
    momentum = tf.zeros_like(x)
    adv_x = x
    for _ in range(nb_iter):
        grad = gradient_fn(adv_x, y)
        l1 = tf.reduce_sum(tf.abs(grad), axis=axes, keepdims=True)
        momentum = decay * momentum + tf.math.divide_no_nan(grad, l1)
        adv_x = tf.clip_by_value(adv_x + eps_iter * tf.sign(momentum), clip_min, clip_max)
        eta = clip_eta(adv_x - x, np.inf, eps)
        adv_x = tf.clip_by_value(x + eta, clip_min, clip_max)
    return tf.convert_to_tensor(adv_x, tf.float32)
