"""`RLSDense`: a densely-connected layer with M sampled weight copies."""

import keras

from rls_tf.layers.base import RLSLayer
from rls_tf.validation import check_int

__all__ = ["RLSDense"]


@keras.saving.register_keras_serializable(package="rls_tf")
class RLSDense(RLSLayer):
    """`keras.layers.Dense` whose kernel and bias are sampled from M copies.

    ``outputs = activation(inputs @ kernel[r] + bias[r])`` with ``r`` drawn
    from Categorical(mu) for each sampled model (see `RLSLayer`).

    Args:
        units: positive int, output dimension.
        activation: activation function (name or callable); None is linear.
        use_bias: whether to add a bias.
        kernel_initializer: initializer of one kernel copy.
        bias_initializer: initializer of one bias copy.
        kernel_regularizer: optional regularizer on all kernel copies.
        bias_regularizer: optional regularizer on all bias copies.
        num_submodels, mu, seed, per_example_sampling: see `RLSLayer`.
        **kwargs: base layer arguments.

    Example:

    >>> import numpy as np
    >>> layer = RLSDense(10, num_submodels=2, seed=0)
    >>> layer(np.zeros((4, 3), "float32")).shape
    TensorShape([4, 10])
    >>> tuple(layer.kernel.shape)  # [M, input_dim, units]
    (2, 3, 10)
    """

    def __init__(
        self,
        units,
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
        self.units = check_int("units", units)
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                "The last dimension of the inputs to `RLSDense` must be known. "
                f"Received: input_shape={input_shape}"
            )
        self.kernel = self.add_copies(
            "kernel", (input_dim, self.units),
            self.kernel_initializer, self.kernel_regularizer,
        )
        self.bias = (
            self.add_copies(
                "bias", (self.units,), self.bias_initializer, self.bias_regularizer
            )
            if self.use_bias
            else None
        )
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: input_dim})

    def apply_copy(self, inputs, index):
        """Output of copy `index` (Python int or scalar tensor) on `inputs`."""
        outputs = keras.ops.matmul(
            inputs, self.select(self.kernel, index, self.num_submodels)
        )
        if self.use_bias:
            outputs = outputs + self.select(self.bias, index, self.num_submodels)
        return outputs

    def call(self, inputs):
        return self.activation(self.route(inputs, self.apply_copy))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        base_config = super().get_config()
        config = {
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
        }
        return {**base_config, **config}
