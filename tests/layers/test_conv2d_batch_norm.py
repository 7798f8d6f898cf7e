"""Tests for `RLSConv2DBatchNorm` against Conv2D -> BatchNormalization."""

import numpy as np
import pytest

from rls_tf.layers import RLSConv2DBatchNorm
from tests.layers import conftest as h

CASES = [
    h.LayerCase(
        RLSConv2DBatchNorm, {"filters": 4, "kernel_size": 3, "momentum": 0.9},
        (6, 6, 3), h.ConvBNReference, has_training=True, id="valid",
    ),
    h.LayerCase(
        RLSConv2DBatchNorm,
        {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same",
         "activation": "relu", "use_bias": True, "momentum": 0.5},
        (7, 7, 2), h.ConvBNReference, has_training=True, id="stride2-same-relu",
    ),
    h.LayerCase(
        RLSConv2DBatchNorm,
        {"filters": 3, "kernel_size": 2, "dilation_rate": 2, "center": False,
         "epsilon": 1e-2},
        (6, 6, 2), h.ConvBNReference, has_training=True, id="dilated-nocenter",
    ),
]
CASE = CASES[0]
ids = [c.id for c in CASES]


def test_config_round_trip():
    layer = RLSConv2DBatchNorm(
        5, (3, 1), strides=(2, 1), padding="same", dilation_rate=1,
        activation="relu", use_bias=True, kernel_initializer="glorot_uniform",
        kernel_regularizer="l2", momentum=0.8, epsilon=1e-4, center=False,
        scale=False, gamma_regularizer="l2", beta_regularizer="l1",
        num_submodels=3, mu=(0.2, 0.5, 0.3), seed=4, per_example_sampling=True,
        name="convbn_x",
    )
    h.check_config_round_trip(layer)
    config = layer.get_config()
    assert config["momentum"] == pytest.approx(0.8)
    assert config["use_bias"] is True
    assert tuple(config["kernel_size"]) == (3, 1)


@pytest.mark.parametrize("training", [False, True], ids=["infer", "train"])
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_pinned_copy_equals_conv_then_bn(case, training):
    h.check_pinned_matches_reference(case, training)


@pytest.mark.parametrize("training", [False, True], ids=["infer", "train"])
def test_pinned_by_tensor_in_tf_function(training):
    h.check_pinned_traced(CASES[1], training)


@pytest.mark.parametrize("training", [False, True], ids=["infer", "train"])
@pytest.mark.parametrize("case", CASES[:2], ids=ids[:2])
def test_single_copy_is_conv_then_bn(case, training):
    h.check_single_copy_is_plain_layer(case, training)


def test_conv_and_bn_share_one_index():
    """The BN copy used is the conv copy used: for every sampled call the
    output equals one full copy m (conv m + BN m), never a mix."""
    layer = CASE.built(2)
    x = CASE.inputs(4)
    whole = [np.asarray(h.call_pinned(layer, x, m, False)) for m in range(2)]
    # The mixes conv m + BN (1 - m), which a shared index never produces.
    mixes = []
    for m in range(2):
        ref = h.ConvBNReference(layer, m)
        other = h.bn_reference(layer, 1 - m, ndim=4)
        mixes.append(np.asarray(other(ref.conv(x), training=False)))
    for _ in range(12):
        y = np.asarray(layer(x, training=False))
        assert any(np.allclose(y, w, atol=1e-5) for w in whole)
        assert not any(np.allclose(y, w, atol=1e-5) for w in mixes)


@pytest.mark.parametrize("training", [False, True], ids=["infer", "train"])
def test_unpinned_calls_vary(training):
    h.check_unpinned_varies(CASE, training)


def test_seed_reproduces():
    h.check_seed_reproduces(CASE, True)


@pytest.mark.parametrize("use_scope", [False, True], ids=["layer-arg", "scope"])
def test_per_example_inference_rows_use_their_copy(use_scope):
    h.check_per_example(CASE, use_scope)


