"""Batch normalization with M sampled copies.

Owns `BatchNormCopies`, the M copies of batch-norm weights (gamma, beta and
the moving statistics) and the normalization with one of them, and
`RLSBatchNormalization`, the standalone layer built from it. The fused
`RLSConv2DBatchNorm` inherits the same `BatchNormCopies`.
"""

import keras
import tensorflow as tf

from rls_tf.layers.base import RLSLayer
from rls_tf.validation import check_float

__all__ = ["BatchNormCopies", "RLSBatchNormalization"]


class BatchNormCopies:
    """Mixin for an `RLSLayer`: M copies of batch-norm weights, and their use.

    The layer that inherits it calls `init_batch_norm` in ``__init__``,
    `build_batch_norm` in ``build`` and `normalize_copy` in its per-copy
    computation, and merges `batch_norm_config` into its config. The weights
    and settings are plain attributes of the layer (``layer.gamma``,
    ``layer.momentum``, ...), as in `keras.layers.BatchNormalization`.

    The normalization follows `keras.layers.BatchNormalization` exactly
    (float32 statistics, biased batch variance, ``moving = moving * momentum
    + batch * (1 - momentum)``), but a pass with copy m updates only copy m's
    moving statistics.
    """

    def init_batch_norm(self, momentum, epsilon, center, scale,
                        gamma_regularizer=None, beta_regularizer=None):
        """Checks and stores the normalization settings."""
        self.momentum = check_float("momentum", momentum, minimum=0.0, maximum=1.0,
                                    max_open=True)
        self.epsilon = check_float("epsilon", epsilon, minimum=0.0, min_open=True)
        self.center = center
        self.scale = scale
        self.gamma_regularizer = keras.regularizers.get(gamma_regularizer)
        self.beta_regularizer = keras.regularizers.get(beta_regularizer)

    def build_batch_norm(self, channels):
        """Creates gamma, beta and the moving statistics, each ``[M, channels]``.

        Names and order (gamma, beta, moving_mean, moving_variance) are those
        of saved models: `.keras` files restore weights by position. Like
        Keras' BatchNormalization they are never autocast: under mixed
        precision a float16 running average would lose its small updates.
        """
        self.gamma = (
            self.add_copies("gamma", (channels,), "ones", self.gamma_regularizer,
                            autocast=False)
            if self.scale else None
        )
        self.beta = (
            self.add_copies("beta", (channels,), "zeros", self.beta_regularizer,
                            autocast=False)
            if self.center else None
        )
        self.moving_mean = self.add_copies(
            "moving_mean", (channels,), "zeros", trainable=False, autocast=False
        )
        self.moving_variance = self.add_copies(
            "moving_variance", (channels,), "ones", trainable=False, autocast=False
        )

    def normalize_copy(self, inputs, index, training):
        """Batch-normalizes `inputs` (last axis) with copy `index`.

        In training (and when the layer is trainable) the batch statistics
        are used and copy `index`'s moving statistics updated; otherwise the
        moving statistics of copy `index` are used. `RLSLayer.route` never
        calls it on an empty batch.
        """
        num_copies = self.num_submodels
        compute_dtype = keras.backend.result_type(inputs.dtype, "float32")
        inputs = tf.cast(inputs, compute_dtype)
        gamma = (
            tf.cast(self.select(self.gamma, index, num_copies), compute_dtype)
            if self.gamma is not None else None
        )
        beta = (
            tf.cast(self.select(self.beta, index, num_copies), compute_dtype)
            if self.beta is not None else None
        )
        if training and self.trainable:
            axes = list(range(len(inputs.shape) - 1))
            mean, variance = keras.ops.moments(inputs, axes=axes)
            self.assign_moving(self.moving_mean, index, mean, self.momentum)
            self.assign_moving(self.moving_variance, index, variance, self.momentum)
        else:
            mean = tf.cast(self.select(self.moving_mean, index, num_copies),
                           compute_dtype)
            variance = tf.cast(
                self.select(self.moving_variance, index, num_copies), compute_dtype
            )
        outputs = keras.ops.batch_normalization(
            inputs, mean, variance, axis=-1, offset=beta, scale=gamma,
            epsilon=self.epsilon,
        )
        return tf.cast(outputs, self.compute_dtype)

    def batch_norm_config(self):
        """The normalization part of the layer's config."""
        return {
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "gamma_regularizer": keras.regularizers.serialize(self.gamma_regularizer),
            "beta_regularizer": keras.regularizers.serialize(self.beta_regularizer),
        }


@keras.saving.register_keras_serializable(package="rls_tf")
class RLSBatchNormalization(BatchNormCopies, RLSLayer):
    """`keras.layers.BatchNormalization` (last axis) with M sampled copies.

    Each copy has its own gamma, beta and moving statistics. Standalone, this
    layer draws its own index, independent of the layer before it; to give a
    convolution and the normalization after it the same index (so each
    sub-model keeps statistics of its own convolution outputs) use
    `RLSConv2DBatchNorm`.

    Args:
        momentum: moving-average momentum in [0, 1).
        epsilon: small float added to the variance.
        center: whether to learn an offset beta.
        scale: whether to learn a scale gamma.
        gamma_regularizer, beta_regularizer: optional regularizers.
        num_submodels, mu, seed, per_example_sampling: see `RLSLayer`.
        **kwargs: base layer arguments.

    Example:

    >>> import numpy as np
    >>> bn = RLSBatchNormalization(num_submodels=2)
    >>> bn(np.ones((4, 5), "float32"), training=True).shape
    TensorShape([4, 5])
    """

    def __init__(
        self,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        gamma_regularizer=None,
        beta_regularizer=None,
        num_submodels=2,
        mu=None,
        seed=None,
        per_example_sampling=False,
        **kwargs,
    ):
        super().__init__(
            num_submodels=num_submodels,
            mu=mu,
            seed=seed,
            per_example_sampling=per_example_sampling,
            **kwargs,
        )
        self.init_batch_norm(momentum, epsilon, center, scale,
                             gamma_regularizer, beta_regularizer)
        # Images carry no mask; masked moments are not implemented.
        self.supports_masking = False
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                "The last dimension of the inputs to `RLSBatchNormalization` "
                f"must be known. Received: input_shape={input_shape}"
            )
        self.build_batch_norm(channels)
        self.input_spec = keras.layers.InputSpec(
            min_ndim=2, axes={-1: channels}
        )

    def apply_copy(self, inputs, index, training=False):
        """Normalization of `inputs` with copy `index`."""
        return self.normalize_copy(inputs, index, training)

    def call(self, inputs, training=None):
        return self.route(inputs, self.apply_copy, training=bool(training))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), **self.batch_norm_config()}
