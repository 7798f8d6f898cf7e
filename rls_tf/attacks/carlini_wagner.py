"""Carlini & Wagner L2, via Foolbox 3.3."""

from rls_tf.attacks import _common
from rls_tf.attacks import checks


def cw_l2(
    model_fn,
    x,
    y,
    c=1.0,
    steps=1000,
    lr=0.01,
    confidence=0.0,
    binary_search_steps=1,
    abort_early=True,
    clip_min=-1.0,
    clip_max=1.0,
):
    """Carlini & Wagner's L2 attack (untargeted).

    Implements Carlini & Wagner, "Towards Evaluating the Robustness of Neural
    Networks", IEEE S&P 2017 (https://arxiv.org/abs/1608.04644), by Foolbox
    3.3's ``L2CarliniWagnerAttack``: in tanh space
    (``x_adv = tanh(w)`` mapped to ``[clip_min, clip_max]``) Adam minimises
    ``||x_adv - x||_2^2 + c * max(z_y - max_{i != y} z_i + confidence, 0)``
    for ``steps`` steps at learning rate ``lr``, keeping for each example the
    closest iterate whose margin ``max_{i != y} z_i - z_y`` is ``> confidence``.
    With ``binary_search_steps=1`` (the default) ``c`` stays constant, as in
    the RLS paper's evaluation (c constant, 1000 Adam steps at lr 0.01);
    more steps search ``c`` (x10 until an adversarial is found, then
    bisection), starting from ``c``.

    CleverHans 4.0's TF2 ``carlini_wagner_l2`` is not used: it crashes under
    Keras 3, and the obvious fix silently never succeeds.

    Args:
        model_fn: callable ``x -> logits`` ``[B, K]`` or ``[E, B, K]``. For a
            rank-3 output (E stochastic draws) the decision function is
            ``log(mean_e softmax(logits_e))``, and ``confidence`` is a margin
            of log mean probabilities.
        x: float ``[B, H, W, C]`` in ``[clip_min, clip_max]``.
        y: int ``[B]`` true labels (required).
        c: trade-off constant, ``>= 0`` (0 never produces an adversarial).
        steps: Adam steps per binary-search step, ``>= 1``.
        lr: Adam learning rate, ``> 0``.
        confidence: required margin kappa, ``>= 0``.
        binary_search_steps: number of values of c tried, ``>= 1``.
        abort_early: stop an optimisation when the total loss has not
            decreased by 0.01% over a tenth of the steps.
        clip_min: lowest valid pixel value.
        clip_max: highest valid pixel value.

    Returns:
        float32 ``tf.Tensor`` ``[B, H, W, C]`` in ``[clip_min, clip_max]``: the
        smallest adversarial found for each example, the original x where
        none was found. Measure success against the model; the L2 size with
        ``l2_distance``.

    Raises:
        ValueError: on a bad argument (the message names it).

    Example:

    ```python
    x_adv = cw_l2(model, x, y, c=1.0, steps=1000, lr=0.01)
    success = np.argmax(model(x_adv), -1) != y
    mean_l2 = l2_distance(x, x_adv)[success].mean()
    ```
    """
    checks.check_model_fn(model_fn)
    x = checks.check_x(x, clip_min, clip_max)
    y = checks.check_labels(y, x.shape[0])
    checks.check_non_negative(c, "c")
    checks.check_positive_int(steps, "steps")
    checks.check_positive(lr, "lr")
    checks.check_non_negative(confidence, "confidence")
    checks.check_positive_int(binary_search_steps, "binary_search_steps")
    checks.check_bool("abort_early", abort_early)
    if x.shape[0] == 0:
        return x
    _common.probe_model(model_fn, x, y)

    fb = _common.import_foolbox()

    attack = fb.attacks.L2CarliniWagnerAttack(
        binary_search_steps=int(binary_search_steps),
        steps=int(steps),
        stepsize=float(lr),
        confidence=float(confidence),
        initial_const=float(c),
        abort_early=bool(abort_early),
    )
    return _common.run_foolbox(
        attack, model_fn, x, y, clip_min, clip_max, success="recorded"
    )
