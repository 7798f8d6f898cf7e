"""The callbacks of adversarial training: `EpsRamp` (eps ramp-up), `OverfitGuard`.

`rls_tf.adversarial` documents the method and re-exports both; import them
from there.
"""

import io
import json
import os

import keras
import numpy as np
import tensorflow as tf

from rls_tf.adversarial_recipe import MAX_EPS
from rls_tf.adversarial_recipe import _ATTRIBUTE
from rls_tf.adversarial_recipe import pgd_examples
from rls_tf.atomic import write_bytes_atomic
from rls_tf.atomic import write_json_atomic
from rls_tf.validation import check_float
from rls_tf.validation import check_int

__all__ = ["EpsRamp", "GUARD_STATE_NAME", "GUARD_WEIGHTS_NAME", "OverfitGuard"]

# The guard's files in its `state_dir` (a run's checkpoints/ directory).
GUARD_STATE_NAME = "guard_state.json"
GUARD_WEIGHTS_NAME = "guard_best_weights.npz"


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
        state_dir: None, or a directory (a run's ``checkpoints/``) where the
            guard keeps its state after every epoch (``guard_state.json``:
            history, best epoch and accuracy, collapse; and the best
            epoch's weights, ``guard_best_weights.npz``), so that a resumed
            run continues it (`restore`).

    Attributes:
        history: ``[(epoch, accuracy), ...]`` (0-based epochs).
        best_epoch: the epoch with the highest accuracy so far.
        collapsed_epoch: the epoch of the collapse, or None (a run whose
            restored guard has one stopped there and trains no further).

    Example:

    >>> # guard = OverfitGuard(x_train[:128], y_train[:128], eps=16 / 255)
    >>> # model.fit(train_ds, epochs=15, callbacks=[guard])
    >>> # guard.to_json()["collapsed_epoch"]  # None unless it collapsed
    """

    def __init__(self, x, y, eps, steps=5, step_size=None, max_drop=0.2, state_dir=None):
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
        self.state_dir = state_dir

    def restore(self, epochs_done, directory=None):
        """Continues the guard of a resumed run from its saved state.

        Args:
            epochs_done: the epochs of the checkpoint the run resumes from;
                records of later epochs (written just before a crash that
                lost their checkpoint) are dropped.
            directory: where the state is (None: `state_dir`; a worker that
                writes elsewhere reads the chief's).

        Returns:
            True when a saved state was found.
        """
        directory = self.state_dir if directory is None else directory
        if directory is None:
            return False
        path = os.path.join(directory, GUARD_STATE_NAME)
        if not os.path.exists(path):
            return False
        with open(path) as f:
            state = json.load(f)
        self.history = [(int(e), float(a)) for e, a in state["history"] if e < epochs_done]
        collapsed = state.get("collapsed_epoch")
        self.collapsed_epoch = collapsed if collapsed is not None and collapsed < epochs_done else None
        best_epoch = state.get("best_epoch")
        if best_epoch is not None and best_epoch < epochs_done:
            with np.load(os.path.join(directory, GUARD_WEIGHTS_NAME)) as weights:
                self._best_weights = [weights[f"w{i}"] for i in range(len(weights.files))]
            self._best, self.best_epoch = float(state["best_accuracy"]), int(best_epoch)
        else:
            # The best epoch's checkpoint was lost with it: the guard's best
            # starts over at the next epoch (its history stays).
            self._best = self.best_epoch = self._best_weights = None
        return True

    def _save(self, new_best):
        if self.state_dir is None:
            return
        if new_best:
            buffer = io.BytesIO()
            np.savez(buffer, **{f"w{i}": w for i, w in enumerate(self._best_weights)})
            write_bytes_atomic(os.path.join(self.state_dir, GUARD_WEIGHTS_NAME),
                               buffer.getvalue())
        # Written after the weights: a state never names a best epoch whose
        # weights are not on disk.
        write_json_atomic(os.path.join(self.state_dir, GUARD_STATE_NAME), {
            "history": [[e, a] for e, a in self.history], "best_epoch": self.best_epoch,
            "best_accuracy": self._best, "collapsed_epoch": self.collapsed_epoch})

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
        new_best = self._best is None or accuracy > self._best
        if new_best:
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
        self._save(new_best)

    def to_json(self):
        """The guard's record for metrics.json."""
        return {"eps": self.eps, "steps": self.steps, "step_size": self.step_size,
                "examples": int(self.x.shape[0]), "max_drop": self.max_drop,
                "pgd_accuracy": [{"epoch": e + 1, "accuracy": a} for e, a in self.history],
                "best_epoch": None if self.best_epoch is None else self.best_epoch + 1,
                "collapsed_epoch": (None if self.collapsed_epoch is None
                                    else self.collapsed_epoch + 1)}
