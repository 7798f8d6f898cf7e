"""EAD, the Elastic-net attack, via Foolbox 3.3."""

from rls_tf.attacks import _common
from rls_tf.attacks import checks

DECISION_RULES = ("EN", "L1")


def ead(
    model_fn,
    x,
    y,
    c=1.0,
    beta=1e-2,
    steps=1000,
    lr=0.01,
    confidence=0.0,
    binary_search_steps=1,
    decision_rule="EN",
    abort_early=True,
    clip_min=-1.0,
    clip_max=1.0,
):
    """EAD: Elastic-net Attacks to DNNs (untargeted, L1-oriented).

    Implements Chen et al., "EAD: Elastic-Net Attacks to Deep Neural Networks
    via Adversarial Examples", AAAI 2018 (https://arxiv.org/abs/1709.04114),
    by Foolbox 3.3's ``EADAttack``: FISTA on
    ``c * max(z_y - max_{i != y} z_i + confidence, 0) + ||d||_2^2 + beta ||d||_1``
    with the shrinkage-thresholding projection onto ``[clip_min, clip_max]``
    and a step size decaying as ``lr * sqrt(1 - i / steps)``. Among the
    iterates whose margin exceeds ``confidence`` it keeps the one with the
    smallest elastic-net distance (``decision_rule="EN"``) or L1 distance
    (``"L1"``). ``binary_search_steps=1`` keeps ``c`` constant.

    ART's ElasticNet is not used: it clips to [0, 1] internally, and the
    project's pixels are in [-1, 1].

    Args:
        model_fn: callable ``x -> logits`` ``[B, K]`` or ``[E, B, K]``. For a
            rank-3 output (E stochastic draws) the decision function is
            ``log(mean_e softmax(logits_e))``.
        x: float ``[B, H, W, C]`` in ``[clip_min, clip_max]``.
        y: int ``[B]`` true labels (required).
        c: trade-off constant, ``>= 0`` (0 never produces an adversarial).
        beta: L1 regularisation, ``>= 0``.
        steps: iterations per binary-search step, ``>= 1``.
        lr: initial step size, ``> 0``.
        confidence: required margin kappa, ``>= 0``.
        binary_search_steps: number of values of c tried, ``>= 1``.
        decision_rule: "EN" or "L1", how the best adversarial is chosen.
        abort_early: stop an optimisation when the loss has not decreased by
            0.01% over a tenth of the steps.
        clip_min: lowest valid pixel value.
        clip_max: highest valid pixel value.

    Returns:
        float32 ``tf.Tensor`` ``[B, H, W, C]`` in ``[clip_min, clip_max]``: the
        best adversarial found for each example, the original x where none
        was found. L1 size with ``l1_distance``.

    Raises:
        ValueError: on a bad argument (the message names it).

    Example:

    ```python
    x_adv = ead(model, x, y, c=1.0, beta=1e-2, decision_rule="EN")
    l1 = l1_distance(x, x_adv)
    ```
    """
    checks.check_model_fn(model_fn)
    x = checks.check_x(x, clip_min, clip_max)
    y = checks.check_labels(y, x.shape[0])
    checks.check_non_negative(c, "c")
    checks.check_non_negative(beta, "beta")
    checks.check_positive_int(steps, "steps")
    checks.check_positive(lr, "lr")
    checks.check_non_negative(confidence, "confidence")
    checks.check_positive_int(binary_search_steps, "binary_search_steps")
    checks.check_choice(decision_rule, "decision_rule", DECISION_RULES)
    checks.check_bool("abort_early", abort_early)
    if x.shape[0] == 0:
        return x
    _common.probe_model(model_fn, x, y)

    fb = _common.import_foolbox()

    attack = fb.attacks.EADAttack(
        binary_search_steps=int(binary_search_steps),
        steps=int(steps),
        initial_stepsize=float(lr),
        confidence=float(confidence),
        initial_const=float(c),
        regularization=float(beta),
        decision_rule=decision_rule,
        abort_early=bool(abort_early),
    )
    return _common.run_foolbox(
        attack, model_fn, x, y, clip_min, clip_max, success="recorded"
    )
