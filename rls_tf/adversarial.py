"""Adversarial training: Madry et al.'s PGD-AT for every defense that trains.

Madry, Makelov, Schmidt, Tsipras, Vladu, "Towards Deep Learning Models
Resistant to Adversarial Attacks", ICLR 2018: every training step replaces
(a share of) the batch by L-inf PGD examples crafted against the model being
trained, then takes the usual loss on them.

Owns the recipe (`AdversarialTraining`: eps, steps, step size, random start,
the adversarial share of the loss, what to craft against, the eps ramp-up),
the in-graph crafting (`pgd_examples`), the switch that turns it on for a
model (`enable`, `disable`, `recipe_of`) and the ramp-up callback
(`EpsRamp`). The models' own ``train_step`` read the switch:

* `rls_tf.models.RLSModel` (``plain`` is RLS with M=1, so both): the step
  draws its K paths once; the examples are crafted against the mean
  prediction of those K sampled models (``craft_on="mean"``, an EOT over the
  step's paths) or against the first of them (``"one"``); the group loss is
  then the mean prediction of the SAME K paths on the adversarial batch.
* `rls_tf.defenses.EnsembleModel` and `rls_tf.defenses.ADPModel`: crafted
  against the ensemble's mean prediction (``"one"``: one member drawn
  uniformly per step), then their own loss (sum of the members'
  cross-entropies; ADP's regularised loss) on the adversarial batch.
* `rls_tf.defenses.RSEModel`: the step draws one noise seed; the examples
  are crafted against the network with that noise and the loss is taken
  with the same noise (``craft_on`` has no effect: one draw per step).
* `rls_tf.defenses.SAPModel` is refused: SAP wraps a trained plain network
  and trains nothing; adversarially train the plain model instead and wrap
  that.

Crafting runs inside the traced ``train_step`` (a ``tf.while_loop`` over the
fixed number of steps: one graph, no Python loop per training step, no
retracing), with the network in inference mode (``training=False``): the
batch-norm layers normalise with their moving statistics and do not update
them, so the probes of the attack do not pollute the statistics the model
is evaluated with, and the attack sees the network exactly as an evaluation
attack does. Each step: the gradient of the cross-entropy of the (mean)
prediction with respect to the input, a step of ``step_size`` along its
sign, projection onto the eps-ball around the clean batch and clipping to
the pixel range [-1, 1]; the start is uniform in the ball (``random_start``).
The examples are ``tf.stop_gradient``-ed: the weights' gradient is that of
the loss at the crafted point (Danskin), not through the attack.

Units: ``eps`` and ``step_size`` are in the model's pixel units, [-1, 1]
(twice the [0, 1] values: Madry's MNIST eps 0.3 is 0.6 here), as the eps of
``attack_eval.py``.

The switch is a training-time option: it is not part of the model's Keras
config and is not saved in ``.keras`` files (a saved adversarially trained
model is the same class with other weights, so the evaluation harness and
the exports take it unchanged). `rls_tf.training` records the recipe in the
run's ``config.json`` and enables it again when it resumes.

Example:

>>> import rls_tf
>>> from rls_tf.adversarial import AdversarialTraining
>>> model = rls_tf.models.build_defense("rls", "small_cnn", input_shape=(28, 28, 1))
>>> model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
...               metrics=["accuracy"])
>>> callbacks = rls_tf.adversarial.enable(
...     model, AdversarialTraining(eps=0.6, steps=10, ramp_epochs=2))
>>> # model.fit(train_ds, epochs=10, callbacks=callbacks)
"""

import dataclasses
from typing import Optional

import keras
import tensorflow as tf

from rls_tf.validation import check_bool
from rls_tf.validation import check_choice
from rls_tf.validation import check_float
from rls_tf.validation import check_int
from rls_tf.validation import check_probability

__all__ = ["AdversarialTraining", "CRAFT_ON", "EpsRamp", "METHODS", "PIXEL_RANGE",
           "active", "check_recipe", "crossentropy", "disable", "enable", "pgd_examples",
           "recipe_of"]

METHODS = ("pgd",)
CRAFT_ON = ("mean", "one")
# The models' pixel range; eps above its width would leave every pixel free.
PIXEL_RANGE = (-1.0, 1.0)
MAX_EPS = PIXEL_RANGE[1] - PIXEL_RANGE[0]
# Madry et al.'s rule of thumb: 2.5 * eps / steps lets a walk reach the
# boundary of the ball from anywhere in it.
STEP_SIZE_FACTOR = 2.5
# Keras' clipping of probabilities in cross-entropy.
_EPSILON = 1e-7
# The attribute of a model that holds its switch (a plain object: Keras and
# TF tracking ignore it, so it is in no weight file or export).
_ATTRIBUTE = "_adversarial_training"


