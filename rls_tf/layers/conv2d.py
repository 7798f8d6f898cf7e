"""`RLSConv2D`: a 2-D convolution with M sampled kernel copies."""

import keras
import numpy as np

from rls_tf.layers.base import RLSLayer

__all__ = ["RLSConv2D"]


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _pair(value, name):
    pair = (value, value) if _is_int(value) else value
    try:
        pair = tuple(pair)
    except TypeError:
        pair = ()
    if len(pair) != 2 or not all(_is_int(v) and v >= 1 for v in pair):
        raise ValueError(
            f"`{name}` must be a positive int or a pair of them. Received: "
            f"{name}={value!r}"
        )
    return tuple(int(v) for v in pair)


def conv_args(filters, kernel_size, strides, padding, dilation_rate):
    """Validates Conv2D arguments shared by `RLSConv2D` and the fused layer."""
    if not _is_int(filters) or filters < 1:
        raise ValueError(
            f"`filters` must be a positive int. Received: filters={filters!r}"
        )
    padding = str(padding).lower()
    if padding not in ("valid", "same"):
        raise ValueError(
            f"`padding` must be 'valid' or 'same'. Received: padding={padding!r}"
        )
    return (
        int(filters),
        _pair(kernel_size, "kernel_size"),
        _pair(strides, "strides"),
        padding,
        _pair(dilation_rate, "dilation_rate"),
    )


def conv_output_shape(input_shape, filters, kernel_size, strides, padding,
                      dilation_rate):
    """Output shape of a channels-last 2-D convolution."""
    spatial = []
    for size, k, s, d in zip(input_shape[1:3], kernel_size, strides, dilation_rate):
        if size is None:
            spatial.append(None)
        elif padding == "same":
            spatial.append(-(-size // s))
        else:
            spatial.append((size - d * (k - 1) - 1) // s + 1)
    return (input_shape[0], *spatial, filters)


@keras.saving.register_keras_serializable(package="rls_tf")
class RLSConv2D(RLSLayer):
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

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        dilation_rate=(1, 1),
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
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
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                "The channel dimension of the inputs to `RLSConv2D` must be "
                f"known. Received: input_shape={input_shape}"
            )
        self.kernel = self.add_copies(
            "kernel", (*self.kernel_size, channels, self.filters),
            self.kernel_initializer, self.kernel_regularizer,
        )
        self.bias = (
            self.add_copies(
                "bias", (self.filters,), self.bias_initializer,
                self.bias_regularizer,
            )
            if self.use_bias
            else None
        )
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: channels})

    def apply_copy(self, inputs, index):
        """Convolution of `inputs` with copy `index` (int or scalar tensor)."""
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
        return outputs

    def call(self, inputs):
        return self.activation(self.route(inputs, self.apply_copy))

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
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
        }
        return {**base_config, **config}
