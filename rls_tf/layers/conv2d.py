"""`RLSConv2D`: a 2-D convolution with M sampled kernel copies.

The convolution itself (checks, copies, output shape, config) is
`RLSConvBase`'s; this module only names the plain layer.
"""

import keras

from rls_tf.layers.conv_base import RLSConvBase

__all__ = ["RLSConv2D"]


@keras.saving.register_keras_serializable(package="rls_tf")
class RLSConv2D(RLSConvBase):
    """`keras.layers.Conv2D` (channels-last) sampling one of M kernel copies.

    Use `RLSConv2DBatchNorm` instead when a batch normalization follows the
    convolution: there the two share one sampled index, so each sub-model
    keeps its own normalization statistics.

    Args:
        filters: number of output channels.
        kernel_size: int or pair, kernel height and width.
        strides: int or pair.
        padding: "valid" or "same".
        dilation_rate: int or pair.
        activation: activation function; None is linear.
        use_bias: whether to add a bias.
        kernel_initializer, bias_initializer: initializers of one copy.
        kernel_regularizer, bias_regularizer: regularizers on all copies.
        num_submodels, mu, seed, per_example_sampling: see `RLSLayer`.
        **kwargs: base layer arguments.

    Example:

    >>> import numpy as np
    >>> conv = RLSConv2D(8, 3, padding="same", num_submodels=2)
    >>> conv(np.zeros((2, 28, 28, 1), "float32")).shape
    TensorShape([2, 28, 28, 8])
    """

    # Everything (arguments, weights, per-copy convolution, config) is the base's.
