"""The adversarial-training recipe and its in-graph crafting (`rls_tf.adversarial`).

Owns the recipe (`AdversarialTraining` and its checks, `check_recipe`,
`default_steps`), the crafting (`pgd_examples` on the L-inf update of
`rls_tf.pgd_core`, `crossentropy`) and the switch object a model holds
while it trains adversarially (the recipe and the eps variable its traced
step reads). `rls_tf.adversarial` documents the method and re-exports
every public name; import them from there.
"""

import dataclasses
from typing import Optional

import tensorflow as tf

from rls_tf import pgd_core
from rls_tf.validation import check_bool
from rls_tf.validation import check_choice
from rls_tf.validation import check_float
from rls_tf.validation import check_int
from rls_tf.validation import check_probability

__all__ = ["AdversarialTraining", "CRAFT_ON", "FGSM_RS_STEP_FACTOR", "MAX_EPS", "METHODS",
           "PIXEL_RANGE", "STEP_SIZE_FACTOR", "check_recipe", "crossentropy", "default_steps",
           "pgd_examples"]

METHODS = ("pgd", "fgsm_rs")
CRAFT_ON = ("mean", "one")
# The models' pixel range; eps above its width would leave every pixel free.
PIXEL_RANGE = (-1.0, 1.0)
MAX_EPS = PIXEL_RANGE[1] - PIXEL_RANGE[0]
# Madry et al.'s rule of thumb: 2.5 * eps / steps lets a walk reach the
# boundary of the ball from anywhere in it.
STEP_SIZE_FACTOR = 2.5
# Wong et al. 2020: FGSM-RS's step, 1.25 * eps (larger steps overfit sooner).
FGSM_RS_STEP_FACTOR = 1.25
_DEFAULT_STEPS = {"pgd": 10, "fgsm_rs": 1}
# Keras' clipping of probabilities in cross-entropy.
_EPSILON = 1e-7
# The attribute of a model that holds its switch (a plain object: Keras and
# TF tracking ignore it, so it is in no weight file or export).
_ATTRIBUTE = "_adversarial_training"


def default_steps(method):
    """Attack steps per training step when none are given: pgd 10, fgsm_rs 1."""
    return _DEFAULT_STEPS.get(method, _DEFAULT_STEPS["pgd"])


def check_recipe(eps, steps=None, step_size=None, ratio=1.0, random_start=True,
                 craft_on="mean", ramp_epochs=0, method="pgd", prefix=""):
    """The recipe's values checked and normalised (step size resolved), as a dict.

    ``steps=None`` resolves to the method's default (`default_steps`);
    ``fgsm_rs`` takes one step only, and needs its random start.

    Raises a ValueError naming the first bad argument (``prefix`` + its
    name, e.g. ``adv_eps`` for the training config) and its value.
    """
    method = check_choice(prefix + "method", method, METHODS)
    eps = check_float(prefix + "eps", eps, minimum=0.0, maximum=MAX_EPS)
    steps = default_steps(method) if steps is None else steps
    steps = check_int(prefix + "steps", steps, minimum=1)
    if method == "fgsm_rs":
        if steps != 1:
            raise ValueError(f"method 'fgsm_rs' takes one step (use 'pgd' for more). "
                             f"Received: {prefix}steps={steps!r}")
        if not random_start:
            raise ValueError(f"method 'fgsm_rs' is FGSM from a random start; without it, "
                             f"it is plain FGSM training, which Wong et al. show overfits. "
                             f"Received: {prefix}random_start={random_start!r}")
    if step_size is None:
        factor = FGSM_RS_STEP_FACTOR if method == "fgsm_rs" else STEP_SIZE_FACTOR
        step_size = factor * eps / steps
    else:
        step_size = check_float(prefix + "step_size", step_size, minimum=0.0, maximum=MAX_EPS,
                                min_open=eps > 0)
    return {
        "method": method,
        "eps": eps,
        "steps": steps,
        "step_size": float(step_size),
        "ratio": check_probability(prefix + "ratio", ratio),
        "random_start": check_bool(prefix + "random_start", random_start),
        "craft_on": check_choice(prefix + "craft_on", craft_on, CRAFT_ON),
        "ramp_epochs": check_int(prefix + "ramp_epochs", ramp_epochs, minimum=0),
    }


