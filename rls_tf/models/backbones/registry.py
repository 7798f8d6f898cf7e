"""The backbone registry: name -> `BackboneSpec`, every network ``--backbone`` builds.

Each entry (`rls_tf.models.backbones.specs.BackboneSpec`) carries its body,
title, smallest input and its options as `rls_tf.params.Param` objects
(e.g. ``width``). `BACKBONES`, ``train.py --backbone`` / ``--backbone_width``
(help and validation), `rls_tf.training.TrainConfig` and every defense of
the defense registry read it, so adding a backbone is one `register_backbone`
call (here for the library's own).

| name | what | options |
|---|---|---|
| ``small_cnn`` | 4 conv + 2 dense, for tests and demos | ``width`` |
| ``resnet9`` | Page's fast CIFAR-10 ResNet-9 | ``width``, ``logit_scale`` |
| ``resnet20`` | He et al.'s CIFAR ResNet-20 | - |
| ``resnet50`` | bottleneck ResNet-50, CIFAR stem | - |
| ``vgg16`` | VGG-16-BN, CIFAR classifier | - |
"""

from rls_tf.models.backbones.resnet import RESNET20
from rls_tf.models.backbones.resnet import RESNET50
from rls_tf.models.backbones.resnet9 import RESNET9
from rls_tf.models.backbones.small_cnn import SMALL_CNN
from rls_tf.models.backbones.specs import BackboneSpec
from rls_tf.models.backbones.vgg import VGG16
from rls_tf.params import Names

__all__ = ["BACKBONES", "BACKBONE_SPECS", "BackboneSpec", "backbones_with_option",
           "build_network", "check_backbone_options", "get_backbone_spec", "register_backbone",
           "unregister_backbone"]

# Name -> BackboneSpec, in registration order.
BACKBONE_SPECS = {}
# The registered names, always current (`rls_tf.params.Names`).
BACKBONES = Names(BACKBONE_SPECS)


def register_backbone(spec):
    """Adds `spec` (a `BackboneSpec`) to the registry; returns it.

    Raises:
        ValueError: `spec` is not a `BackboneSpec`, or its name is taken.
    """
    if not isinstance(spec, BackboneSpec):
        raise ValueError(f"`spec` must be a BackboneSpec. Received: spec={spec!r}")
    if spec.name in BACKBONE_SPECS:
        raise ValueError(f"A backbone of that name is registered. Received: name={spec.name!r}")
    BACKBONE_SPECS[spec.name] = spec
    return spec


def unregister_backbone(name):
    """Removes backbone `name` from the registry (e.g. one a test registered)."""
    get_backbone_spec(name)
    del BACKBONE_SPECS[name]


def get_backbone_spec(name):
    """The `BackboneSpec` of `name`; a ValueError listing the registered names otherwise."""
    if not isinstance(name, str) or name not in BACKBONE_SPECS:
        raise ValueError(
            f"Unknown backbone: Received: backbone={name!r}. "
            f"Expected one of {BACKBONES}."
        )
    return BACKBONE_SPECS[name]


def backbones_with_option(key):
    """Name -> `Param` of the backbones that take option `key` (e.g. ``"width"``)."""
    return {name: spec.param(key) for name, spec in BACKBONE_SPECS.items()
            if spec.param(key) is not None}


def check_backbone_options(name, options):
    """Raises a ValueError unless backbone `name` takes every key of `options` with its value."""
    get_backbone_spec(name).check_options(options)


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
        **options: that backbone's options (its entry's `params`, e.g.
            ``width`` of ``small_cnn``).

    Returns:
        A `keras.Model` mapping images in [-1, 1] to class probabilities.

    Raises:
        ValueError: unknown name or bad argument (an option the backbone
            does not take included).
    """
    return get_backbone_spec(name).build(
        num_submodels=num_submodels, num_classes=num_classes,
        input_shape=input_shape, mu=mu, seed=seed,
        per_example_sampling=per_example_sampling, weight_decay=weight_decay,
        pre_conv=pre_conv, post_relu=post_relu, **options,
    )


for _spec in (SMALL_CNN, RESNET9, RESNET20, RESNET50, VGG16):
    register_backbone(_spec)
del _spec
