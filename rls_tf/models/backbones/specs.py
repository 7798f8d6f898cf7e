"""What a registered backbone declares: `BackboneSpec` (its body, options, title, smallest input).

A backbone's options (e.g. ``width``) are `rls_tf.params.Param` objects in
its entry: default, validation, help and title in one place. The entry
builds the network: it checks the options, runs the prologue every backbone
shares (`rls_tf.models.backbones.common.start_network`) and calls its body
with the `LayerFactory`, so a body only builds layers.

Example:

>>> import keras
>>> from rls_tf.params import Param
>>> def body(make, input_shape, num_classes, width):
...     inputs = keras.Input(input_shape)
...     x = make.conv_bn(width, 3, activation="relu", name="conv")(inputs)
...     x = keras.layers.GlobalAveragePooling2D()(x)
...     return keras.Model(inputs, make.dense(num_classes, activation="softmax")(x))
>>> spec = BackboneSpec("tiny", "Tiny", body,
...                     params=(Param("width", 4, int, "channels.", minimum=1),))
>>> spec.build(num_submodels=2, input_shape=(8, 8, 1), width=2).output_shape
(None, 10)
"""

import dataclasses
from typing import Callable, Tuple

from rls_tf.models.backbones.common import start_network
from rls_tf.params import Param

__all__ = ["BackboneSpec"]


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: everything `build_network`, training and the CLI need.

    Attributes:
        name: registry / ``--backbone`` name.
        title: printed in tables and help, e.g. ``"ResNet-9 (Page 2018)"``.
        body: ``body(make, input_shape, num_classes, **options) -> keras.Model``
            mapping images in [-1, 1] to class probabilities; `make` is the
            network's `LayerFactory` (its RLS layers, seeds and hooks),
            `input_shape` and `num_classes` are checked, `options` holds
            every `params` key (the default where unset).
        params: its options (`rls_tf.params.Param`, keyed by the body's
            keyword), e.g. ``width``; ``train.py --backbone_width`` fills a
            ``width`` parameter.
        min_input_size: smallest height and width of an input.
        source: where the network comes from (paper).
    """

    name: str
    title: str
    body: Callable
    params: Tuple[Param, ...] = ()
    min_input_size: int = 8
    source: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"`name` must be an identifier. Received: name={self.name!r}")
        if not callable(self.body):
            raise ValueError(f"`body` must be callable. Received: body={self.body!r}")
        object.__setattr__(self, "params", tuple(self.params))
        for param in self.params:
            if not isinstance(param, Param):
                raise ValueError(f"`params` must be Param objects. Received: {param!r}")
        if isinstance(self.min_input_size, bool) or not isinstance(self.min_input_size, int) \
                or self.min_input_size < 1:
            raise ValueError("`min_input_size` must be an int >= 1. "
                             f"Received: min_input_size={self.min_input_size!r}")

    @property
    def param_keys(self):
        return tuple(p.key for p in self.params)

    def param(self, key):
        """The `Param` called `key`, or None."""
        return next((p for p in self.params if p.key == key), None)

    def check_options(self, options):
        """Returns every option, checked, the defaults filled in.

        Raises:
            ValueError: an option it does not take, or a bad value.
        """
        unknown = sorted(set(options) - set(self.param_keys))
        if unknown:
            raise ValueError(
                f"Unknown options of backbone {self.name!r}. Received: {unknown}. "
                f"Accepted: {sorted(self.param_keys)}."
            )
        return {p.key: p.check(options.get(p.key, p.default)) for p in self.params}

    def build(self, num_submodels=2, num_classes=10, input_shape=(32, 32, 3), mu=None,
              seed=None, per_example_sampling=False, weight_decay=0.0, pre_conv=None,
              post_relu=None, **options):
        """Builds the network (see `rls_tf.models.backbones.build_network`)."""
        options = self.check_options(options)
        make, input_shape, num_classes = start_network(
            num_submodels, num_classes, input_shape, mu=mu, seed=seed,
            per_example_sampling=per_example_sampling, weight_decay=weight_decay,
            pre_conv=pre_conv, post_relu=post_relu, min_input_size=self.min_input_size)
        return self.body(make, input_shape, num_classes, **options)