@dataclasses.dataclass(frozen=True)
class AdversarialTraining:
    """An adversarial-training recipe (validated; see the module docstring).

    Attributes:
        eps: L-inf radius in the model's [-1, 1] pixel units, in [0, 2]
            (0 trains exactly as clean training, step for step).
        steps: PGD steps per training step (>= 1; 7-10 usual for training;
            None: 10 for pgd, 1 for fgsm_rs, which takes exactly one).
        step_size: step in pixel units (None: ``2.5 * eps / steps`` for pgd,
            ``1.25 * eps`` for fgsm_rs).
        ratio: share of the adversarial loss, in [0, 1]: the loss is
            ``ratio * L(adversarial) + (1 - ratio) * L(clean)`` (1: all
            adversarial, as Madry; 0: clean training).
        random_start: start uniformly in the eps-ball (else at the clean
            batch: the Basic Iterative Method).
        craft_on: "mean" (the prediction the step trains: the mean of the
            step's K sampled models for RLS, of the members for an
            ensemble) or "one" (one of them).
        ramp_epochs: raise eps linearly from 0 to `eps` over this many
            epochs (0: full eps from the start); needs the callbacks
            `enable` returns (`EpsRamp`). The step size follows eps.
        method: "pgd" (Madry et al.) or "fgsm_rs" (Wong et al.: one step
            from a random start; pair it with `OverfitGuard`).
    """

    eps: float
    steps: Optional[int] = None
    step_size: Optional[float] = None
    ratio: float = 1.0
    random_start: bool = True
    craft_on: str = "mean"
    ramp_epochs: int = 0
    method: str = "pgd"

    def __post_init__(self):
        for name, value in check_recipe(**dataclasses.asdict(self)).items():
            object.__setattr__(self, name, value)

    def mix(self, adversarial_loss, clean_loss):
        """``ratio * adversarial_loss + (1 - ratio) * clean_loss()``.

        `clean_loss` is a callable, run only when ``ratio < 1`` (at 1 the
        clean batch costs no forward pass).
        """
        if self.ratio >= 1.0:
            return adversarial_loss
        return self.ratio * adversarial_loss + (1.0 - self.ratio) * clean_loss()

    def eps_at(self, epoch, fraction=1.0):
        """eps during epoch `epoch` (0-based), `fraction` of it done (ramp-up).

        Linear in training progress: ``eps * min(1, (epoch + fraction) /
        ramp_epochs)``; `eps` throughout without a ramp.
        """
        if self.ramp_epochs == 0:
            return self.eps
        return self.eps * min(1.0, max(0.0, (epoch + fraction) / self.ramp_epochs))

    def to_json(self):
        """A JSON-able dict (the step size resolved); `from_json` reads it back."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, payload):
        """The recipe a `to_json` dict describes (unknown keys are refused)."""
        if not isinstance(payload, dict):
            raise ValueError(f"An adversarial-training recipe must be a dict. "
                             f"Received: payload={payload!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(payload) - names)
        if unknown:
            raise ValueError(f"Unknown adversarial-training settings. Received: {unknown}. "
                             f"Expected some of {sorted(names)}.")
        return cls(**payload)


# -- crafting --------------------------------------------------------------------


def crossentropy(y, probs):
    """Per-example cross-entropy ``[B]`` of probabilities ``probs [B, K]``."""
    probs = tf.convert_to_tensor(probs)
    y = tf.cast(tf.reshape(y, [-1]), tf.int32)
    true = tf.gather(probs, y, axis=1, batch_dims=1)
    return -tf.math.log(tf.clip_by_value(true, _EPSILON, 1.0))


def pgd_examples(probs_fn, x, y, eps, steps, step_size, random_start=True,
                 clip_min=PIXEL_RANGE[0], clip_max=PIXEL_RANGE[1]):
    """L-inf PGD examples that raise the cross-entropy of `probs_fn`, in the graph.

    A ``tf.while_loop`` of `steps` steps (traceable inside a ``train_step``:
    `eps` and `step_size` may be tensors or variables, read at every call):
    ``x_adv <- clip(x_adv + step_size * sign(grad CE(y, probs_fn(x_adv))))``
    onto ``[x - eps, x + eps]`` and ``[clip_min, clip_max]``: the update of
    `rls_tf.pgd_core` (`linf_step`, `linf_project`, `linf_random_start`),
    the one the attacks' PGD takes. With
    ``eps = 0`` the result is `x` exactly.

    Args:
        probs_fn: ``images -> [B, K]`` class probabilities (the model in
            inference mode; its randomness fixed for the step).
        x: float ``[B, ...]`` images in ``[clip_min, clip_max]``.
        y: int ``[B]`` labels.
        eps: L-inf radius (>= 0).
        steps: number of steps (a static int >= 1).
        step_size: step along the sign of the gradient.
        random_start: start uniformly in the ball (intersected with the
            pixel range), else at `x`.
        clip_min, clip_max: the pixel range.

    Returns:
        The adversarial batch, like `x`, ``tf.stop_gradient``-ed.
    """
    steps = check_int("steps", steps, minimum=1)
    x = tf.stop_gradient(tf.convert_to_tensor(x))
    eps = tf.cast(eps, x.dtype)
    step_size = tf.cast(step_size, x.dtype)
    if random_start:
        start = pgd_core.linf_random_start(x, eps, clip_min, clip_max)
    else:
        start = pgd_core.linf_project(x, x, eps, clip_min, clip_max)

    def step(i, current):
        with tf.GradientTape() as tape:
            tape.watch(current)
            loss = tf.reduce_sum(crossentropy(y, probs_fn(current)))
        moved = pgd_core.linf_step(current, tape.gradient(loss, current), step_size)
        return i + 1, pgd_core.linf_project(moved, x, eps, clip_min, clip_max)

    _, adversarial = tf.while_loop(lambda i, _: i < steps, step,
                                   (tf.constant(0), start), maximum_iterations=steps)
    return tf.stop_gradient(adversarial)


# -- the switch ------------------------------------------------------------------


class _Switch:
    """A model's recipe and the eps variable its traced step reads."""

    def __init__(self, recipe):
        self.recipe = recipe
        self.eps = tf.Variable(recipe.eps_at(0, 0.0), trainable=False, dtype=tf.float32,
                               name="adversarial_eps")

    def craft(self, probs_fn, x, y):
        """`pgd_examples` of the recipe at the current eps (step size follows eps)."""
        recipe = self.recipe
        eps = tf.cast(self.eps, x.dtype)
        step = (eps * (recipe.step_size / recipe.eps) if recipe.eps > 0
                else tf.zeros([], x.dtype))
        return pgd_examples(probs_fn, x, y, eps, recipe.steps, step,
                            random_start=recipe.random_start)
