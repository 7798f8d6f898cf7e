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

import keras

# The recipe, the crafting and the callbacks live in their own modules; this
# one is their public home (every name below was defined here before).
from rls_tf.adversarial_callbacks import EpsRamp
from rls_tf.adversarial_callbacks import OverfitGuard
from rls_tf.adversarial_recipe import CRAFT_ON
from rls_tf.adversarial_recipe import FGSM_RS_STEP_FACTOR
from rls_tf.adversarial_recipe import MAX_EPS
from rls_tf.adversarial_recipe import METHODS
from rls_tf.adversarial_recipe import PIXEL_RANGE
from rls_tf.adversarial_recipe import STEP_SIZE_FACTOR
from rls_tf.adversarial_recipe import AdversarialTraining
from rls_tf.adversarial_recipe import _ATTRIBUTE
from rls_tf.adversarial_recipe import _Switch
from rls_tf.adversarial_recipe import check_recipe
from rls_tf.adversarial_recipe import crossentropy
from rls_tf.adversarial_recipe import default_steps
from rls_tf.adversarial_recipe import pgd_examples

__all__ = ["AdversarialTraining", "CRAFT_ON", "EpsRamp", "METHODS", "OverfitGuard",
           "PIXEL_RANGE", "active", "check_recipe", "crossentropy", "default_steps", "disable",
           "enable", "pgd_examples", "recipe_of"]


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
