"""VGG-16 with batch normalization, made of RLS layers."""

import keras

from rls_tf.models.backbones.specs import BackboneSpec

__all__ = ["VGG16", "vgg16_network"]

# Configuration D of Simonyan & Zisserman: conv widths per block, each block
# followed by a 2x2 max-pooling.
VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512),
                (512, 512, 512))
CLASSIFIER_UNITS = (512, 512)


def vgg16_network(num_submodels=2, num_classes=10, input_shape=(32, 32, 3),
                  mu=None, seed=None, per_example_sampling=False,
                  weight_decay=0.0, pre_conv=None, post_relu=None):
    """VGG-16-BN (configuration D) with a CIFAR-style classifier.

    Five blocks of 3x3 conv + BN + ReLU (64,64 | 128,128 | 256x3 | 512x3 |
    512x3), each followed by a 2x2 max-pooling, global average pooling, then
    dense 512 + ReLU, dense 512 + ReLU, dense softmax.

    Small inputs: a pooling is only applied while both spatial sides are >=
    2, so that no feature map shrinks to zero size. 32x32 is pooled five
    times (32->16->8->4->2->1); 28x28 (MNIST) four times (28->14->7->3->1),
    the fifth pooling is skipped. The global average pooling then keeps the
    classifier at 512 inputs whatever the input size (at 1x1 it equals a
    flatten).

    The classifier has no dropout (the original VGG's has): dropout would be
    a second source of randomness on top of RLS, so a sampled model would no
    longer be a fixed function of its path and the ensemble's stochasticity
    would not come from layer sampling alone. Apart from RLS the network is
    deterministic.

    16 RLS layers: 13 conv+BN and 3 dense. With M=1 on 32x32x3 and 10
    classes: 15,249,354 trainable parameters plus 8,448 batch-norm moving
    statistics; every count scales by M.

    Args:
        num_submodels: M, copies of every weighted layer.
        num_classes: number of classes.
        input_shape: ``(H, W, C)``, H and W >= 8 (e.g. 32x32x3 or 28x28x1).
        mu, seed, per_example_sampling, weight_decay: see `LayerFactory`.
        pre_conv, post_relu: optional layer hooks (see `LayerFactory`),
            e.g. noise before every convolution; None inserts nothing.

    Returns:
        A functional `keras.Model` mapping images to class probabilities.

    Raises:
        ValueError: bad `num_classes`, `input_shape` or sampling argument.

    Example:

    >>> network = vgg16_network(num_submodels=2, num_classes=10,
    ...                         input_shape=(28, 28, 1))
    >>> [l.name for l in network.layers if l.name.endswith("_pool")]
    ['block1_pool', 'block2_pool', 'block3_pool', 'block4_pool']
    """
    return VGG16.build(
        num_submodels=num_submodels, num_classes=num_classes, input_shape=input_shape, mu=mu,
        seed=seed, per_example_sampling=per_example_sampling, weight_decay=weight_decay,
        pre_conv=pre_conv, post_relu=post_relu)


def _vgg16(make, input_shape, num_classes):
    inputs = keras.Input(input_shape, name="images")
    x = inputs
    for block, widths in enumerate(VGG16_BLOCKS, 1):
        for i, filters in enumerate(widths, 1):
            x = make.conv_bn(filters, 3, activation="relu",
                             name=f"block{block}_conv{i}")(x)
        # A 2x2 "valid" pooling of a side of 1 would give an empty map.
        if min(x.shape[1], x.shape[2]) >= 2:
            x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    for i, units in enumerate(CLASSIFIER_UNITS, 1):
        x = make.dense(units, activation="relu", name=f"fc{i}")(x)
    outputs = make.dense(num_classes, activation="softmax",
                         name=f"fc{len(CLASSIFIER_UNITS) + 1}")(x)
    return keras.Model(inputs, outputs, name="vgg16")


VGG16 = BackboneSpec("vgg16", "VGG-16-BN", _vgg16,
                     source="Simonyan & Zisserman 2015, configuration D, with batch norm")