@pytest.mark.parametrize("use_scope", [False, True], ids=["layer-arg", "scope"])
def test_per_example_training_uses_per_copy_moments(monkeypatch, use_scope):
    h.check_per_example_bn_training(CASE, monkeypatch, use_scope, batch=48)


def test_per_example_in_tf_function():
    h.check_per_example_traced(CASES[1])


def test_grouped_rows_share_a_copy():
    h.check_grouped(CASE)


@pytest.mark.parametrize(
    "kwargs, argument, value",
    [
        ({"filters": 0}, "filters", "0"),
        ({"kernel_size": 0}, "kernel_size", "0"),
        ({"padding": "full"}, "padding", "'full'"),
        ({"momentum": 1.5}, "momentum", "1.5"),
        ({"epsilon": 0}, "epsilon", "0"),
        ({"num_submodels": 0}, "num_submodels", "0"),
        ({"mu": (0.5, 0.6)}, "mu", "(0.5, 0.6)"),
    ],
)
def test_bad_arguments(kwargs, argument, value):
    args = {"filters": 2, "kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=argument) as info:
        RLSConv2DBatchNorm(**args)
    message = str(info.value)
    assert f"{argument}=" in message
    assert value in message.split(f"{argument}=", 1)[1]


def test_weights_per_copy():
    layer = RLSConv2DBatchNorm(8, 3, num_submodels=3)
    layer.build((None, 6, 6, 2))
    assert tuple(layer.kernel.shape) == (3, 3, 3, 2, 8)
    assert layer.bias is None
    for name in h.BN_WEIGHTS:
        assert tuple(getattr(layer, name).shape) == (3, 8)
    h.check_copies_differ(layer)


def test_he_normal_default_fans_of_one_copy():
    # Default he_normal on one [3, 3, 64, 64] copy: std = sqrt(2 / 576).
    layer = RLSConv2DBatchNorm(64, 3, num_submodels=3)
    layer.build((None, 8, 8, 64))
    kernel = layer.kernel.numpy()
    expected = np.sqrt(2.0 / 576)
    for m in range(3):
        std = kernel[m].std()
        assert abs(std - expected) < 0.1 * expected, (m, std, expected)
    h.check_copies_differ(layer)


def test_seeded_initializer_gives_different_copies():
    h.check_seeded_initializer(CASE)


def test_save_load_round_trip(tmp_path):
    h.check_save_load(CASES[1], tmp_path)


@pytest.mark.parametrize("training", [False, True], ids=["infer", "train"])
def test_gradients_only_in_pinned_copy(training):
    h.check_gradients(CASES[1], ("kernel", "gamma", "beta"), training)


def test_unpinned_gradient_in_exactly_one_copy():
    h.check_unpinned_gradient_in_one_copy(CASE, "kernel", True)


def test_mixed_precision(mixed_precision):
    h.check_mixed_precision_smoke(CASES[1])


def test_mixed_precision_moving_statistics_match_keras(mixed_precision):
    """Conv + BN under mixed_float16: the BN moving statistics must follow
    Keras' float32 update (see the same test for RLSBatchNormalization)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 5, 5, 2)).astype("float32")
    layer = RLSConv2DBatchNorm(3, 3, num_submodels=2)
    layer.build((None, 5, 5, 2))
    start = (1.0 + rng.uniform(0.0, 0.01, size=3)).astype("float32")
    layer.moving_mean.assign(np.stack([start, start]))
    ref = h.ConvBNReference(layer, 1)
    for _ in range(3):
        ref(x, training=True)
        h.call_pinned(layer, x, 1, training=True)
    np.testing.assert_allclose(layer.moving_mean.numpy()[1],
                               ref.moving_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy()[1],
                               ref.moving_variance.numpy(), rtol=1e-5, atol=1e-6)


def test_select_routing_equals_partition_routing():
    h.check_select_routing(CASE)
