"""Name -> network builder."""

import inspect

from rls_tf.models.backbones.resnet import resnet20_network
from rls_tf.models.backbones.resnet import resnet50_network
from rls_tf.models.backbones.resnet9 import resnet9_network
from rls_tf.models.backbones.small_cnn import small_cnn_network
from rls_tf.models.backbones.vgg import vgg16_network

__all__ = ["BACKBONES", "build_network", "check_backbone_options"]

_BUILDERS = {
    "small_cnn": small_cnn_network,
    "resnet9": resnet9_network,
    "resnet20": resnet20_network,
    "resnet50": resnet50_network,
    "vgg16": vgg16_network,
}

BACKBONES = tuple(_BUILDERS)


def check_backbone_options(name, options):
    """Raises a ValueError unless backbone `name` takes every key of `options`."""
    if name not in _BUILDERS:
        raise ValueError(
            f"Unknown backbone: Received: backbone={name!r}. "
            f"Expected one of {BACKBONES}."
        )
    accepted = set(inspect.signature(_BUILDERS[name]).parameters)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(
            f"Unknown options of backbone {name!r}. Received: {unknown}. "
            f"Accepted: {sorted(accepted)}."
        )


def build_network(name, num_submodels=2, num_classes=10, input_shape=(32, 32, 3),
                  mu=None, seed=None, per_example_sampling=False,
                  weight_decay=0.0, pre_conv=None, post_relu=None, **options):
    """Builds the functional RLS network called `name`.

    Args:
        name: one of `BACKBONES`.
        num_submodels: M, copies of every weighted layer.
        num_classes: number of output classes.
        input_shape: ``(H, W, C)``.
        mu: sampling probabilities of the M copies (None: uniform).
        seed: None (unpredictable paths) or an int (reproducible paths).
        per_example_sampling: every example draws its own path.
        weight_decay: SGD-style L2 weight decay on kernels (paper: 5e-4).
        pre_conv: optional hook ``(index, name) -> layer or None``, its layer
            inserted before every convolution (see `LayerFactory`).
        post_relu: optional hook ``(index, name) -> layer or None``, its
            layer inserted after every ReLU (see `LayerFactory`).
        **options: further keyword arguments of that backbone's builder
            (e.g. ``width`` of ``small_cnn``).

    Returns:
        A `keras.Model` mapping images in [-1, 1] to class probabilities.

    Raises:
        ValueError: unknown name or bad argument (an option the backbone's
            builder does not take included).
    """
    check_backbone_options(name, options)
    return _BUILDERS[name](
        num_submodels=num_submodels, num_classes=num_classes,
        input_shape=input_shape, mu=mu, seed=seed,
        per_example_sampling=per_example_sampling, weight_decay=weight_decay,
        pre_conv=pre_conv, post_relu=post_relu, **options,
    )
