"""What every backbone builder shares: argument checks, the prologue and layer factories.

`start_network` is the prologue of every backbone (checks of the input
shape and the number of classes, the network's `LayerFactory`); a
backbone's entry (`rls_tf.models.backbones.specs.BackboneSpec`) runs it
before its body, so a body only builds layers.

`LayerFactory` also carries two optional *hooks* that insert extra
(weightless) layers into a backbone without a second copy of it: the noise
and pruning defenses beside RLS (`rls_tf.defenses.noise_networks`) are the
backbones plus such layers. Without hooks every network is exactly as
before (same layers, names, order and weights).
"""

import keras

from rls_tf.layers.base import _check_mu
from rls_tf.layers.conv2d_batch_norm import RLSConv2DBatchNorm
from rls_tf.layers.dense import RLSDense
from rls_tf.validation import SEED_LIMIT
from rls_tf.validation import check_bool
from rls_tf.validation import check_float
from rls_tf.validation import check_int
from rls_tf.validation import check_seed

# BN settings of the reference PyTorch ResNet/VGG the paper trained
# (momentum 0.1 there is 0.9 here, Keras counts the other way).
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def check_input_shape(input_shape, min_size=8):
    """Validates an image input shape ``(H, W, C)``."""
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"`input_shape` must be (height, width, channels). "
            f"Received: input_shape={input_shape!r}"
        ) from None
    if len(shape) != 3 or min(shape) < 1 or shape[0] < min_size or shape[1] < min_size:
        raise ValueError(
            f"`input_shape` must be (height, width, channels) with height and "
            f"width >= {min_size}. Received: input_shape={input_shape!r}"
        )
    return shape


def check_num_classes(num_classes):
    """The number of classes: an int >= 2."""
    return check_int("num_classes", num_classes, minimum=2)


def check_hook(name, hook):
    """A layer hook: None or a callable ``(index, name) -> layer or None``."""
    if hook is not None and not callable(hook):
        raise ValueError(f"`{name}` must be None or a callable (index, name) -> layer or None. "
                         f"Received: {name}={hook!r}")
    return hook


def start_network(num_submodels, num_classes, input_shape, mu=None, seed=None,
                  per_example_sampling=False, weight_decay=0.0, pre_conv=None,
                  post_relu=None, min_input_size=8):
    """The prologue every backbone shares: its checked arguments and `LayerFactory`.

    Args:
        num_submodels, mu, seed, per_example_sampling, weight_decay,
            pre_conv, post_relu: see `LayerFactory`.
        num_classes: number of classes (an int >= 2).
        input_shape: ``(H, W, C)``, H and W >= `min_input_size`.
        min_input_size: the backbone's smallest height and width.

    Returns:
        ``(make, input_shape, num_classes)``: the network's `LayerFactory`,
        the shape as a tuple of ints and the number of classes.

    Raises:
        ValueError: a bad argument, named with the value received.
    """
    input_shape = check_input_shape(input_shape, min_input_size)
    num_classes = check_num_classes(num_classes)
    make = LayerFactory(num_submodels, mu, seed, per_example_sampling, weight_decay,
                        pre_conv=pre_conv, post_relu=post_relu)
    return make, input_shape, num_classes


