"""`RLSConv2DBatchNorm`: convolution + batch normalization sharing one index."""

import keras

from rls_tf.layers.base import RLSLayer
from rls_tf.layers.batch_normalization import add_bn_weights
from rls_tf.layers.batch_normalization import check_bn_args
from rls_tf.layers.batch_normalization import normalize_copy
from rls_tf.layers.conv2d import conv_args
from rls_tf.layers.conv2d import conv_output_shape

__all__ = ["RLSConv2DBatchNorm"]


@keras.saving.register_keras_serializable(package="rls_tf")
class RLSConv2DBatchNorm(RLSLayer):
    """Conv2D followed by BatchNormalization, both from one sampled copy.

    Why one fused layer: a batch normalization holds statistics of the
    activations its convolution produces. If the two drew their copies
    independently, BN copy m would average the outputs of every convolution
    copy and no sub-model would keep statistics of its own. Sampling once for
    the pair keeps sub-model m's convolution and normalization together, as
    in the paper's sub-models (a ResNet/VGG "layer" is conv + BN). A shared
    index could also be threaded between two layers, but that couples layer
    objects in ways Keras cannot serialize; one layer with one draw cannot
    get out of step.

    With M=1 this is exactly ``BatchNormalization()(Conv2D(...)(x))`` (and an
    optional activation after it).

    Args:
        filters, kernel_size, strides, padding, dilation_rate: as in
            `keras.layers.Conv2D` (channels last).
        activation: optional activation applied after the normalization.
        use_bias: convolution bias (default False: BN's beta makes it
            redundant).
        kernel_initializer: initializer of one kernel copy (default He
            normal, as in ResNet).
        kernel_regularizer: optional regularizer on all kernel copies.
        momentum: BN moving-average momentum in [0, 1).
        epsilon: BN epsilon.
        center, scale: whether BN learns beta / gamma.
        gamma_regularizer, beta_regularizer: optional regularizers.
        num_submodels, mu, seed, per_example_sampling: see `RLSLayer`.
        **kwargs: base layer arguments.

    Example:

    >>> import numpy as np
    >>> block = RLSConv2DBatchNorm(16, 3, padding="same", activation="relu")
    >>> block(np.zeros((2, 32, 32, 3), "float32"), training=True).shape
    TensorShape([2, 32, 32, 16])
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        dilation_rate=(1, 1),
        activation=None,
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=None,
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
        (self.filters, self.kernel_size, self.strides, self.padding,
         self.dilation_rate) = conv_args(
             filters, kernel_size, strides, padding, dilation_rate)
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.momentum, self.epsilon = check_bn_args(momentum, epsilon)
        self.center = center
        self.scale = scale
        self.gamma_regularizer = keras.regularizers.get(gamma_regularizer)
        self.beta_regularizer = keras.regularizers.get(beta_regularizer)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                "The channel dimension of the inputs to `RLSConv2DBatchNorm` "
                f"must be known. Received: input_shape={input_shape}"
            )
        self.kernel = self.add_copies(
            "kernel", (*self.kernel_size, channels, self.filters),
            self.kernel_initializer, self.kernel_regularizer,
        )
        self.bias = (
            self.add_copies("bias", (self.filters,), "zeros")
            if self.use_bias else None
        )
        add_bn_weights(self, self.filters, self.center, self.scale,
                       self.gamma_regularizer, self.beta_regularizer)
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: channels})

    def apply_copy(self, inputs, index, training=False):
        """Conv + BN of `inputs` with copy `index` (int or scalar tensor)."""
        outputs = keras.ops.conv(
            inputs,
            self.select(self.kernel, index, self.num_submodels),
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format="channels_last",
        )
        if self.use_bias:
            outputs = outputs + self.select(self.bias, index, self.num_submodels)
        return normalize_copy(
            self, outputs, index, training, self.momentum, self.epsilon
        )

    def call(self, inputs, training=None):
        return self.activation(
            self.route(inputs, self.apply_copy, training=bool(training))
        )

    def compute_output_shape(self, input_shape):
        return conv_output_shape(
            input_shape, self.filters, self.kernel_size, self.strides,
            self.padding, self.dilation_rate,
        )

    def get_config(self):
        base_config = super().get_config()
        config = {
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "dilation_rate": self.dilation_rate,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "gamma_regularizer": keras.regularizers.serialize(self.gamma_regularizer),
            "beta_regularizer": keras.regularizers.serialize(self.beta_regularizer),
        }
        return {**base_config, **config}
