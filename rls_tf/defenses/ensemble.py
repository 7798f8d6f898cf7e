"""`EnsembleModel`: M independently initialised members, prediction = mean softmax.

The paper's "Base ensemble" (Lee et al., Table 6: 3 and 5 independently
trained networks) and a deep ensemble: every member is its own network
(its own weights and batch-norm statistics) trained on its own
cross-entropy. The training loss is the SUM of the members' losses, so no
term couples them: a member's loss moves only its own weights, exactly as if
the members were trained one by one on the same batches. Subclasses that do
couple them (ADP, `rls_tf.defenses.adp`) override one hook,
`member_loss_terms`.

As a `StochasticClassifier` the ensemble is deterministic (its inference is
the mean of every member), but its draws name members (``draw_shape ==
(1,)``): the ``paper`` and ``multi_sample`` threat models give the attacker
S pinned members (Table 6: "select one sub-model and generate adversarial
examples"), ``eot`` / ``apgd_rand`` attack the whole ensemble (white box),
and the defender is exactly the mean of all members (`defender_draws`), so
accuracy against N is accuracy against the ensemble size.

Example:

>>> import rls_tf
>>> model = rls_tf.models.build_defense("ensemble", "small_cnn", ensemble_size=3,
...                                     input_shape=(28, 28, 1))
>>> model.compile(optimizer="sgd", metrics=["accuracy"])
>>> # model.fit(train_ds, epochs=3); model.predict(x_test)
"""

import keras
import tensorflow as tf

from rls_tf import adversarial
from rls_tf import metrics as rls_metrics
from rls_tf.interface import StochasticClassifier
from rls_tf.randomness import draw_categorical
from rls_tf.train_steps import optimizer_step
from rls_tf.train_steps import track_loss
from rls_tf.validation import check_int

__all__ = ["EnsembleModel", "check_ensemble_size", "member_cross_entropy"]

def member_cross_entropy(y, probs, label_smoothing=0.0):
    """``[M, B]`` cross-entropy of every member's softmax ``probs [M, B, K]``.

    `keras.losses.categorical_crossentropy` of every member (probabilities
    renormalised and clipped to Keras' epsilon, as in ADP's Keras 2 code);
    with ``label_smoothing`` s the target is ``(1 - s) * one_hot(y) + s / K``.
    """
    probs = tf.convert_to_tensor(probs)
    y = tf.cast(tf.reshape(y, [-1]), tf.int32)
    target = tf.one_hot(y, tf.shape(probs)[-1], dtype=probs.dtype)
    # Keras wants the target in the shape of the output: one per member.
    target = tf.broadcast_to(target[None], tf.shape(probs))
    return keras.losses.categorical_crossentropy(target, probs,
                                                 label_smoothing=label_smoothing)