class LayerFactory:
    """Makes the RLS layers of one network with shared sampling settings.

    Each layer gets its own seed (``seed + its position``) so that seeded
    layers do not all draw the same sequence of copies.

    Hooks (both default None: nothing is inserted) are callables
    ``hook(index, name) -> keras layer or None`` called once per site, in
    the order the backbone builds them; ``index`` counts the sites of that
    hook from 0 and ``name`` is the name of the convolution / activation
    layer at the site (None if unnamed). A returned layer is inserted there;
    None inserts nothing.

    Args:
        num_submodels: M.
        mu: sampling probabilities (None: uniform).
        seed: None or an int in ``[0, 2**31)``.
        per_example_sampling: bool.
        weight_decay: L2 weight decay as in SGD's ``weight_decay`` (PyTorch
            convention, the paper's 5e-4): the gradient gains
            ``weight_decay * w``, i.e. an L2 penalty ``weight_decay / 2 *
            sum(w**2)`` on every kernel.
        pre_conv: hook called before every convolution (`conv_bn`,
            projection shortcuts included); its layer is applied to the
            convolution's input (before the padding of a strided one).
        post_relu: hook called after every ReLU: the activation of a
            `conv_bn` / `dense` with ``activation="relu"`` and every
            separate ReLU layer (`relu`); its layer is applied to the ReLU's
            output.
    """

    def __init__(self, num_submodels, mu=None, seed=None,
                 per_example_sampling=False, weight_decay=0.0, pre_conv=None,
                 post_relu=None):
        self.num_submodels = check_int("num_submodels", num_submodels, minimum=1)
        self.mu = list(_check_mu(mu, self.num_submodels))
        self.seed = check_seed("seed", seed)
        self.weight_decay = check_float("weight_decay", weight_decay, minimum=0.0)
        self.per_example_sampling = check_bool("per_example_sampling", per_example_sampling)
        self.pre_conv = check_hook("pre_conv", pre_conv)
        self.post_relu = check_hook("post_relu", post_relu)
        self._count = 0
        self._conv_sites = 0
        self._relu_sites = 0

    def _pre_conv_layer(self, name):
        if self.pre_conv is None:
            return None
        index, self._conv_sites = self._conv_sites, self._conv_sites + 1
        return self.pre_conv(index, name)

    def _post_relu_layer(self, activation, name):
        if self.post_relu is None or activation != "relu":
            return None
        index, self._relu_sites = self._relu_sites, self._relu_sites + 1
        return self.post_relu(index, name)

    @staticmethod
    def _chain(before, pad, layer, after):
        """``after(layer(pad(before(x))))``, skipping the None parts."""

        def apply(x):
            for step in (before, pad, layer, after):
                if step is not None:
                    x = step(x)
            return x

        return apply

    def _common(self):
        # Wrapped so that a seed near the limit still gives valid layer seeds.
        seed = None if self.seed is None else (self.seed + self._count) % SEED_LIMIT
        self._count += 1
        return dict(
            num_submodels=self.num_submodels,
            mu=self.mu,
            seed=seed,
            per_example_sampling=self.per_example_sampling,
        )

    def _regularizer(self):
        if self.weight_decay == 0.0:
            return None
        return keras.regularizers.L2(self.weight_decay / 2.0)

    def conv_bn(self, filters, kernel_size, strides=1, activation=None, name=None):
        """Returns a callable applying an `RLSConv2DBatchNorm` to a tensor.

        Strided convolutions pad ``kernel_size // 2`` on every side, as the
        PyTorch networks of the paper do. TF's "same" padding would pad only
        bottom/right on even inputs, putting a strided 3x3 convolution one
        pixel off the 1x1 projection shortcut beside it.
        """
        strided = strides != 1 and strides != (1, 1) and kernel_size != 1
        before = self._pre_conv_layer(name)
        layer = RLSConv2DBatchNorm(
            filters, kernel_size, strides=strides,
            padding="valid" if strided else "same",
            activation=activation, kernel_regularizer=self._regularizer(),
            momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name, **self._common(),
        )
        after = self._post_relu_layer(activation, name)
        pad = None
        if strided:
            pad = keras.layers.ZeroPadding2D(
                kernel_size // 2, name=None if name is None else f"{name}_pad"
            )
        if before is None and pad is None and after is None:
            return layer
        return self._chain(before, pad, layer, after)

    def dense(self, units, activation=None, name=None):
        """Returns an `RLSDense` (a callable applying it, with a hook)."""
        layer = RLSDense(
            units, activation=activation, kernel_regularizer=self._regularizer(),
            name=name, **self._common(),
        )
        after = self._post_relu_layer(activation, name)
        return layer if after is None else self._chain(None, None, layer, after)

    def relu(self, name=None):
        """Returns a `keras.layers.ReLU` (a callable applying it, with a hook)."""
        layer = keras.layers.ReLU(name=name)
        after = self._post_relu_layer("relu", name)
        return layer if after is None else self._chain(None, None, layer, after)
