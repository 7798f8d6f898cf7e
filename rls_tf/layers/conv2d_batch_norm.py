"""`RLSConv2DBatchNorm`: convolution + batch normalization sharing one index.

The convolution is `RLSConvBase`'s and the normalization `BatchNormCopies`';
this module only joins them into one per-copy computation.
"""

import keras

from rls_tf.layers.batch_normalization import BatchNormCopies
from rls_tf.layers.conv_base import RLSConvBase

__all__ = ["RLSConv2DBatchNorm"]


@keras.saving.register_keras_serializable(package="rls_tf")
class RLSConv2DBatchNorm(BatchNormCopies, RLSConvBase):
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
        # The optional bias is fixed: zeros, unregularised (BN's beta makes
        # it redundant), so it has no initializer/regularizer arguments.
        super().__init__(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            dilation_rate=dilation_rate,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer="zeros",
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=None,
            num_submodels=num_submodels,
            mu=mu,
            seed=seed,
            per_example_sampling=per_example_sampling,
            **kwargs,
        )
        self.init_batch_norm(momentum, epsilon, center, scale,
                             gamma_regularizer, beta_regularizer)

    def build(self, input_shape):
        super().build(input_shape)  # kernel, bias: first in the weight order
        self.build_batch_norm(self.filters)

    def _after_conv(self, outputs, index, training):
        return self.normalize_copy(outputs, index, training)

    def call(self, inputs, training=None):
        return self.activation(
            self.route(inputs, self.apply_copy, training=bool(training))
        )

    def get_config(self):
        config = super().get_config()
        # Not arguments of this layer (see __init__); never in its config.
        del config["bias_initializer"], config["bias_regularizer"]
        return {**config, **self.batch_norm_config()}