@keras.saving.register_keras_serializable(package="rls_tf")
class EnsembleModel(keras.Model, StochasticClassifier):
    """An ensemble of M member networks, each images -> softmax probabilities.

    Args:
        members: list of at least 2 `keras.Model` networks with the same
            input and output shapes (independently initialised).
        **kwargs: `keras.Model` arguments (e.g. `name`).

    Trained with `fit` after ``compile(optimizer=..., metrics=[...])``: the
    loss is fixed (the sum over members of their cross-entropy, plus the
    members' regularisation losses once); metrics see the mean prediction.
    Logged: ``loss``, the metrics, ``diversity`` (pairwise disagreement of
    the members' predicted classes).

    Adversarial training (`rls_tf.adversarial.enable`, ``train.py
    --adv_train=pgd``; ADP too): PGD examples crafted against the ensemble's
    mean prediction (``craft_on="one"``: one member drawn per step), the
    members in inference mode, then the usual loss on them.
    """

    # Supported by `rls_tf.adversarial` (see `train_step`).
    adversarial_training_support = True

    def __init__(self, members, **kwargs):
        super().__init__(**kwargs)
        members = list(members)
        if len(members) < 2 or not all(isinstance(m, keras.Model) for m in members):
            raise ValueError(
                "`members` must be a list of at least 2 keras.Model networks. Received: "
                f"members={[type(m).__name__ for m in members]!r}"
            )
        shapes = {(tuple(m.input_shape[1:]), tuple(m.output_shape[1:])) for m in members}
        if len(shapes) != 1:
            raise ValueError(f"The members must share input and output shapes. Received: "
                             f"{sorted(shapes)}")
        self.members = members
        self.eval_samples = len(members)
        # A training-time setting (train.py --label_smoothing), not saved.
        self.label_smoothing = 0.0
        self.diversity_tracker = keras.metrics.Mean(name="diversity")
        self.built = all(m.built for m in members)

    # -- the StochasticClassifier interface --------------------------------

    @property
    def ensemble_size(self):
        return len(self.members)

    @property
    def is_stochastic(self):
        return False

    @property
    def pinnable(self):
        return True

    @property
    def draw_shape(self):
        return (1,)

    @property
    def image_shape(self):
        return tuple(self.members[0].input_shape[1:])

    def draw(self, num_draws, seed=None, stream=None):
        """Draws member indices, uniformly, int32 ``[num_draws, 1]``."""
        m = self.ensemble_size
        return draw_categorical([[1.0 / m] * m], num_draws, seed=seed, stream=stream)

    def defender_draws(self):
        return tf.range(self.ensemble_size, dtype=tf.int32)[:, None]

    defense_name = "ensemble"

    def describe(self):
        return {"defense": self.defense_name, "ensemble_size": self.ensemble_size,
                "stochastic": False, "members": [m.name for m in self.members]}

    def member_outputs(self, x, training=False):
        """``[M, B, K]`` probabilities of every member."""
        return tf.stack([member(x, training=training) for member in self.members])

    def outputs(self, x, draws, training=False, forward="loop"):  # pylint: disable=unused-argument
        """Outputs of the members the draws name: ``[D, B, K]``.

        Args:
            x: images ``[B, H, W, C]``.
            draws: int ``[D, 1]`` (member of row d for the whole batch) or
                ``[D, B, 1]`` (per example).
            training: batch-norm mode.
            forward: accepted for the interface (every member runs once).
        """
        x = tf.convert_to_tensor(x)
        expected = self.image_shape
        if tuple(x.shape[1:]) != expected:
            raise ValueError(f"Images must have shape [batch, {', '.join(map(str, expected))}]. "
                             f"Received: x.shape={tuple(x.shape)}")
        draws = tf.convert_to_tensor(draws, tf.int32)
        if draws.shape.rank not in (2, 3) or draws.shape[-1] != 1:
            raise ValueError("`draws` must have shape [D, 1] or [D, batch, 1] (member "
                             f"indices). Received: draws.shape={draws.shape}")
        tf.debugging.assert_less(draws, self.ensemble_size, message="member index out of range")
        tf.debugging.assert_non_negative(draws, message="member index out of range")
        everything = self.member_outputs(x, training=training)
        if draws.shape.rank == 2:
            return tf.gather(everything, draws[:, 0])
        # [B, M, K] gathered per row with [B, D] indices -> [B, D, K].
        per_row = tf.gather(tf.transpose(everything, [1, 0, 2]),
                            tf.transpose(draws[..., 0]), batch_dims=1)
        return tf.transpose(per_row, [1, 0, 2])

    def call(self, inputs, training=False):
        return tf.reduce_mean(self.member_outputs(inputs, training=training), axis=0)

    # -- training -----------------------------------------------------------

    def member_loss_terms(self, y, probs):
        """Per-example loss ``[B]`` from the members' outputs ``[M, B, K]``.

        The base ensemble: the sum of the members' cross-entropies.
        """
        return tf.reduce_sum(member_cross_entropy(y, probs, self.label_smoothing), axis=0)

    def _loss(self, y, probs, sample_weight=None):
        per_example = self.member_loss_terms(y, probs)
        if sample_weight is not None:
            sample_weight = tf.cast(tf.reshape(sample_weight, [-1]), per_example.dtype)
            loss = tf.reduce_sum(per_example * sample_weight) / tf.maximum(
                tf.reduce_sum(sample_weight), 1e-12)
        else:
            loss = tf.reduce_mean(per_example)
        if self.losses:
            loss = loss + tf.add_n([tf.cast(v, loss.dtype) for v in self.losses])
        return loss

    # -- adversarial training (`rls_tf.adversarial.train_step`) ---------------

    def adversarial_draws(self, x, craft_on):  # pylint: disable=unused-argument
        """One member drawn uniformly with ``craft_on="one"``, else None (all)."""
        return self.draw(1) if craft_on == "one" else None

    def adversarial_probs(self, images, draws, craft_on):  # pylint: disable=unused-argument
        """The mean of the members (or the drawn member), inference mode."""
        if draws is not None:
            return self.outputs(images, draws, training=False)[0]
        return tf.reduce_mean(self.member_outputs(images, training=False), axis=0)

    def adversarial_loss(self, x, y, sample_weight, draws):  # pylint: disable=unused-argument
        """The ensemble's own loss (every member, training mode) on `x`."""
        probs = self.member_outputs(x, training=True)
        return self._loss(y, probs, sample_weight), probs

    def _adversarial_batch(self, switch, x, y):
        """PGD examples against the mean of the members (or one drawn member)."""
        return adversarial.craft_batch(self, switch, x, y)[0]

    def adversarial_logs(self, x_adv, y, sample_weight, aux):
        probs = aux
        self.diversity_tracker.update_state(rls_metrics.pairwise_disagreement(probs))
        return self.compute_metrics(x_adv, y, tf.reduce_mean(probs, axis=0),
                                    sample_weight=sample_weight)

    def train_step(self, data):
        switch = adversarial.active(self)
        if switch is not None:
            return adversarial.train_step(self, data, switch)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)

        def loss_fn():
            probs = self.member_outputs(x, training=True)
            return self._loss(y, probs, sample_weight), probs

        probs = optimizer_step(self, loss_fn, x)
        self.diversity_tracker.update_state(rls_metrics.pairwise_disagreement(probs))
        return self.compute_metrics(x, y, tf.reduce_mean(probs, axis=0),
                                    sample_weight=sample_weight)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        probs = self.member_outputs(x, training=False)
        loss = self._loss(y, probs, sample_weight)
        track_loss(self, loss, x)
        self.diversity_tracker.update_state(rls_metrics.pairwise_disagreement(probs))
        return self.compute_metrics(x, y, tf.reduce_mean(probs, axis=0),
                                    sample_weight=sample_weight)

    # -- serialization ------------------------------------------------------

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "members": [keras.saving.serialize_keras_object(m) for m in self.members]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["members"] = [keras.saving.deserialize_keras_object(m,
                                                                   custom_objects=custom_objects)
                             for m in config["members"]]
        return cls(**config)

    def build(self, input_shape):
        self.built = True

    def compute_output_shape(self, input_shape):
        return self.members[0].compute_output_shape(input_shape)


def check_ensemble_size(value):
    """The number of members: an int >= 2."""
    return check_int("ensemble_size", value, minimum=2)

