"""`RLSBatchNormalization`: batch normalization with M sampled copies."""

import keras
import numpy as np
import tensorflow as tf

from rls_tf.layers.base import RLSLayer

__all__ = ["RLSBatchNormalization"]


def check_bn_args(momentum, epsilon):
    """Validates the normalization arguments shared with the fused layer."""
    def number(name, value):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise ValueError(f"`{name}` must be a number. Received: {name}={value!r}")
        return float(value)

    momentum, epsilon = number("momentum", momentum), number("epsilon", epsilon)
    if not 0.0 <= momentum < 1.0:
        raise ValueError(
            f"`momentum` must be in [0, 1). Received: momentum={momentum!r}"
        )
    if not epsilon > 0.0:
        raise ValueError(f"`epsilon` must be > 0. Received: epsilon={epsilon!r}")
    return momentum, epsilon


def add_bn_weights(layer, channels, center, scale, gamma_regularizer=None,
                   beta_regularizer=None):
    """Creates gamma, beta and the moving statistics, each ``[M, channels]``.

    Like Keras' BatchNormalization they are never autocast: under mixed
    precision a float16 running average would lose its small updates.
    """
    layer.gamma = (
        layer.add_copies("gamma", (channels,), "ones", gamma_regularizer,
                         autocast=False)
        if scale else None
    )
    layer.beta = (
        layer.add_copies("beta", (channels,), "zeros", beta_regularizer,
                         autocast=False)
        if center else None
    )
    layer.moving_mean = layer.add_copies(
        "moving_mean", (channels,), "zeros", trainable=False, autocast=False
    )
    layer.moving_variance = layer.add_copies(
        "moving_variance", (channels,), "ones", trainable=False, autocast=False
    )


def normalize_copy(layer, inputs, index, training, momentum, epsilon):
    """Batch-normalizes `inputs` with copy `index` of `layer`'s BN weights.

    Follows `keras.layers.BatchNormalization` exactly (float32 statistics,
    biased batch variance, ``moving = moving * momentum + batch * (1 -
    momentum)``), but updates only the moving statistics of copy `index`.
    `RLSLayer.route` never calls it on an empty batch.
    """
    num_copies = layer.num_submodels
    compute_dtype = keras.backend.result_type(inputs.dtype, "float32")
    inputs = tf.cast(inputs, compute_dtype)
    gamma = (
        tf.cast(layer.select(layer.gamma, index, num_copies), compute_dtype)
        if layer.gamma is not None else None
    )
    beta = (
        tf.cast(layer.select(layer.beta, index, num_copies), compute_dtype)
        if layer.beta is not None else None
    )
    if training and layer.trainable:
        axes = list(range(len(inputs.shape) - 1))
        mean, variance = keras.ops.moments(inputs, axes=axes)
        layer.assign_moving(layer.moving_mean, index, mean, momentum)
        layer.assign_moving(layer.moving_variance, index, variance, momentum)
    else:
        mean = tf.cast(layer.select(layer.moving_mean, index, num_copies), compute_dtype)
        variance = tf.cast(
            layer.select(layer.moving_variance, index, num_copies), compute_dtype
        )
    outputs = keras.ops.batch_normalization(
        inputs, mean, variance, axis=-1, offset=beta, scale=gamma, epsilon=epsilon
    )
    return tf.cast(outputs, layer.compute_dtype)


@keras.saving.register_keras_serializable(package="rls_tf")
class RLSBatchNormalization(RLSLayer):
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
        self.momentum, self.epsilon = check_bn_args(momentum, epsilon)
        self.center = center
        self.scale = scale
        self.gamma_regularizer = keras.regularizers.get(gamma_regularizer)
        self.beta_regularizer = keras.regularizers.get(beta_regularizer)
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
        add_bn_weights(self, channels, self.center, self.scale,
                       self.gamma_regularizer, self.beta_regularizer)
        self.input_spec = keras.layers.InputSpec(
            min_ndim=2, axes={-1: channels}
        )

    def apply_copy(self, inputs, index, training=False):
        """Normalization of `inputs` with copy `index`."""
        return normalize_copy(
            self, inputs, index, training, self.momentum, self.epsilon
        )

    def call(self, inputs, training=None):
        return self.route(inputs, self.apply_copy, training=bool(training))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        base_config = super().get_config()
        config = {
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "gamma_regularizer": keras.regularizers.serialize(self.gamma_regularizer),
            "beta_regularizer": keras.regularizers.serialize(self.beta_regularizer),
        }
        return {**base_config, **config}
