"""Attack-failure indicators: probes that tell when an attack, not the defense, failed.

The gradient-masking checks (`rls_tf.evaluation.masking`) compare numbers an
evaluation already has; these indicators probe the model and an attack run of
their own, after AutoAttack's automatic checks (Croce & Hein 2020,
``fra31/auto-attack`` ``checks.py``) and Pintor et al. 2022, "Indicators of
Attack Failure: Debugging and Improving Optimization of Adversarial Examples"
(``pralab/IndicatorsOfAttackFailure``). Each gives ``pass``, ``fail`` or
``n/a`` with a one-sentence reason carrying its numbers:

* ``randomness``: the model's forward passes differ exactly when it says it
  is random (AutoAttack: a random model needs EOT).
* ``zero_gradients``: the attack loss has a non-zero input gradient at every
  clean image (AutoAttack ``check_zero_gradients``; Pintor's "unavailable
  gradients" also covers NaN / missing gradients).
* ``unstable_predictions``: the attack loss does not jump under tiny random
  noise (eps / 10) much beyond the noise of its own estimate (Pintor).
* ``silent_success``: no image whose attack path passed through a point the
  attacker judged adversarial ends on one it does not (Pintor; our PGD keeps
  its last iterate, so such images are undercounted successes).
* ``incomplete_optimisation``: on the images the attack failed on, the mean
  attack loss has stopped rising over the last fifth of the steps (Pintor:
  more steps would find more; the loss of an image already misclassified
  may rise for ever without changing any number).
* ``unconstrained_attack``: with eps large enough to reach any image the
  attack drives the accuracy to (about) zero; if not, the attack is broken on
  this model whatever its eps (Pintor: "unconstrained attack failure").
* ``binarization``: the probe's attack finds an adversarial example that is
  known to exist (Zimmermann et al. 2022's binarization test,
  `rls_tf.evaluation.binarization`) on at least 95% of the images.

Every probe attacks with EOT-PGD (`rls_tf.pgd_core`, cross-entropy of the
attacker's E-draw mean, random start, step 2.5 eps / steps) on the first
``num_examples`` images at the evaluation's largest PGD eps: a run of its own,
so that it can record the path (the loss at every step, the attacker's
decision at every iterate). A deterministic model is attacked with E = 1.

Example:

>>> import keras, numpy as np
>>> from rls_tf.models.external import ExternalClassifier
>>> keras.utils.set_random_seed(0)
>>> net = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
...                         keras.layers.Dense(3)])
>>> model = ExternalClassifier.from_keras(net)
>>> x = np.random.default_rng(0).uniform(-1, 1, (8, 4, 4, 1)).astype("float32")
>>> found = run_indicators(model, x, np.zeros(8, "int64"), eps=0.1, steps=5)
>>> [i.id for i in found][:2], found[-2].id, found[-2].status
(['randomness', 'zero_gradients'], 'unconstrained_attack', 'pass')
"""

import dataclasses
from typing import Any, Dict

import numpy as np
import tensorflow as tf

from rls_tf import pgd_core
from rls_tf.evaluation import binarization
from rls_tf.validation import check_float, check_int

__all__ = ["INDICATORS", "Indicator", "IndicatorSpec", "incomplete_optimisation",
           "render_indicator_table", "run_indicators", "silent_success"]

PASS, FAIL, NA = "pass", "fail", "n/a"


@dataclasses.dataclass(frozen=True)
class IndicatorSpec:
    """One indicator: its id, a short title and what a failure means."""

    id: str
    title: str
    meaning: str