def check_recipe(eps, steps=10, step_size=None, ratio=1.0, random_start=True,
                 craft_on="mean", ramp_epochs=0, method="pgd", prefix=""):
    """The recipe's values checked and normalised (step size resolved), as a dict.

    Raises a ValueError naming the first bad argument (``prefix`` + its
    name, e.g. ``adv_eps`` for the training config) and its value.
    """
    method = check_choice(prefix + "method", method, METHODS)
    eps = check_float(prefix + "eps", eps, minimum=0.0, maximum=MAX_EPS)
    steps = check_int(prefix + "steps", steps, minimum=1)
    if step_size is None:
        step_size = STEP_SIZE_FACTOR * eps / steps
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
    """A PGD adversarial-training recipe (validated; see the module docstring).

    Attributes:
        eps: L-inf radius in the model's [-1, 1] pixel units, in [0, 2]
            (0 trains exactly as clean training, step for step).
        steps: PGD steps per training step (>= 1; 7-10 usual for training).
        step_size: PGD step in pixel units (None: ``2.5 * eps / steps``).
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
        method: "pgd" (the only method).
    """

    eps: float
    steps: int = 10
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
    onto ``[x - eps, x + eps]`` and ``[clip_min, clip_max]``. With
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
    lower = tf.maximum(x - eps, clip_min)
    upper = tf.minimum(x + eps, clip_max)
    start = x
    if random_start:
        start = x + eps * tf.random.uniform(tf.shape(x), -1.0, 1.0, dtype=x.dtype)
    start = tf.clip_by_value(start, lower, upper)

    def step(i, current):
        with tf.GradientTape() as tape:
            tape.watch(current)
            loss = tf.reduce_sum(crossentropy(y, probs_fn(current)))
        grad = tape.gradient(loss, current)
        grad = tf.where(tf.math.is_finite(grad), grad, tf.zeros_like(grad))
        moved = current + step_size * tf.sign(grad)
        return i + 1, tf.clip_by_value(moved, lower, upper)

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


def _support(model):
    """True if `model` can train adversarially, else the reason it cannot."""
    support = getattr(model, "adversarial_training_support", None)
    if support is None:
        return (f"{type(model).__name__} has no adversarial train_step (supported: "
                "RLSModel (plain, rls), EnsembleModel, ADPModel, RSEModel)")
    return support


def enable(model, recipe):
    """Turns adversarial training on for `model`'s `fit`; returns its callbacks.

    Call it before `fit` (after `compile` or before: the switch is a model
    attribute). A cached train function is dropped so that the next `fit`
    traces the adversarial step. Under a `tf.distribute` strategy call it
    inside ``strategy.scope()`` (the eps variable is created here).

    Args:
        model: an `RLSModel`, `EnsembleModel`, `ADPModel` or `RSEModel`.
        recipe: an `AdversarialTraining` (or its `to_json` dict).

    Returns:
        The callbacks `fit` needs for the recipe: ``[EpsRamp()]`` with a
        ramp-up, else ``[]``.

    Raises:
        ValueError: the model cannot train adversarially (e.g. SAP), or a
            bad recipe.
    """
    if isinstance(recipe, dict):
        recipe = AdversarialTraining.from_json(recipe)
    if not isinstance(recipe, AdversarialTraining):
        raise ValueError("`recipe` must be an AdversarialTraining. Received: "
                         f"recipe={recipe!r}")
    support = _support(model)
    if support is not True:
        raise ValueError(f"Adversarial training is not available for "
                         f"{getattr(model, 'name', type(model).__name__)!r}: {support}. "
                         f"Received: recipe={recipe!r}")
    object.__setattr__(model, _ATTRIBUTE, _Switch(recipe))
    model.train_function = None
    return [EpsRamp()] if recipe.ramp_epochs else []


def disable(model):
    """Turns adversarial training off (the next `fit` trains on clean batches)."""
    if getattr(model, _ATTRIBUTE, None) is not None:
        object.__setattr__(model, _ATTRIBUTE, None)
        model.train_function = None


def recipe_of(model):
    """The `AdversarialTraining` enabled on `model`, or None."""
    switch = getattr(model, _ATTRIBUTE, None)
    return None if switch is None else switch.recipe


def active(model):
    """The switch a ``train_step`` crafts with, or None (clean step).

    None when adversarial training is off or its ratio is 0 (then the clean
    step is exactly clean training).
    """
    switch = getattr(model, _ATTRIBUTE, None)
    if switch is None or switch.recipe.ratio == 0.0:
        return None
    return switch


class EpsRamp(keras.callbacks.Callback):
    """Raises the trained model's eps linearly over the recipe's ``ramp_epochs``.

    Before every batch it assigns ``recipe.eps_at(epoch, (batch + 1) /
    steps)`` to the variable the traced step reads (no retracing); per
    epoch when `fit` does not know the number of steps. A resumed `fit`
    (``initial_epoch``) continues the ramp where it was.
    """

    def __init__(self):
        super().__init__()
        self._epoch = 0

    def _switch(self):
        switch = getattr(self.model, _ATTRIBUTE, None)
        if switch is None:
            raise ValueError("EpsRamp needs a model with adversarial training enabled "
                             "(rls_tf.adversarial.enable). Received: a model without")
        return switch

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        switch = self._switch()
        steps = (self.params or {}).get("steps")
        switch.eps.assign(switch.recipe.eps_at(epoch, 0.0 if steps else 1.0))

    def on_train_batch_begin(self, batch, logs=None):
        steps = (self.params or {}).get("steps")
        if not steps:
            return
        switch = self._switch()
        if self._epoch >= switch.recipe.ramp_epochs:
            return
        switch.eps.assign(switch.recipe.eps_at(self._epoch, (batch + 1) / steps))
