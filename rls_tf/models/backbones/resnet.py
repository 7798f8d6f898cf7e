"""ResNet-20 (CIFAR) and ResNet-50 (bottleneck, CIFAR stem) of RLS layers.

Every convolution is an `RLSConv2DBatchNorm` (one sampled index for the conv
and its batch normalization) and the classifier is an `RLSDense`; the
residual additions and the ReLUs after them are weightless Keras layers, so
a sampled model is one choice of copy per conv+BN pair and for the dense.
"""

import keras

from rls_tf.models.backbones.specs import BackboneSpec

__all__ = ["RESNET20", "RESNET50", "resnet20_network", "resnet50_network"]

# Output channels of a bottleneck block per unit of its width (He et al.).
BOTTLENECK_EXPANSION = 4


def _residual_block(make, x, filters, strides, bottleneck, name):
    """One basic or bottleneck residual block: ``relu(F(x) + shortcut(x))``.

    Basic block: 3x3 conv(`filters`, `strides`) + BN + ReLU, 3x3 conv +
    BN. Bottleneck block: 1x1 conv(`filters`) + BN + ReLU, 3x3
    conv(`filters`, `strides`) + BN + ReLU, 1x1 conv(4 * `filters`) + BN.
    The bottleneck strides in its 3x3 conv (torchvision's "ResNet v1.5" and
    the usual CIFAR ResNet-50), not in the first 1x1: a strided 1x1 conv would
    skip three quarters of its inputs.

    The shortcut is the identity when the shape is kept, else a 1x1
    conv(`strides`) + BN projection (option B of He et al.). The projection
    is an RLS layer like any other, so it is sampled as well.

    Args:
        make: the network's `LayerFactory`.
        x: the block's input tensor ``[B, H, W, C]``.
        filters: block width (output channels of a basic block, of the inner
            convolutions of a bottleneck block).
        strides: spatial stride of the block (1 or 2).
        bottleneck: bottleneck (True) or basic (False) block.
        name: prefix of the block's layer names, e.g. ``stage2_block1``.

    Returns:
        The block's output tensor.
    """
    if bottleneck:
        out_filters = BOTTLENECK_EXPANSION * filters
        convs = [(filters, 1, 1), (filters, 3, strides), (out_filters, 1, 1)]
    else:
        out_filters = filters
        convs = [(filters, 3, strides), (filters, 3, 1)]
    shortcut = x
    if strides != 1 or x.shape[-1] != out_filters:
        shortcut = make.conv_bn(out_filters, 1, strides=strides,
                                name=f"{name}_shortcut")(x)
    for i, (conv_filters, kernel_size, conv_strides) in enumerate(convs, 1):
        # The last BN output is not activated: ReLU comes after the addition.
        activation = "relu" if i < len(convs) else None
        x = make.conv_bn(conv_filters, kernel_size, strides=conv_strides,
                         activation=activation, name=f"{name}_conv{i}")(x)
    x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
    return make.relu(name=f"{name}_out")(x)


def _resnet(make, input_shape, num_classes, stage_blocks, stage_widths,
            stage_strides, bottleneck, stem_filters, name):
    """CIFAR-style ResNet: 3x3 stem, residual stages, global pooling, dense.

    The stem is one stride-1 3x3 conv + BN + ReLU without max-pooling (the
    ImageNet 7x7/2 stem and pool would shrink a 32x32 image to 8x8 before the
    first block). Stage i has ``stage_blocks[i]`` blocks of width
    ``stage_widths[i]``; its first block strides by ``stage_strides[i]``.
    """
    inputs = keras.Input(input_shape, name="images")
    x = make.conv_bn(stem_filters, 3, activation="relu", name="stem_conv")(inputs)
    for stage, (blocks, width, strides) in enumerate(
            zip(stage_blocks, stage_widths, stage_strides), 1):
        for block in range(1, blocks + 1):
            x = _residual_block(
                make, x, width, strides if block == 1 else 1, bottleneck,
                name=f"stage{stage}_block{block}",
            )
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = make.dense(num_classes, activation="softmax", name="fc")(x)
    return keras.Model(inputs, outputs, name=name)


