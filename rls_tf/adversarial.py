"""Adversarial training: PGD-AT and fast FGSM-RS for every defense that trains.

Madry, Makelov, Schmidt, Tsipras, Vladu, "Towards Deep Learning Models
Resistant to Adversarial Attacks", ICLR 2018: every training step replaces
(a share of) the batch by L-inf PGD examples crafted against the model being
trained, then takes the usual loss on them.

Wong, Rice, Kolter, "Fast is better than free: Revisiting adversarial
training", ICLR 2020 (``method="fgsm_rs"``): the same with ONE signed
gradient step of ``1.25 * eps`` from a uniform random start in the eps-ball,
projected back onto the ball: about the cost of two clean steps. Single-step
training can overfit catastrophically (PGD accuracy collapses to about 0
within an epoch while FGSM accuracy rises); `OverfitGuard` measures PGD
accuracy on a fixed batch after every epoch, reports a collapse, stops the
run and restores the weights of the best epoch (Wong et al.'s early
stopping).

Owns the recipe (`AdversarialTraining`: eps, steps, step size, random start,
the adversarial share of the loss, what to craft against, the eps ramp-up),
the in-graph crafting (`pgd_examples`, on the L-inf update of
`rls_tf.pgd_core`), the ONE adversarial training step (`train_step`,
written against the interface and four small hooks of each trainable
model: which draws the step fixes, what to craft against, its loss, its
logs), the switch that turns it on for a model (`enable`, `disable`,
`recipe_of`) and the ramp-up callback (`EpsRamp`). A model's own
``train_step`` hands over to `train_step` when the switch is on; what the
hooks of each model do:

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

from rls_tf import pgd_core
from rls_tf.validation import check_bool
from rls_tf.validation import check_choice
from rls_tf.validation import check_float
from rls_tf.validation import check_int
from rls_tf.validation import check_probability

__all__ = ["AdversarialTraining", "CRAFT_ON", "EpsRamp", "METHODS", "OverfitGuard",
           "PIXEL_RANGE", "active", "check_recipe", "crossentropy", "default_steps", "disable",
           "enable", "pgd_examples", "recipe_of"]

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


def craft_batch(model, switch, x, y):
    """The step's draws and the examples crafted against them: ``(x_adv, draws)``.

    See `train_step` for the hooks of `model` it calls.
    """
    craft_on = switch.recipe.craft_on
    draws = model.adversarial_draws(x, craft_on)
    x_adv = switch.craft(lambda images: model.adversarial_probs(images, draws, craft_on), x, y)
    return x_adv, draws


def train_step(model, data, switch):
    """The adversarial training step of every defense that trains (one definition).

    Written against `rls_tf.interface.StochasticClassifier` plus four hooks
    a trainable defense provides (RLS, the ensembles, the seeded-noise
    defenses):

    * ``adversarial_draws(x, craft_on)``: the randomness fixed for the step
      (RLS: its K paths; RSE: one noise seed; an ensemble: one member with
      ``craft_on="one"``, else None);
    * ``adversarial_probs(images, draws, craft_on)``: ``[B, K]``
      probabilities the examples are crafted against, inference mode (the
      mean over the draws, or the first draw with ``"one"``);
    * ``adversarial_loss(x, y, sample_weight, draws)``: ``(loss, aux)`` of
      the training step on a batch, training mode, the same draws;
    * ``adversarial_logs(x_adv, y, sample_weight, aux)``: the step's logs.

    The step: draw, craft with `pgd_examples` at the switch's current eps
    (PGD or FGSM-RS), then one optimizer step on ``ratio * L(adversarial) +
    (1 - ratio) * L(clean)`` (`AdversarialTraining.mix`).

    Args:
        model: the compiled model being trained.
        data: the step's ``(x, y[, sample_weight])``.
        switch: `active(model)`.

    Returns:
        The logs dict of the step.
    """
    from rls_tf.train_steps import optimizer_step  # pylint: disable=import-outside-toplevel

    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    recipe = switch.recipe
    x_adv, draws = craft_batch(model, switch, x, y)

    def loss_fn():
        loss, aux = model.adversarial_loss(x_adv, y, sample_weight, draws)
        loss = recipe.mix(loss, lambda: model.adversarial_loss(x, y, sample_weight, draws)[0])
        return loss, aux

    aux = optimizer_step(model, loss_fn, x)
    return model.adversarial_logs(x_adv, y, sample_weight, aux)


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


class OverfitGuard(keras.callbacks.Callback):
    """Stops a run whose PGD accuracy collapses and restores its best epoch.

    Wong et al. 2020's early stopping for single-step adversarial training
    (their ``--early-stop``: PGD-5 on the first training minibatch after
    every epoch, stop when its robust accuracy falls by more than 0.2): after
    every epoch it crafts L-inf PGD examples (random start) against the
    model's defended prediction (``model(x, training=False)``; for a
    stochastic defense fresh draws every call, an EOT over the attack's
    steps) on a fixed batch, and logs their accuracy as
    ``guard_pgd_accuracy``. When the accuracy falls more than `max_drop`
    below the best epoch's, the run has overfit catastrophically: it
    prints the collapse, restores the weights of the best epoch and stops.

    Args:
        x: the fixed batch of images (e.g. the first training images,
            unaugmented), in [-1, 1].
        y: their labels.
        eps: L-inf radius, [-1, 1] pixel units (the training eps).
        steps: PGD steps (Wong et al.: 5).
        step_size: PGD step (None: ``eps / 4``, Wong et al.'s 2/255 at
            8/255).
        max_drop: the drop from the best accuracy that counts as a collapse
            (Wong et al.: 0.2).

    Attributes:
        history: ``[(epoch, accuracy), ...]`` (0-based epochs).
        best_epoch: the epoch with the highest accuracy so far.
        collapsed_epoch: the epoch of the collapse, or None.

    Example:

    >>> # guard = OverfitGuard(x_train[:128], y_train[:128], eps=16 / 255)
    >>> # model.fit(train_ds, epochs=15, callbacks=[guard])
    >>> # guard.to_json()["collapsed_epoch"]  # None unless it collapsed
    """

    def __init__(self, x, y, eps, steps=5, step_size=None, max_drop=0.2):
        super().__init__()
        self.x = tf.convert_to_tensor(x, tf.float32)
        self.y = tf.cast(tf.reshape(tf.convert_to_tensor(y), [-1]), tf.int32)
        if self.x.shape[0] != self.y.shape[0] or self.x.shape[0] == 0:
            raise ValueError("`x` and `y` must hold the same, non-zero number of examples. "
                             f"Received: x.shape={tuple(self.x.shape)}, "
                             f"y.shape={tuple(self.y.shape)}")
        self.eps = check_float("eps", eps, minimum=0.0, maximum=MAX_EPS)
        self.steps = check_int("steps", steps, minimum=1)
        self.step_size = (self.eps / 4.0 if step_size is None else
                          check_float("step_size", step_size, minimum=0.0, maximum=MAX_EPS))
        self.max_drop = check_float("max_drop", max_drop, minimum=0.0, maximum=1.0,
                                    min_open=True)
        self.history = []
        self.best_epoch = None
        self.collapsed_epoch = None
        self._best = None
        self._best_weights = None
        self._attack = None

    def robust_accuracy(self):
        """PGD accuracy of the model on the fixed batch now."""
        if self._attack is None:
            model = self.model

            def probs_fn(images):
                return model(images, training=False)

            @tf.function
            def attack(x, y):
                adversarial = pgd_examples(probs_fn, x, y, self.eps, self.steps,
                                           self.step_size, random_start=True)
                predicted = tf.argmax(probs_fn(adversarial), axis=-1, output_type=tf.int32)
                return tf.reduce_mean(tf.cast(tf.equal(predicted, y), tf.float32))

            self._attack = attack
        return float(self._attack(self.x, self.y))

    def on_train_begin(self, logs=None):
        self._attack = None  # a new fit may bring a new model

    def on_epoch_end(self, epoch, logs=None):
        accuracy = self.robust_accuracy()
        self.history.append((int(epoch), accuracy))
        if logs is not None:
            logs["guard_pgd_accuracy"] = accuracy
        if self._best is None or accuracy > self._best:
            self._best, self.best_epoch = accuracy, int(epoch)
            self._best_weights = self.model.get_weights()
        elif self._best - accuracy > self.max_drop:
            self.collapsed_epoch = int(epoch)
            print(f"Catastrophic overfitting at epoch {epoch + 1}: PGD-{self.steps} accuracy "
                  f"on the guard batch fell to {accuracy:.3f} from {self._best:.3f} at epoch "
                  f"{self.best_epoch + 1}. Restoring epoch {self.best_epoch + 1}'s weights "
                  "and stopping.")
            self.model.set_weights(self._best_weights)
            self.model.stop_training = True

    def to_json(self):
        """The guard's record for metrics.json."""
        return {"eps": self.eps, "steps": self.steps, "step_size": self.step_size,
                "examples": int(self.x.shape[0]), "max_drop": self.max_drop,
                "pgd_accuracy": [{"epoch": e + 1, "accuracy": a} for e, a in self.history],
                "best_epoch": None if self.best_epoch is None else self.best_epoch + 1,
                "collapsed_epoch": (None if self.collapsed_epoch is None
                                    else self.collapsed_epoch + 1)}
