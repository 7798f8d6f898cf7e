"""Tests for `RLSDense` against `keras.layers.Dense`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from rls_tf.layers import RLSDense
from rls_tf.layers import sampling_scope
from tests.layers import conftest as h

CASES = [
    h.LayerCase(RLSDense, {"units": 4}, (5,), h.dense_reference, id="linear"),
    h.LayerCase(
        RLSDense, {"units": 3, "activation": "relu", "use_bias": False}, (5,),
        h.dense_reference, id="relu-nobias",
    ),
    # Rank-3 inputs: the matmul acts on the last axis.
    h.LayerCase(
        RLSDense, {"units": 3, "activation": "tanh"}, (2, 5), h.dense_reference,
        id="rank3",
    ),
]
CASE = CASES[0]
ids = [c.id for c in CASES]


def test_config_round_trip():
    layer = RLSDense(
        7, activation="relu", use_bias=False, kernel_initializer="he_normal",
        bias_initializer="ones", kernel_regularizer="l2", bias_regularizer="l1",
        num_submodels=3, mu=(0.2, 0.5, 0.3), seed=4, per_example_sampling=True,
        name="dense_x",
    )
    h.check_config_round_trip(layer)
    config = layer.get_config()
    assert config["units"] == 7
    assert config["num_submodels"] == 3
    assert config["mu"] == pytest.approx([0.2, 0.5, 0.3])
    assert config["seed"] == 4
    assert config["per_example_sampling"] is True


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_pinned_copy_equals_keras_dense(case):
    h.check_pinned_matches_reference(case, None)


def test_pinned_by_tensor_in_tf_function():
    h.check_pinned_traced(CASE, None)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_single_copy_is_keras_dense(case):
    h.check_single_copy_is_plain_layer(case, None)


def test_unpinned_calls_vary():
    h.check_unpinned_varies(CASE, None)


def test_seeded_calls_vary_in_tf_function():
    h.check_unpinned_varies(CASE, None, seed=3)


def test_seed_reproduces():
    h.check_seed_reproduces(CASE, None)


@pytest.mark.parametrize("use_scope", [False, True], ids=["layer-arg", "scope"])
def test_per_example_rows_use_their_copy(use_scope):
    h.check_per_example(CASE, use_scope)


def test_per_example_rank3():
    h.check_per_example(CASES[2], use_scope=False, batch=32)


def test_per_example_in_tf_function():
    h.check_per_example_traced(CASE)


def test_scope_can_disable_per_example():
    h.check_scope_disables_per_example(CASE)


def test_grouped_rows_share_a_copy():
    h.check_grouped(CASE)


def test_pinned_groups():
    layer = CASE.built(3)
    x = CASE.inputs(6)
    with sampling_scope(num_groups=3, pinned={id(layer): [2, 0, 2]}):
        y = np.asarray(layer(x))
    copies = h.recover_copies(layer, x, y)
    np.testing.assert_array_equal(copies, [2, 2, 0, 0, 2, 2])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"units": 0}, "units=0"),
        ({"units": -2}, "units=-2"),
        ({"units": 2.5}, "units=2.5"),
        ({"units": True}, "units=True"),
        ({"units": None}, "units=None"),
    ],
)
def test_bad_units(kwargs, message):
    with pytest.raises(ValueError, match="units") as info:
        RLSDense(**kwargs)
    assert message in str(info.value)


def test_copies_are_independently_initialised():
    layer = RLSDense(6, num_submodels=3)
    layer.build((None, 8))
    assert tuple(layer.kernel.shape) == (3, 8, 6)
    assert tuple(layer.bias.shape) == (3, 6)
    h.check_copies_differ(layer)
    np.testing.assert_array_equal(layer.bias.numpy(), 0.0)


def test_seeded_initializer_gives_different_copies():
    h.check_seeded_initializer(CASE)


def test_glorot_fans_of_one_copy():
    # glorot_uniform on one [256, 128] copy: std = sqrt(2 / (256 + 128)).
    layer = RLSDense(128, num_submodels=3)
    layer.build((None, 256))
    expected = np.sqrt(2.0 / (256 + 128))
    for m in range(3):
        std = layer.kernel.numpy()[m].std()
        assert abs(std - expected) < 0.1 * expected, (m, std, expected)


def test_save_load_round_trip(tmp_path):
    h.check_save_load(CASE, tmp_path)


@pytest.mark.parametrize("case", CASES[:2], ids=ids[:2])
def test_gradients_only_in_pinned_copy(case):
    names = ("kernel", "bias") if case.kwargs.get("use_bias", True) else ("kernel",)
    h.check_gradients(case, names, None)


def test_unpinned_gradient_in_exactly_one_copy():
    h.check_unpinned_gradient_in_one_copy(CASE, "kernel", None)


def test_mixed_precision(mixed_precision):
    h.check_mixed_precision_smoke(CASE)


def test_output_shape_and_symbolic_call():
    layer = RLSDense(4, num_submodels=2)
    inputs = keras.Input((2, 5))
    outputs = layer(inputs)
    assert tuple(outputs.shape) == (None, 2, 4)
    assert layer.compute_output_shape((None, 2, 5)) == (None, 2, 4)
    assert tuple(layer(tf.zeros((3, 2, 5))).shape) == (3, 2, 4)


def test_select_routing_equals_partition_routing():
    h.check_select_routing(CASE)