def resnet20_network(num_submodels=2, num_classes=10, input_shape=(32, 32, 3),
                     mu=None, seed=None, per_example_sampling=False,
                     weight_decay=0.0, pre_conv=None, post_relu=None):
    """ResNet-20 for CIFAR (He et al. 2016, section 4.2, n=3).

    3x3 conv(16) + BN + ReLU, then three stages of 3 basic blocks with
    16/32/64 filters and strides 1/2/2, global average pooling and a dense
    softmax. Where a block changes the shape (first block of stages 2 and 3)
    the shortcut is a 1x1 conv + BN projection, i.e. option B of He et al.,
    not the parameter-free zero-padding option A of their CIFAR experiments:
    a projection is an ordinary weighted layer that RLS can sample, and it
    costs only ~3k parameters.

    22 RLS layers: 19 conv+BN (stem + 18 in the blocks), 2 projection
    conv+BN and 1 dense, so M**22 sampled models. With M=1 on 32x32x3 and 10
    classes: 274,042 parameters, 272,474 trainable (the paper's 0.27M) and
    1,568 batch-norm moving statistics; every count scales by M.

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

    >>> network = resnet20_network(num_submodels=2, num_classes=10,
    ...                            input_shape=(32, 32, 3))
    >>> network.output_shape
    (None, 10)
    """
    return RESNET20.build(
        num_submodels=num_submodels, num_classes=num_classes, input_shape=input_shape, mu=mu,
        seed=seed, per_example_sampling=per_example_sampling, weight_decay=weight_decay,
        pre_conv=pre_conv, post_relu=post_relu)


def _resnet20(make, input_shape, num_classes):
    return _resnet(
        make, input_shape, num_classes, stage_blocks=(3, 3, 3),
        stage_widths=(16, 32, 64), stage_strides=(1, 2, 2), bottleneck=False,
        stem_filters=16, name="resnet20",
    )


def resnet50_network(num_submodels=2, num_classes=10, input_shape=(32, 32, 3),
                     mu=None, seed=None, per_example_sampling=False,
                     weight_decay=0.0, pre_conv=None, post_relu=None):
    """Bottleneck ResNet-50 with a CIFAR stem.

    3x3 stride-1 conv(64) + BN + ReLU (no 7x7/2 conv, no max-pooling, so
    32x32x3 and 28x28x1 inputs keep a useful resolution), then [3, 4, 6, 3]
    bottleneck blocks of widths 64/128/256/512 (expansion 4, so 2048
    features), stage strides 1/2/2/2 (in the 3x3 conv of each stage's first
    block), 1x1 conv + BN projection shortcuts where the shape changes (the
    first block of every stage), global average pooling and a dense softmax.

    54 RLS layers: 49 conv+BN (stem + 16 blocks x 3), 4 projection conv+BN
    and 1 dense. With M=1 on 32x32x3 and 10 classes: 23,520,842 trainable
    parameters (the common CIFAR ResNet-50 count, ImageNet ResNet-50 without
    its 1000-way classifier) plus 53,120 batch-norm moving statistics; every
    count scales by M.

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

    >>> network = resnet50_network(num_submodels=1, num_classes=10,
    ...                            input_shape=(28, 28, 1))
    >>> network.output_shape
    (None, 10)
    """
    return RESNET50.build(
        num_submodels=num_submodels, num_classes=num_classes, input_shape=input_shape, mu=mu,
        seed=seed, per_example_sampling=per_example_sampling, weight_decay=weight_decay,
        pre_conv=pre_conv, post_relu=post_relu)


def _resnet50(make, input_shape, num_classes):
    return _resnet(
        make, input_shape, num_classes, stage_blocks=(3, 4, 6, 3),
        stage_widths=(64, 128, 256, 512), stage_strides=(1, 2, 2, 2),
        bottleneck=True, stem_filters=64, name="resnet50",
    )


RESNET20 = BackboneSpec("resnet20", "ResNet-20", _resnet20,
                        source="He et al. 2016, the CIFAR ResNet (option B shortcuts)")
RESNET50 = BackboneSpec("resnet50", "ResNet-50", _resnet50,
                        source="He et al. 2016, bottleneck ResNet-50 with a CIFAR stem")
