"""How `RLSModel` trains: its clean and adversarial training steps, as a mixin.

`RLSTraining` holds the parts of `rls_tf.models.RLSModel` that run during
`fit` and `evaluate`: the K sampled models of a step, the group loss on
their mean prediction, the four hooks of `rls_tf.adversarial.train_step`,
and two workarounds for Keras' multi-worker training. It relies on the
model's sampled forward (`sample_outputs`, `outputs`, `_prefix_sharing`,
`_effective`), so it is a base of `RLSModel` only; import the model from
`rls_tf.models.rls_model`.
"""

import keras
import tensorflow as tf

from rls_tf import adversarial
from rls_tf import metrics as rls_metrics
from rls_tf.layers.sampling import current_scope
from rls_tf.layers.sampling import sampling_scope
from rls_tf.train_steps import optimizer_step
from rls_tf.train_steps import track_loss

__all__ = ["RLSTraining"]


class RLSTraining:
    """`RLSModel`'s ``train_step`` / ``test_step`` and adversarial hooks (see there)."""

    # -- training -----------------------------------------------------------

    def _training_samples(self, x):
        return self.sample_outputs(
            x, self._effective(self.num_samples), training=True,
            forward=self.train_forward,
        )

    # Supported by `rls_tf.adversarial` (see `_adversarial_train_step`).
    adversarial_training_support = True

    def _training_paths(self, x):
        """The K paths of a training step, drawn as `_training_samples` draws them.

        Every RLS layer draws with its own `draw_indices`, as often and as
        many as in the clean step (K single draws in the "loop" forward, one
        draw of K in the "tiled" one; B per example under per-example
        sampling), so a seeded layer gives the same paths as in a clean
        step. Returns int32 ``[K, L]``, or ``[K, B, L]`` when some layer
        samples per example.
        """
        num = self._effective(self.num_samples)
        batch = tf.shape(x)[0]
        override = self.per_example_sampling
        per_example = self.draws_per_example
        tiled = self.train_forward == "tiled" and num > 1
        columns = []
        for layer in self.rls_layers:
            own = layer.per_example_sampling if override is None else override
            width = batch if own else 1
            if layer.num_submodels == 1:
                column = tf.zeros(tf.stack([num, width]), tf.int32)
            elif tiled:
                column = tf.reshape(layer.draw_indices(num * width), tf.stack([num, width]))
            else:
                column = tf.stack([layer.draw_indices(width) for _ in range(num)])
            if per_example:
                column = tf.broadcast_to(column, tf.stack([num, batch]))
            else:
                column = column[:, 0]
            columns.append(column)
        if not columns:
            shape = [num, batch, 0] if per_example else [num, 0]
            return tf.zeros(tf.stack(shape), tf.int32)
        return tf.stack(columns, axis=-1)

    def _path_samples(self, x, paths, training=True):
        """`_training_samples` with the paths fixed: ``[D, B, K]``.

        The same forward as the clean step (``train_forward``; prefix
        sharing in the "loop" form) with every RLS layer pinned to `paths`
        (``[D, L]`` or ``[D, B, L]``, e.g. from `_training_paths`).
        """
        num = paths.shape[0]
        if not self.is_stochastic or num == 1 or self.train_forward == "tiled":
            return self.outputs(x, paths, training=training, forward="tiled")
        per_example = paths.shape.rank == 3
        share = None if per_example else self._prefix_sharing(num)
        routing = current_scope().routing
        layers = self.rls_layers
        outputs = []
        for s in range(num):
            if share is not None:
                share.sample = s
            pinned = {id(layer): tf.reshape(paths[s, ..., j], [-1])
                      for j, layer in enumerate(layers)}
            with sampling_scope(num_groups=1, pinned=pinned, share=share, routing=routing):
                outputs.append(self.network(x, training=training))
        return tf.stack(outputs)

    # -- adversarial training (`rls_tf.adversarial.train_step`) ---------------

    def adversarial_draws(self, x, craft_on):  # pylint: disable=unused-argument
        """The step's K paths, drawn once (`_training_paths`)."""
        return self._training_paths(x)

    def adversarial_probs(self, images, draws, craft_on):
        """Mean prediction of the step's K paths (``"mean"``, an EOT) or of the
        first (``"one"``), the network in inference mode (batch-norm moving
        statistics, not updated)."""
        target = draws if craft_on == "mean" else draws[:1]
        return tf.reduce_mean(self._path_samples(images, target, training=False), axis=0)

    def adversarial_loss(self, x, y, sample_weight, draws):
        """Group loss of the same K paths (training mode) on `x`."""
        samples = self._path_samples(x, draws)
        y_pred = tf.reduce_mean(samples, axis=0)
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                 training=True)
        return loss, (samples, y_pred)

    def _adversarial_train_step(self, data, switch):
        """`rls_tf.adversarial.train_step` of this model (one seam for tests)."""
        return adversarial.train_step(self, data, switch)

    def adversarial_logs(self, x_adv, y, sample_weight, aux):
        """Loss: the mix; accuracy and diversity: on the adversarial batch."""
        samples, y_pred = aux
        self.diversity_tracker.update_state(rls_metrics.pairwise_disagreement(samples))
        return self._step_logs(
            self.compute_metrics(x_adv, y, y_pred, sample_weight=sample_weight))

    def train_step(self, data):
        switch = adversarial.active(self)
        if switch is not None:
            return self._adversarial_train_step(data, switch)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)

        def loss_fn():
            samples = self._training_samples(x)
            y_pred = tf.reduce_mean(samples, axis=0)
            return self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                     training=True), (samples, y_pred)

        samples, y_pred = optimizer_step(self, loss_fn, x)
        self.diversity_tracker.update_state(rls_metrics.pairwise_disagreement(samples))
        return self._step_logs(
            self.compute_metrics(x, y, y_pred, sample_weight=sample_weight))

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        samples = self.sample_outputs(
            x, self._effective(self.eval_samples), forward=self.eval_forward
        )
        y_pred = tf.reduce_mean(samples, axis=0)
        loss = self.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False
        )
        track_loss(self, loss, x)
        self.diversity_tracker.update_state(rls_metrics.pairwise_disagreement(samples))
        return self._step_logs(
            self.compute_metrics(x, y, y_pred, sample_weight=sample_weight))

    # -- distribution -------------------------------------------------------

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3.12-3.15 builds the metrics from a first batch that it
        # averages across replicas with `strategy.reduce`; under
        # MultiWorkerMirroredStrategy that eager cross-worker reduce fails
        # ("Attempt to convert a value (PerReplica...) to a Tensor"). Only the
        # batch's structure and shapes matter there, so this replica's share
        # is used instead.
        strategy = getattr(self, "_distribute_strategy", None)
        if iterator is not None and isinstance(
                strategy, tf.distribute.MultiWorkerMirroredStrategy):
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: (strategy.experimental_local_results(v)[0]
                               if isinstance(v, tf.distribute.DistributedValues) else v),
                    next(it),
                )
                break
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _step_logs(self, logs):
        # Keras 3.12-3.15 averages each step's logs across workers with
        # `strategy.reduce("MEAN", v, axis=0)` under multi-worker training,
        # which fails on scalars ("Invalid reduction dimension 0"). A log of
        # shape [1] reduces to the same scalar mean.
        strategy = tf.distribute.get_strategy()
        if (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
                and strategy.extended._in_multi_worker_mode()):  # pylint: disable=protected-access
            return {k: tf.reshape(v, [1]) if tf.is_tensor(v) and v.shape.rank == 0 else v
                    for k, v in logs.items()}
        return logs