INDICATORS = (
    IndicatorSpec("randomness", "Randomness as declared",
                  "A random model attacked as deterministic (or the reverse) gets the wrong "
                  "attack: a random one needs EOT."),
    IndicatorSpec("zero_gradients", "Gradients available",
                  "Zero, missing or NaN input gradients leave a gradient attack with nothing "
                  "to follow: its robust accuracy is no bound."),
    IndicatorSpec("unstable_predictions", "Stable loss",
                  "A loss that jumps under tiny noise misleads gradient steps (shattered or "
                  "noisy gradients): use EOT over more draws or a smoothed surrogate."),
    IndicatorSpec("silent_success", "No silent success",
                  "The attack passed through adversarial points but returned others: keeping "
                  "the best point would lower the robust accuracy."),
    IndicatorSpec("incomplete_optimisation", "Loss converged",
                  "The loss was still rising when the attack stopped: more steps would find "
                  "more adversarial examples."),
    IndicatorSpec("unconstrained_attack", "Unbounded attack succeeds",
                  "With eps large enough to reach any image the attack still fails: it is "
                  "broken on this model, and its bounded numbers measure nothing."),
    IndicatorSpec("binarization", "Known adversarial found",
                  "Zimmermann et al.'s binarization test: on a 2-class task built so that an "
                  "adversarial example exists within eps, the attack must find it; missing it "
                  "means the attack, not the model, fails."),
)

# Thresholds, each a fraction (of images, or relative loss change).
_ZERO_GRADIENT_NORM = 1e-12
_UNSTABLE_RATIO = 3.0      # loss change under noise / change of re-estimating at x
_UNSTABLE_MINIMUM = 0.05   # ... and at least this relative change
_SILENT_FRACTION = 0.02
_RISING_FRACTION = 0.02    # relative rise of the mean loss over the last fifth
_UNCONSTRAINED_ACCURACY = 0.05
# The unbounded attack's eps: the whole [-1, 1] range.
_UNBOUNDED_EPS = 2.0


@dataclasses.dataclass(frozen=True)
class Indicator:
    """One indicator's verdict on one model."""

    id: str
    model: str
    status: str
    reason: str
    numbers: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data):
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


def silent_success(adversarial_along_path, adversarial_at_end):
    """Per image: the path had an adversarial point but the returned one is not.

    Args:
        adversarial_along_path: bool ``[T, B]``, the attacker's verdict at
            every iterate.
        adversarial_at_end: bool ``[B]``, its verdict at the returned point.

    Returns:
        bool ``[B]``.
    """
    along = np.asarray(adversarial_along_path, bool)
    end = np.asarray(adversarial_at_end, bool)
    return along.any(axis=0) & ~end


