"""`small_cnn`: a CPU-sized convolutional network for tests and demos."""

import keras

from rls_tf.models.backbones.specs import BackboneSpec
from rls_tf.params import Param

__all__ = ["SMALL_CNN", "small_cnn_network"]

WIDTH = Param("width", 32, int, "channels of the first two convolutions (doubled after).",
              minimum=1)


def small_cnn_network(num_submodels=2, num_classes=10, input_shape=(28, 28, 1),
                      mu=None, seed=None, per_example_sampling=False,
                      weight_decay=0.0, width=WIDTH.default, pre_conv=None, post_relu=None):
    """Four conv-BN-ReLU layers, two 2x2 max-poolings, two dense layers.

    conv(w) - pool - conv(w) - conv(2w) - pool - conv(2w) - dense(4w) - dense.

    Six RLS layers (4 conv+BN, 2 dense): M**6 sampled models. About 470k
    parameters per sub-model at ``width=32`` on 28x28 inputs.

    Args:
        num_submodels: M.
        num_classes: number of classes.
        input_shape: ``(H, W, C)``, H and W >= 8.
        mu, seed, per_example_sampling, weight_decay: see `LayerFactory`.
        width: channels of the first two convolutions (doubled after).
        pre_conv, post_relu: optional layer hooks (see `LayerFactory`),
            e.g. noise before every convolution; None inserts nothing.

    Returns:
        A functional `keras.Model` mapping images to class probabilities.
    """
    return SMALL_CNN.build(
        num_submodels=num_submodels, num_classes=num_classes, input_shape=input_shape, mu=mu,
        seed=seed, per_example_sampling=per_example_sampling, weight_decay=weight_decay,
        pre_conv=pre_conv, post_relu=post_relu, width=width)


def _small_cnn(make, input_shape, num_classes, width):
    inputs = keras.Input(input_shape, name="images")
    # Pooling right after the first convolution keeps the full-resolution
    # work to one thin layer: about 7.4M multiply-adds per 28x28 image.
    x = make.conv_bn(width, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = make.conv_bn(width, 3, activation="relu", name="conv2")(x)
    x = make.conv_bn(2 * width, 3, activation="relu", name="conv3")(x)
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = make.conv_bn(2 * width, 3, activation="relu", name="conv4")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = make.dense(4 * width, activation="relu", name="fc1")(x)
    outputs = make.dense(num_classes, activation="softmax", name="fc2")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


SMALL_CNN = BackboneSpec("small_cnn", "small CNN for tests and demos", _small_cnn, params=(WIDTH,),
                         source="this library")
