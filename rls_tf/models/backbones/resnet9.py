"""`resnet9`: David Page's fast CIFAR-10 ResNet-9, made of RLS layers.

The network of Page's DAWNBench entry ("How to train your ResNet", myrtle.ai
2018; the recipe behind airbench and hlb-CIFAR10): four conv+BN+ReLU stages
with max-pooling and two residual pairs, then global max-pooling and a
scaled linear classifier. At ``width=64`` it is Page's network (94% on the
full CIFAR-10 in 24 epochs); the ``width`` option scales every stage so that
it trains on two CPU cores in minutes (see ``docs/results/cifar10_recipe``
for the measured width/epochs trade-off on the 10,000-image file).
"""

import keras

from rls_tf.models.backbones.specs import BackboneSpec
from rls_tf.params import Param

__all__ = ["RESNET9", "resnet9_network"]

WIDTH = Param("width", 64, int, "channels of the prep convolution (stages: w, 2w, 4w, 8w; "
              "64 is Page's network).", minimum=1)
LOGIT_SCALE = Param("logit_scale", 0.125, float,
                    "fixed multiplier of the logits before the softmax.", title="logit scale",
                    minimum=0.0, min_open=True)


def _residual(make, x, filters, name):
    """``x + relu(bn(conv(relu(bn(conv(x))))))``: Page's residual pair."""
    y = make.conv_bn(filters, 3, activation="relu", name=f"{name}_conv1")(x)
    y = make.conv_bn(filters, 3, activation="relu", name=f"{name}_conv2")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


def _pool(x, name):
    # A 2x2 "valid" pooling of a side of 1 would give an empty map (28x28
    # inputs reach 3x3 before the last pooling).
    if min(x.shape[1], x.shape[2]) >= 2:
        x = keras.layers.MaxPooling2D(2, name=name)(x)
    return x


def resnet9_network(num_submodels=2, num_classes=10, input_shape=(32, 32, 3),
                    mu=None, seed=None, per_example_sampling=False,
                    weight_decay=0.0, width=WIDTH.default, logit_scale=LOGIT_SCALE.default,
                    pre_conv=None, post_relu=None):
    """ResNet-9 of Page (DAWNBench 2018), every weighted layer an RLS layer.

    prep conv(w) - conv(2w) - pool - residual(2w, 2w) - conv(4w) - pool -
    conv(8w) - pool - residual(8w, 8w) - global max-pool - dense -
    ``* logit_scale`` - softmax. Every conv is a 3x3 `RLSConv2DBatchNorm`
    with ReLU; the residual pairs add their input to their output (no
    projection: the shape is kept). Page scales the logits by 0.125 so that
    the initial softmax is nearly uniform; the scale is a fixed multiplier,
    not a weight.

    9 RLS layers (8 conv+BN, 1 dense): M**9 sampled models. With M=1 on
    32x32x3 and 10 classes: 6,573,130 trainable parameters at ``width=64``
    (Page's network), 412,906 at ``width=16``; multiply-adds per image about
    ``0.11 * width**2`` million (455M at 64, 28M at 16).

    Args:
        num_submodels: M, copies of every weighted layer.
        num_classes: number of classes.
        input_shape: ``(H, W, C)``, H and W >= 8.
        mu, seed, per_example_sampling, weight_decay: see `LayerFactory`.
        width: channels of the prep convolution (stages: w, 2w, 4w, 8w).
        logit_scale: fixed multiplier of the logits before the softmax.
        pre_conv, post_relu: optional layer hooks (see `LayerFactory`),
            e.g. noise before every convolution; None inserts nothing.

    Returns:
        A functional `keras.Model` mapping images to class probabilities.

    Raises:
        ValueError: bad `width`, `logit_scale`, `num_classes`, `input_shape`
            or sampling argument.

    Example:

    >>> network = resnet9_network(num_submodels=2, width=8)
    >>> network.output_shape
    (None, 10)
    >>> tuple(network.get_layer("prep").kernel.shape)  # [M, 3, 3, 3, width]
    (2, 3, 3, 3, 8)
    """
    return RESNET9.build(
        num_submodels=num_submodels, num_classes=num_classes, input_shape=input_shape, mu=mu,
        seed=seed, per_example_sampling=per_example_sampling, weight_decay=weight_decay,
        pre_conv=pre_conv, post_relu=post_relu, width=width, logit_scale=logit_scale)


def _resnet9(make, input_shape, num_classes, width, logit_scale):
    inputs = keras.Input(input_shape, name="images")
    x = make.conv_bn(width, 3, activation="relu", name="prep")(inputs)
    x = make.conv_bn(2 * width, 3, activation="relu", name="layer1_conv")(x)
    x = _pool(x, "layer1_pool")
    x = _residual(make, x, 2 * width, "layer1_res")
    x = make.conv_bn(4 * width, 3, activation="relu", name="layer2_conv")(x)
    x = _pool(x, "layer2_pool")
    x = make.conv_bn(8 * width, 3, activation="relu", name="layer3_conv")(x)
    x = _pool(x, "layer3_pool")
    x = _residual(make, x, 8 * width, "layer3_res")
    x = keras.layers.GlobalMaxPooling2D(name="gmp")(x)
    x = make.dense(num_classes, name="fc")(x)
    x = keras.layers.Rescaling(logit_scale, name="logit_scale")(x)
    outputs = keras.layers.Softmax(name="probabilities")(x)
    return keras.Model(inputs, outputs, name="resnet9")


RESNET9 = BackboneSpec("resnet9", "ResNet-9", _resnet9, params=(WIDTH, LOGIT_SCALE),
                       source="Page 2018, DAWNBench (\"How to train your ResNet\")")
