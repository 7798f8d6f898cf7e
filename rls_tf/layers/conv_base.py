"""`RLSConvBase`: the 2-D convolution shared by every RLS convolution layer.

Owns what `RLSConv2D` and `RLSConv2DBatchNorm` have in common, after the
pattern of Keras' ``BaseConv`` (keras/src/layers/convolutional/base_conv.py):
the argument checks, the M kernel (and bias) copies, the convolution of one
copy, the output shape and the convolution part of the config. A subclass
only adds what follows the convolution in one copy (`_after_conv`) and the
weights that step needs.

Padding is Keras' "valid" or "same" (TF semantics). The PyTorch-style
symmetric padding of strided convolutions is not done here: the backbones
put an explicit ``ZeroPadding2D`` in front of a "valid" convolution (see
``rls_tf/models/backbones/common.py``).
"""

import keras
import numpy as np

from rls_tf.layers.base import RLSLayer
from rls_tf.validation import check_choice
from rls_tf.validation import check_int

__all__ = ["RLSConvBase"]

PADDINGS = ("valid", "same")


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _pair(value, name):
    """A positive int or a pair of them, as a pair of ints."""
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


class RLSConvBase(RLSLayer):
    """Base of the RLS 2-D convolutions (channels last), M kernel copies.

    ``apply_copy(x, m, training)`` is ``_after_conv(conv_m(x) + bias_m, m,
    training)``; `call` routes it over the sampled copies and applies the
    activation to the result. Subclasses override `_after_conv` (identity
    here) and, to add weights, `build` (calling ``super().build`` first, so
    the kernel and bias keep their place in the weight order).

    Not registered for serialization: only its concrete subclasses are saved.

    Args:
        filters: number of output channels (int >= 1).
        kernel_size: int or pair, kernel height and width.
        strides: int or pair.
        padding: "valid" or "same" (case-insensitive).
        dilation_rate: int or pair.
        activation: activation applied to the routed output; None is linear.
        use_bias: whether to add a bias after the convolution.
        kernel_initializer, bias_initializer: initializers of one copy.
        kernel_regularizer, bias_regularizer: regularizers on all copies.
        num_submodels, mu, seed, per_example_sampling: see `RLSLayer`.
        **kwargs: base layer arguments.
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
        self.filters = check_int("filters", filters)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = check_choice(
            "padding", padding.lower() if isinstance(padding, str) else padding,
            PADDINGS)
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")
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
                f"The channel dimension of the inputs to `{type(self).__name__}` "
                f"must be known. Received: input_shape={input_shape}"
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

    def convolution_op(self, inputs, kernel):
        """The convolution with one ``[kh, kw, in, out]`` kernel."""
        return keras.ops.conv(
            inputs,
            kernel,
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format="channels_last",
        )

    def convolve_copy(self, inputs, index):
        """Convolution (plus bias) of `inputs` with copy `index`."""
        outputs = self.convolution_op(
            inputs, self.select(self.kernel, index, self.num_submodels)
        )
        if self.use_bias:
            outputs = outputs + self.select(self.bias, index, self.num_submodels)
        return outputs

    def _after_conv(self, outputs, index, training):
        """What copy `index` does after its convolution: nothing here."""
        del index, training
        return outputs

    def apply_copy(self, inputs, index, training=False):
        """Output of copy `index` (int or scalar tensor), before the activation."""
        return self._after_conv(self.convolve_copy(inputs, index), index, training)

    def call(self, inputs):
        # No `training` here: a plain convolution does not depend on it, so the
        # inference-only "select" routing serves it in training mode too. A
        # subclass whose `_after_conv` needs it overrides `call`.
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
