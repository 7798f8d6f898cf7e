"""DeepFool (L2), via Foolbox 3.3."""

from rls_tf.attacks import _common
from rls_tf.attacks import checks


def deepfool(
    model_fn,
    x,
    y,
    overshoot=0.02,
    max_iter=50,
    candidates=10,
    clip_min=-1.0,
    clip_max=1.0,
):
    """DeepFool, the L2 minimum-norm attack by iterative linearisation.

    Implements Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and
    accurate method to fool deep neural networks", CVPR 2016
    (https://arxiv.org/abs/1511.04599), by Foolbox 3.3's
    ``L2DeepFoolAttack`` (loss "logits"). Each step linearises the logit
    differences ``f_k = z_k - z_top`` of the ``candidates`` most likely
    classes (at x), moves to the nearest linearised boundary
    (``|f_k| / ||grad f_k||_2``, plus 1e-4 for numerical stability) and sets
    ``x_adv = clip(x + (1 + overshoot) * total_step)``; an example stops as
    soon as it is misclassified. On an affine classifier one step lands at
    ``(1 + overshoot)`` times the exact minimal L2 distance.

    Args:
        model_fn: callable ``x -> logits`` ``[B, K]`` or ``[E, B, K]``. For a
            rank-3 output (E stochastic draws) the decision function is
            ``log(mean_e softmax(logits_e))``, the log of the ensemble's mean
            probabilities; each of its evaluations draws anew.
        x: float ``[B, H, W, C]`` in ``[clip_min, clip_max]``.
        y: int ``[B]`` true labels (required). An example already
            misclassified is returned as it is.
        overshoot: relative overshoot past the boundary, ``>= 0``.
        max_iter: maximum number of steps, ``>= 1``.
        candidates: number of most likely classes considered, ``>= 2``
            (capped at K).
        clip_min: lowest valid pixel value.
        clip_max: highest valid pixel value.

    Returns:
        float32 ``tf.Tensor`` ``[B, H, W, C]`` in ``[clip_min, clip_max]``: the
        adversarial where the final iterate is misclassified (checked by one
        call of the decision function), the original x elsewhere. Measure
        success against the model; the L2 size with ``l2_distance``.

    Raises:
        ValueError: on a bad argument (the message names it).

    Example:

    ```python
    x_adv = deepfool(model, x, y)
    dist = l2_distance(x, x_adv)   # per example; 0 where it failed
    ```
    """
    checks.check_model_fn(model_fn)
    x = checks.check_x(x, clip_min, clip_max)
    y = checks.check_labels(y, x.shape[0])
    checks.check_non_negative(overshoot, "overshoot")
    checks.check_positive_int(max_iter, "max_iter")
    checks.check_positive_int(candidates, "candidates", minimum=2)
    if x.shape[0] == 0:
        return x
    _common.probe_model(model_fn, x, y)

    fb = _common.import_foolbox()

    attack = fb.attacks.L2DeepFoolAttack(
        steps=int(max_iter),
        candidates=int(candidates),
        overshoot=float(overshoot),
        loss="logits",
    )
    return _common.run_foolbox(
        attack, model_fn, x, y, clip_min, clip_max, success="final"
    )
