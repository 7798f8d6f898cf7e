"""Helpers of the classifiers' own ``train_step``: batch tiling, loss logging, one optimizer step.

Every model of this library that trains on its own step (RLS, the
ensembles, the seeded-noise defenses) ends it the same way, Keras'
TensorFlow trainer order: `optimizer_step` (loss under one tape, logged
unscaled by `track_loss`, scaled for the optimizer, gradients, apply).
`tile_batch` stacks copies of a batch (K sampled models in one forward).

Example:

(Not run as a doctest: it runs inside a train_step.)

>>> aux = optimizer_step(model, lambda: (loss_of(x), None), x)  # doctest: +SKIP
"""

import tensorflow as tf
# Keras' own train_step divides the logged loss by the replica count the same
# way; it has no public name (the one private import of the train steps).
from keras.src.losses.loss import unscale_loss_for_distribution

__all__ = ["TRAIN_FORWARDS", "optimizer_step", "tile_batch", "track_loss"]

# How a step runs its K forwards (`rls_tf.models.RLSModel`'s train_forward):
# K network calls, or one call on the batch tiled K times (`tile_batch`).
# Here rather than beside RLSModel so that the defense registry, which sits
# below `rls_tf.models`, can offer it as a choice.
TRAIN_FORWARDS = ("tiled", "loop")


def tile_batch(x, times):
    """Stacks `times` copies of the batch: rows [s*B, (s+1)*B) are copy s."""
    return tf.tile(x, [times] + [1] * (len(x.shape) - 1))


def track_loss(model, loss, batch):
    """Logs `loss` in the model's loss tracker (per replica, weighted by the batch size).

    Args:
        model: a `keras.Model` (its ``_loss_tracker``, as Keras' own steps).
        loss: scalar loss of the step.
        batch: the step's input batch (its first dimension weighs the mean).
    """
    model._loss_tracker.update_state(  # pylint: disable=protected-access
        unscale_loss_for_distribution(loss), sample_weight=tf.shape(batch)[0])


def optimizer_step(model, loss_fn, batch):
    """One optimizer step on ``loss_fn()`` under one `tf.GradientTape`.

    The tail every classifier's ``train_step`` shares (Keras' TensorFlow
    trainer order): compute the loss under the tape, log it unscaled
    (`track_loss`), scale it for the optimizer (loss scaling), then the
    gradients of every trainable weight and ``optimizer.apply``.

    Args:
        model: the `keras.Model` being trained (compiled).
        loss_fn: ``() -> (loss, aux)``, run under the tape; `aux` is
            anything the caller needs afterwards (e.g. the predictions).
        batch: the step's input batch (weighs the logged loss).

    Returns:
        `aux`.

    Example:

    (Not run as a doctest: it runs inside a train_step.)

    >>> aux = optimizer_step(model, lambda: (loss_of(x), None), x)  # doctest: +SKIP
    """
    with tf.GradientTape() as tape:
        loss, aux = loss_fn()
        track_loss(model, loss, batch)
        if model.optimizer is not None:
            loss = model.optimizer.scale_loss(loss)
    gradients = tape.gradient(loss, model.trainable_weights)
    model.optimizer.apply(gradients, model.trainable_weights)
    return aux
