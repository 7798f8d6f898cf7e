"""Tests for `RLSBatchNormalization` against `keras.layers.BatchNormalization`."""

import keras
import numpy as np
import pytest

from rls_tf.layers import RLSBatchNormalization
from rls_tf.layers import sampling_scope
from tests.layers import conftest as h

CASES = [
    h.LayerCase(RLSBatchNormalization, {"momentum": 0.9}, (5,), h.bn_reference,
                has_training=True, id="rank2"),
    h.LayerCase(
        RLSBatchNormalization, {"momentum": 0.5, "epsilon": 1e-2}, (3, 4, 2),
        h.bn_reference, has_training=True, id="rank4",
    ),
    h.LayerCase(
        RLSBatchNormalization, {"center": False, "scale": False}, (4,),
        h.bn_reference, has_training=True, id="no-center-no-scale",
    ),
]
CASE = CASES[0]
ids = [c.id for c in CASES]


def test_config_round_trip():
    layer = RLSBatchNormalization(
        momentum=0.8, epsilon=1e-4, center=False, scale=True,
        gamma_regularizer="l2", beta_regularizer="l1", num_submodels=3,
        mu=(0.2, 0.5, 0.3), seed=4, per_example_sampling=True, name="bn_x",
    )
    h.check_config_round_trip(layer)
    config = layer.get_config()
    assert config["momentum"] == pytest.approx(0.8)
    assert config["epsilon"] == pytest.approx(1e-4)
    assert config["center"] is False


@pytest.mark.parametrize("training", [False, True], ids=["infer", "train"])
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_pinned_copy_equals_keras_bn(case, training):
    h.check_pinned_matches_reference(case, training)


@pytest.mark.parametrize("training", [False, True], ids=["infer", "train"])
def test_pinned_by_tensor_in_tf_function(training):
    h.check_pinned_traced(CASES[1], training)


@pytest.mark.parametrize("training", [False, True], ids=["infer", "train"])
@pytest.mark.parametrize("case", CASES[:2], ids=ids[:2])
def test_single_copy_is_keras_bn(case, training):
    h.check_single_copy_is_plain_layer(case, training)


def test_training_defaults_to_inference():
    layer = CASE.built(3)
    x = CASE.inputs(6)
    before = h.snapshot(layer)
    np.testing.assert_allclose(
        h.call_pinned(layer, x, 1), h.call_pinned(layer, x, 1, training=False)
    )
    after = h.snapshot(layer)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])


def test_frozen_layer_uses_moving_statistics():
    """trainable=False: training=True runs in inference mode (as Keras BN)."""
    layer = CASE.built(3)
    layer.trainable = False
    x = CASE.inputs(6)
    before = h.snapshot(layer)
    ref = h.bn_reference(layer, 2)
    ref.trainable = False
    np.testing.assert_allclose(
        h.call_pinned(layer, x, 2, training=True), ref(x, training=True),
        rtol=1e-5, atol=1e-5,
    )
    for name, value in h.snapshot(layer).items():
        np.testing.assert_array_equal(value, before[name])


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
    h.check_per_example_bn_training(CASE, monkeypatch, use_scope)


def test_per_example_in_tf_function():
    h.check_per_example_traced(CASES[1])


def test_grouped_rows_share_a_copy():
    h.check_grouped(CASE)


def test_grouped_training_normalizes_each_copy_over_its_groups():
    """Pinned groups [1, 0, 1] on a batch of 6: copy 1 normalizes rows 0-1 and
    4-5 together, copy 0 rows 2-3; copy 2's statistics stay untouched."""
    layer = CASE.built(3)
    x = CASE.inputs(6)
    before = h.snapshot(layer)
    refs = [h.bn_reference(layer, m) for m in range(3)]
    with sampling_scope(num_groups=3, pinned={id(layer): [1, 0, 1]}):
        y = np.asarray(layer(x, training=True))
    rows = {1: [0, 1, 4, 5], 0: [2, 3]}
    after = h.snapshot(layer)
    for m, idx in rows.items():
        np.testing.assert_allclose(y[idx], refs[m](x[idx], training=True),
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(after["moving_mean"][m],
                                   refs[m].moving_mean.numpy(), rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(after["moving_variance"][m],
                                   refs[m].moving_variance.numpy(), rtol=1e-5,
                                   atol=1e-6)
    for name in before:
        np.testing.assert_array_equal(after[name][2], before[name][2])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"momentum": 1.5}, "momentum=1.5"),
        ({"momentum": 1.0}, "momentum=1.0"),
        ({"momentum": -0.1}, "momentum=-0.1"),
        ({"momentum": float("nan")}, "momentum=nan"),
        ({"epsilon": 0}, "epsilon=0"),
        ({"epsilon": -1e-3}, "epsilon=-0.001"),
        ({"epsilon": float("nan")}, "epsilon=nan"),
    ],
)
def test_bad_arguments(kwargs, message):
    argument = next(iter(kwargs))
    with pytest.raises(ValueError, match=argument) as info:
        RLSBatchNormalization(**kwargs)
    assert message in str(info.value)


def test_weights_per_copy():
    layer = RLSBatchNormalization(num_submodels=3)
    layer.build((None, 6))
    for name, value in (("gamma", 1.0), ("beta", 0.0), ("moving_mean", 0.0),
                        ("moving_variance", 1.0)):
        weight = getattr(layer, name)
        assert tuple(weight.shape) == (3, 6)
        np.testing.assert_array_equal(weight.numpy(), value)
    assert {w.name for w in layer.trainable_weights} == {"gamma", "beta"}
    assert {w.name for w in layer.non_trainable_weights} == {
        "moving_mean", "moving_variance"}


def test_save_load_round_trip(tmp_path):
    h.check_save_load(CASES[1], tmp_path)


@pytest.mark.parametrize("training", [False, True], ids=["infer", "train"])
def test_gradients_only_in_pinned_copy(training):
    h.check_gradients(CASE, ("gamma", "beta"), training)


def test_unpinned_gradient_in_exactly_one_copy():
    h.check_unpinned_gradient_in_one_copy(CASE, "gamma", True)


def test_mixed_precision(mixed_precision):
    h.check_mixed_precision_smoke(CASES[1])


def test_mixed_precision_moving_statistics_match_keras(mixed_precision):
    """Under mixed_float16 the float32 moving statistics must be updated in
    float32, as Keras' BatchNormalization does (its BN weights are created
    with autocast=False). Reading them through the float16 autocast rounds the
    running averages to float16 on every step, so updates smaller than half a
    float16 ulp are lost and the statistics stall away from the data."""
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(32, 4)) * 0.5 + 1.03).astype("float32")
    layer = RLSBatchNormalization(num_submodels=2)
    ref = keras.layers.BatchNormalization()
    layer.build((None, 4))
    ref.build((None, 4))
    start = (1.0 + rng.uniform(0.0, 0.01, size=4)).astype("float32")
    ref.moving_mean.assign(start)
    layer.moving_mean.assign(np.stack([start, start]))
    for _ in range(3):
        ref(x, training=True)
        h.call_pinned(layer, x, 1, training=True)
    np.testing.assert_allclose(layer.moving_mean.numpy()[1],
                               ref.moving_mean.numpy(), rtol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy()[1],
                               ref.moving_variance.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(layer.moving_mean.numpy()[0], start)


def test_mask_is_not_supported():
    """Images carry no mask: the layer says so instead of silently ignoring
    one (masked moments are not implemented)."""
    layer = RLSBatchNormalization(num_submodels=1)
    assert not layer.supports_masking


def test_select_routing_equals_partition_routing():
    h.check_select_routing(CASE)