def incomplete_optimisation(losses):
    """Whether a mean-loss trace was still rising at its end, and by how much.

    The mean loss of the last fifth of the steps against the fifth before it
    (at least one step each); rising by more than 2% of its size (relative to
    ``max(|loss|, 1e-3)``) means the attack had not converged.

    Args:
        losses: ``[T]`` mean attack loss (to maximise) at every step.

    Returns:
        ``(rising, relative_rise)``.
    """
    losses = np.asarray(losses, np.float64)
    if losses.size < 2:
        return False, 0.0
    window = max(1, losses.size // 5)
    last = losses[-window:].mean()
    before = losses[-2 * window:-window].mean() if losses.size >= 2 * window else losses[0]
    rise = (last - before) / max(abs(before), 1e-3)
    return bool(rise > _RISING_FRACTION), float(rise)


def _key(rng):
    """A ``[2]`` stateless key from the probes' generator: seeded draws, repeatable runs."""
    return tf.constant(rng.integers(0, 2 ** 31 - 1, size=2), tf.int64)


def _attacker_logits(model, x, draws, key):
    """``[B, K]`` log of the mean of `draws` forward passes drawn with `key` (EOT).

    A deterministic model is attacked through its defender's inference
    (``defend``: an ensemble's mean over all its members, not one member).
    A model whose randomness cannot be pinned draws fresh whatever the key.
    """
    if model.is_stochastic:
        probs = tf.reduce_mean(model.sample(x, draws, seed=key), axis=0)
    else:
        probs = model.defend(x)
    return tf.math.log(probs + 1e-12)


def _loss_and_gradient(model, x, y, draws, key):
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = _attacker_logits(model, x, draws, key)
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
    return loss, logits, tape.gradient(loss, x)


def _pgd_path(model, x, y, eps, steps, draws, rng):
    """EOT-PGD from a random start: losses ``[T, B]``, verdicts, final accuracy, x_adv."""
    x = tf.constant(x)
    y = tf.constant(y)
    uniform = tf.constant(rng.uniform(-1.0, 1.0, x.shape).astype("float32"))
    x_adv = pgd_core.linf_random_start(x, eps, uniform=lambda shape: uniform)
    step = 2.5 * eps / steps
    losses, along = [], []
    for _ in range(steps):
        loss, logits, grad = _loss_and_gradient(model, x_adv, y, draws, _key(rng))
        losses.append(loss.numpy())
        along.append((tf.argmax(logits, -1) != y).numpy())
        if grad is None:
            break
        x_adv = pgd_core.linf_project(pgd_core.linf_step(x_adv, grad, step), x, eps)
    logits = _attacker_logits(model, x_adv, draws, _key(rng))
    at_end = (tf.argmax(logits, -1) != y).numpy()
    # The defender's N draws, from the probes' generator.
    defended_probs = tf.reduce_mean(model.defender_outputs(x_adv, seed=_key(rng)), axis=0)
    defended = tf.argmax(defended_probs, -1).numpy() == y.numpy()
    return np.asarray(losses), np.asarray(along), at_end, float(defended.mean()), x_adv


def _detected_random(model, x):
    # The defender's inference, called four times: an ensemble whose draws
    # name its members is deterministic there, whatever one draw picks.
    outs = [np.asarray(model.defend(x)) for _ in range(4)]
    scores = [np.log(o + 1e-30) for o in outs]
    return bool(max(np.max(np.abs(s - scores[0])) for s in scores[1:]) > 1e-5)


def run_indicators(model, x, y, eps, *, name="model", steps=50, eot_samples=10, seed=0):
    """The indicators of one model: a list of `Indicator` in `INDICATORS` order.

    Args:
        model: a `rls_tf.interface.StochasticClassifier`.
        x: [-1, 1] images; y: int labels (the first images of the evaluation).
        eps: L-inf eps of the bounded probes, in [-1, 1] units (the
            evaluation's largest PGD eps).
        name: the model's column name.
        steps: PGD steps of the probes' attack.
        eot_samples: E, draws per gradient (1 for a deterministic model).
        seed: seed of the random starts, the noise and the draws of the
            probes' attacks (a model whose randomness cannot be pinned
            draws fresh); the `randomness` probe always draws fresh.
    """
    eps = check_float("eps", eps, minimum=0.0, min_open=True)
    steps = check_int("steps", steps)
    draws = check_int("eot_samples", eot_samples) if model.is_stochastic else 1
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.int64)
    rng = np.random.default_rng(seed)
    out = []

    def add(indicator_id, status, reason, **numbers):
        out.append(Indicator(indicator_id, name, status, reason, numbers))

    detected = _detected_random(model, x[: min(len(x), 16)])
    declared = bool(model.is_stochastic)
    add("randomness", PASS if detected == declared else FAIL,
        f"declared {'random' if declared else 'deterministic'}, four forward passes "
        f"{'differ' if detected else 'agree'}", declared=declared, detected=detected)

    loss, _, grad = _loss_and_gradient(model, x, y, draws, _key(rng))
    if grad is None:
        add("zero_gradients", FAIL, "the attack loss has no gradient with respect to the "
            "input (a non-differentiable step)", zero_fraction=1.0)
    else:
        grad = grad.numpy().reshape(len(x), -1)
        finite = np.isfinite(grad).all(axis=1)
        zero = np.linalg.norm(np.where(np.isfinite(grad), grad, 0.0), axis=1) <= \
            _ZERO_GRADIENT_NORM
        bad = float(np.mean(zero | ~finite))
        add("zero_gradients", FAIL if bad > 0 else PASS,
            f"{100 * bad:.1f}% of the images have a zero or non-finite input gradient",
            zero_fraction=float(np.mean(zero)), nonfinite_fraction=float(np.mean(~finite)))

    base = loss.numpy()
    # Other draws at the same images: how much the loss estimate itself moves.
    again = _loss_and_gradient(model, x, y, draws, _key(rng))[0].numpy()
    noise = rng.uniform(-eps / 10, eps / 10, x.shape).astype("float32")
    noisy = _loss_and_gradient(model, np.clip(x + noise, -1, 1), y, draws,
                               _key(rng))[0].numpy()
    scale = max(float(np.mean(np.abs(base))), 1e-3)
    estimate_change = float(np.mean(np.abs(again - base))) / scale
    noise_change = float(np.mean(np.abs(noisy - base))) / scale
    unstable = (noise_change > _UNSTABLE_MINIMUM
                and noise_change > _UNSTABLE_RATIO * max(estimate_change, 1e-6))
    add("unstable_predictions", FAIL if unstable else PASS,
        f"noise of eps/10 changes the loss by {100 * noise_change:.1f}% (re-estimating it "
        f"at the same images: {100 * estimate_change:.1f}%)",
        noise_change=noise_change, estimate_change=estimate_change)

    losses, along, at_end, accuracy, _ = _pgd_path(model, x, y, eps, steps, draws, rng)
    silent = float(np.mean(silent_success(along, at_end))) if along.size else 0.0
    add("silent_success", FAIL if silent > _SILENT_FRACTION else PASS,
        f"{100 * silent:.1f}% of the images passed an adversarial point (the attacker's "
        f"E={draws} estimate) but ended on a non-adversarial one", fraction=silent,
        robust_accuracy=accuracy)
    # The images the attack failed on (its own verdict at the end): an image
    # it already won may keep raising its loss without changing a number.
    failed = ~np.asarray(at_end, bool)
    if losses.size == 0 or not failed.any():
        add("incomplete_optimisation", NA, "the attack succeeded on every image",
            images=0)
    else:
        trace = losses[:, failed].mean(axis=1)
        rising, rise = incomplete_optimisation(trace)
        add("incomplete_optimisation", FAIL if rising else PASS,
            f"on the {int(failed.sum())} images the attack failed on, the mean loss rose by "
            f"{100 * rise:.1f}% over the last fifth of {steps} steps",
            relative_rise=rise, images=int(failed.sum()), losses=[float(v) for v in trace])

    unbounded = _pgd_path(model, x, y, _UNBOUNDED_EPS, steps, draws, rng)[3]
    add("unconstrained_attack", FAIL if unbounded > _UNCONSTRAINED_ACCURACY else PASS,
        f"with eps unbounded ({_UNBOUNDED_EPS:g}, the whole range) the accuracy is "
        f"{100 * unbounded:.1f}%", robust_accuracy=unbounded)

    def probe_attack(binarized, images, radius):
        zeros = np.zeros(len(images), np.int64)
        return _pgd_path(binarized, images, zeros, radius, steps, draws, rng)[4]

    found = binarization.binarization_test(model, x, eps, probe_attack, draws=draws,
                                           seed=int(rng.integers(2 ** 31 - 1)))
    summary = found.to_json()
    setup = (f"setup failed on {found.images - found.valid} of {found.images}: "
             f"{found.not_separable} not separable, {found.not_adversarial} not valid under "
             f"the binarized defender (corner not adversarial, or x or an inner point "
             f"adversarial, in one of its calls)")
    if found.valid < binarization.MIN_VALID:
        add("binarization", NA, f"fewer than {binarization.MIN_VALID} valid images: {setup}",
            **summary)
    else:
        asr = found.attack_success_rate
        add("binarization", FAIL if asr < binarization.PASS_ASR else PASS,
            f"the attack found the known adversarial example on {100 * asr:.1f}% of "
            f"{found.valid} images ({setup})", **summary)
    return out


def render_indicator_table(indicators):
    """Markdown: one row per indicator, one column per model."""
    models = list(dict.fromkeys(i.model for i in indicators))
    if not models:
        return ""
    by = {(i.id, i.model): i for i in indicators}
    lines = ["| Indicator | " + " | ".join(models) + " |",
             "|---|" + "---|" * len(models)]
    for spec in INDICATORS:
        cells = []
        for m in models:
            found = by.get((spec.id, m))
            cells.append(f"**{found.status}**: {found.reason}" if found else NA)
        lines.append(f"| {spec.title} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"- **{spec.title}**: {spec.meaning}" for spec in INDICATORS]
    return "\n".join(lines)
