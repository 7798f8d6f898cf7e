"""Tests for `RLSConv2D` against `keras.layers.Conv2D`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from rls_tf.layers import RLSConv2D
from rls_tf.layers import sampling_scope
from tests.layers import conftest as h

CASES = [
    h.LayerCase(RLSConv2D, {"filters": 4, "kernel_size": 3}, (7, 7, 3),
                h.conv_reference, id="valid"),
    h.LayerCase(
        RLSConv2D,
        {"filters": 4, "kernel_size": (3, 2), "strides": 2, "padding": "same",
         "activation": "relu"},
        (7, 7, 3), h.conv_reference, id="stride2-same-relu",
    ),
    h.LayerCase(
        RLSConv2D,
        {"filters": 3, "kernel_size": 2, "strides": (2, 1), "padding": "valid",
         "use_bias": False},
        (7, 6, 2), h.conv_reference, id="stride2-valid-nobias",
    ),
    h.LayerCase(
        RLSConv2D,
        {"filters": 2, "kernel_size": 3, "dilation_rate": 2, "padding": "same"},
        (7, 7, 3), h.conv_reference, id="dilated-same",
    ),
    h.LayerCase(
        RLSConv2D,
        {"filters": 2, "kernel_size": 3, "dilation_rate": (2, 1)},
        (8, 7, 3), h.conv_reference, id="dilated-valid",
    ),
]
CASE = CASES[0]
ids = [c.id for c in CASES]


def test_config_round_trip():
    layer = RLSConv2D(
        5, (3, 1), strides=(2, 1), padding="same", dilation_rate=1,
        activation="relu", use_bias=False, kernel_initializer="he_normal",
        bias_initializer="ones", kernel_regularizer="l2", bias_regularizer="l1",
        num_submodels=3, mu=(0.2, 0.5, 0.3), seed=4, per_example_sampling=True,
        name="conv_x",
    )
    h.check_config_round_trip(layer)
    config = layer.get_config()
    assert tuple(config["kernel_size"]) == (3, 1)
    assert tuple(config["strides"]) == (2, 1)
    assert config["padding"] == "same"
    assert config["seed"] == 4


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_pinned_copy_equals_keras_conv2d(case):
    h.check_pinned_matches_reference(case, None)


def test_pinned_by_tensor_in_tf_function():
    h.check_pinned_traced(CASES[1], None)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_single_copy_is_keras_conv2d(case):
    h.check_single_copy_is_plain_layer(case, None)


def test_unpinned_calls_vary():
    h.check_unpinned_varies(CASE, None)


def test_seed_reproduces():
    h.check_seed_reproduces(CASE, None)


@pytest.mark.parametrize("use_scope", [False, True], ids=["layer-arg", "scope"])
def test_per_example_rows_use_their_copy(use_scope):
    h.check_per_example(CASES[1], use_scope)


def test_per_example_in_tf_function():
    h.check_per_example_traced(CASE)


def test_grouped_rows_share_a_copy():
    h.check_grouped(CASES[1])


def test_grouped_routing_with_unknown_spatial_size():
    """A fully convolutional use: height and width unknown at trace time.

    Routing several groups must not need static spatial sizes (plain Conv2D
    does not).
    """
    layer = RLSConv2D(4, 3, padding="same", num_submodels=3)
    layer.build((None, None, None, 3))
    h.randomize_weights(layer)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3])])
    def run(x):
        with sampling_scope(num_groups=2, pinned={id(layer): [2, 0]}):
            return layer(x)

    x = np.random.default_rng(0).normal(size=(4, 6, 5, 3)).astype("float32")
    y = np.asarray(run(tf.constant(x)))
    np.testing.assert_allclose(y[:2], h.conv_reference(layer, 2)(x[:2]),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y[2:], h.conv_reference(layer, 0)(x[2:]),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, argument, value",
    [
        ({"filters": 0}, "filters", "0"),
        ({"filters": -1}, "filters", "-1"),
        ({"filters": 2.0}, "filters", "2.0"),
        ({"kernel_size": 0}, "kernel_size", "0"),
        ({"kernel_size": (3, 0)}, "kernel_size", "0"),
        ({"kernel_size": (3, 3, 3)}, "kernel_size", "(3, 3, 3)"),
        ({"strides": 0}, "strides", "0"),
        ({"dilation_rate": -1}, "dilation_rate", "-1"),
        ({"padding": "full"}, "padding", "'full'"),
        ({"padding": "causal"}, "padding", "'causal'"),
    ],
)
def test_bad_arguments(kwargs, argument, value):
    args = {"filters": 2, "kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=argument) as info:
        RLSConv2D(**args)
    message = str(info.value)
    assert f"{argument}=" in message
    assert value in message.split(f"{argument}=", 1)[1]


def test_padding_is_case_insensitive():
    assert RLSConv2D(2, 3, padding="SAME").padding == "same"


def test_copies_are_independently_initialised():
    layer = RLSConv2D(4, 3, num_submodels=3)
    layer.build((None, 8, 8, 2))
    assert tuple(layer.kernel.shape) == (3, 3, 3, 2, 4)
    assert tuple(layer.bias.shape) == (3, 4)
    h.check_copies_differ(layer)


def test_seeded_initializer_gives_different_copies():
    h.check_seeded_initializer(CASE)


def test_he_normal_fans_of_one_copy():
    # he_normal on one [3, 3, 64, 64] copy: std = sqrt(2 / (3 * 3 * 64)).
    layer = RLSConv2D(64, 3, kernel_initializer="he_normal", num_submodels=3)
    layer.build((None, 8, 8, 64))
    kernel = layer.kernel.numpy()
    assert kernel.shape == (3, 3, 3, 64, 64)
    expected = np.sqrt(2.0 / 576)
    for m in range(3):
        std = kernel[m].std()
        assert abs(std - expected) < 0.1 * expected, (m, std, expected)
    h.check_copies_differ(layer)


def test_save_load_round_trip(tmp_path):
    h.check_save_load(CASES[1], tmp_path)


@pytest.mark.parametrize("case", [CASES[0], CASES[1]], ids=ids[:2])
def test_gradients_only_in_pinned_copy(case):
    h.check_gradients(case, ("kernel", "bias"), None)


def test_unpinned_gradient_in_exactly_one_copy():
    h.check_unpinned_gradient_in_one_copy(CASE, "kernel", None)


def test_mixed_precision(mixed_precision):
    h.check_mixed_precision_smoke(CASES[1])


def test_output_shape():
    layer = RLSConv2D(4, 3, strides=2, padding="valid", num_submodels=2)
    assert layer.compute_output_shape((None, 9, 8, 3)) == (None, 4, 3, 4)
    outputs = layer(keras.Input((9, 8, 3)))
    assert tuple(outputs.shape) == (None, 4, 3, 4)


def test_select_routing_equals_partition_routing():
    h.check_select_routing(CASES[1])
