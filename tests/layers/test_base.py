"""Tests for the shared RLS machinery: `RLSLayer` and `sampling_scope`."""

import math
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from rls_tf.layers import RLSDense
from rls_tf.layers import RLSLayer
from rls_tf.layers import SamplingScope
from rls_tf.layers import current_scope
from rls_tf.layers import sampling_scope
from rls_tf.layers.base import _CopiesInitializer
from tests.layers import conftest as h

LAYER_CLASSES = [RLSLayer] + h.ALL_LAYER_CLASSES
CLASS_IDS = [c.__name__ for c in LAYER_CLASSES]


def make(cls, **kwargs):
    return cls(**{**h.REQUIRED_ARGS.get(cls, {}), **kwargs})


def dense(num_submodels=3, **kwargs):
    layer = RLSDense(3, num_submodels=num_submodels, **kwargs)
    layer.build((None, 4))
    h.randomize_weights(layer)
    return layer


# -- argument validation ----------------------------------------------------------


def _assert_names(info, argument, value):
    message = str(info.value)
    assert f"{argument}={value!r}" in message, message


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2", None])
@pytest.mark.parametrize("cls", LAYER_CLASSES, ids=CLASS_IDS)
def test_bad_num_submodels(cls, value):
    with pytest.raises(ValueError, match="num_submodels") as info:
        make(cls, num_submodels=value)
    _assert_names(info, "num_submodels", value)


def test_num_submodels_numpy_int_accepted():
    layer = RLSLayer(num_submodels=np.int64(3))
    assert layer.num_submodels == 3 and type(layer.num_submodels) is int
    assert layer.mu == pytest.approx((1 / 3,) * 3)


@pytest.mark.parametrize(
    "mu",
    [
        (0.5, 0.5),  # wrong length
        (0.2, 0.3, 0.2, 0.3),  # wrong length
        (1.2, -0.1, -0.1),  # negative
        (0.5, 0.5, 0.5),  # sum 1.5
        (0.1, 0.1, 0.1),  # sum 0.3
        (float("nan"), 0.5, 0.5),
        (float("inf"), 0.0, 0.0),
        ("a", "b", "c"),
        (None, 0.5, 0.5),
        0.5,  # not a sequence
    ],
)
@pytest.mark.parametrize("cls", LAYER_CLASSES, ids=CLASS_IDS)
def test_bad_mu(cls, mu):
    with pytest.raises(ValueError, match="mu") as info:
        make(cls, num_submodels=3, mu=mu)
    _assert_names(info, "mu", mu)


@pytest.mark.parametrize("value", [-1, "a", 1.5, True])
@pytest.mark.parametrize("cls", LAYER_CLASSES, ids=CLASS_IDS)
def test_bad_seed(cls, value):
    with pytest.raises(ValueError, match="seed") as info:
        make(cls, seed=value)
    _assert_names(info, "seed", value)


@pytest.mark.parametrize("value", ["yes", 1, None])
@pytest.mark.parametrize("cls", LAYER_CLASSES, ids=CLASS_IDS)
def test_bad_per_example_sampling(cls, value):
    with pytest.raises(ValueError, match="per_example_sampling") as info:
        make(cls, per_example_sampling=value)
    _assert_names(info, "per_example_sampling", value)


def test_defaults_and_normalised_arguments():
    layer = RLSLayer(num_submodels=4, mu=[0, 0.25, 0.25, 0.5], seed=np.int32(7))
    assert layer.mu == (0.0, 0.25, 0.25, 0.5)
    assert layer.seed == 7 and type(layer.seed) is int
    assert layer.per_example_sampling is False
    assert RLSLayer().num_submodels == 2
    assert RLSLayer().mu == (0.5, 0.5)
    assert RLSLayer().seed is None


def test_base_config_round_trip():
    layer = RLSLayer(num_submodels=3, mu=(0.2, 0.5, 0.3), seed=2,
                     per_example_sampling=True, name="base")
    h.check_config_round_trip(layer)


# -- draws follow mu ----------------------------------------------------------------


@pytest.mark.parametrize("seed", [None, 123], ids=["unseeded", "seeded"])
def test_draws_follow_mu(seed):
    mu = np.array([0.2, 0.5, 0.3])
    layer = RLSLayer(num_submodels=3, mu=tuple(mu), seed=seed)
    n = 20000
    indices = layer.draw_indices(n)
    assert indices.dtype == tf.int32
    assert tuple(indices.shape) == (n,)
    counts = np.bincount(indices.numpy(), minlength=3)
    assert counts.sum() == n and len(counts) == 3
    freq = counts / n
    se = np.sqrt(mu * (1 - mu) / n)
    assert np.all(np.abs(freq - mu) < 5 * se), (freq, mu)


@pytest.mark.parametrize("seed", [None, 5], ids=["unseeded", "seeded"])
def test_zero_probability_copy_never_drawn(seed):
    layer = RLSLayer(num_submodels=3, mu=(0.5, 0.0, 0.5), seed=seed)
    indices = layer.draw_indices(5000).numpy()
    assert not np.any(indices == 1)
    assert set(indices.tolist()) == {0, 2}
    certain = RLSLayer(num_submodels=3, mu=(0.0, 0.0, 1.0), seed=seed)
    np.testing.assert_array_equal(certain.draw_indices(100).numpy(), 2)


def test_zero_probability_copy_never_used_in_calls():
    layer = dense(3, mu=(0.0, 1.0, 0.0))
    x = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    expected = h.call_pinned(layer, x, 1)
    for scope in ({}, {"num_groups": 3}, {"per_example": True}):
        with sampling_scope(**scope):
            np.testing.assert_allclose(layer(x), expected, atol=1e-6)


def test_single_copy_draws_nothing():
    layer = RLSLayer(num_submodels=1)
    assert layer.sample_indices(tf.zeros((4, 2))) is None
    np.testing.assert_array_equal(layer.draw_indices(10).numpy(), 0)


# -- seeds ----------------------------------------------------------------------------


def test_same_seed_same_sequence_different_seed_different_sequence():
    a = RLSLayer(num_submodels=3, seed=1)
    b = RLSLayer(num_submodels=3, seed=1)
    c = RLSLayer(num_submodels=3, seed=2)
    first_a = a.draw_indices(1000).numpy()
    np.testing.assert_array_equal(first_a, b.draw_indices(1000).numpy())
    assert not np.array_equal(first_a, c.draw_indices(1000).numpy())
    # The generator advances: a second draw is a new sequence...
    second_a = a.draw_indices(1000).numpy()
    assert not np.array_equal(first_a, second_a)
    # ...and the same one for the twin layer.
    np.testing.assert_array_equal(second_a, b.draw_indices(1000).numpy())


def test_unseeded_layers_draw_different_sequences():
    a = RLSLayer(num_submodels=3)
    b = RLSLayer(num_submodels=3)
    assert not np.array_equal(a.draw_indices(1000).numpy(),
                              b.draw_indices(1000).numpy())


def test_seeded_draws_in_tf_function_advance_and_reproduce():
    def sequence(layer):
        @tf.function
        def draw():
            return layer.draw_indices(50)

        return [draw().numpy() for _ in range(3)]

    a = sequence(RLSLayer(num_submodels=2, seed=9))
    b = sequence(RLSLayer(num_submodels=2, seed=9))
    for xa, xb in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
    assert not np.array_equal(a[0], a[1])


# -- scopes ---------------------------------------------------------------------------


def test_default_scope():
    scope = current_scope()
    assert scope == SamplingScope()
    assert scope.num_groups == 1
    assert scope.pinned is None
    assert scope.per_example is None


def test_scopes_nest_and_restore():
    outer_pins = {1: [0]}
    with sampling_scope(num_groups=2, pinned=outer_pins) as outer:
        assert current_scope() is outer
        assert outer.num_groups == 2 and outer.pinned is outer_pins
        with sampling_scope(per_example=True) as inner:
            assert current_scope() is inner
            assert inner.num_groups == 1 and inner.pinned is None
        assert current_scope() is outer
    assert current_scope() == SamplingScope()


def test_scope_restored_after_exception():
    with pytest.raises(RuntimeError):
        with sampling_scope(num_groups=3):
            raise RuntimeError("boom")
    assert current_scope() == SamplingScope()


def test_scopes_are_per_thread():
    seen = {}

    def worker():
        seen["scope"] = current_scope()

    with sampling_scope(num_groups=5):
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    assert seen["scope"].num_groups == 1


@pytest.mark.parametrize("value", [0, -2, 1.5, True, "2", None])
def test_bad_num_groups(value):
    with pytest.raises(ValueError, match="num_groups") as info:
        with sampling_scope(num_groups=value):
            pass
    _assert_names(info, "num_groups", value)
    assert current_scope() == SamplingScope()


@pytest.mark.parametrize("value", ["tiled", None, 1])
def test_bad_scope_routing(value):
    with pytest.raises(ValueError, match=r"routing.*Received: routing="):
        with sampling_scope(routing=value):
            pass


@pytest.mark.parametrize("value", ["yes", 1])
def test_bad_scope_per_example(value):
    with pytest.raises(ValueError, match="per_example") as info:
        with sampling_scope(per_example=value):
            pass
    _assert_names(info, "per_example", value)


def test_scope_reaches_layers_in_a_model():
    """A scope around a functional model call routes every RLS layer in it."""
    inputs = keras.Input((4,))
    first = RLSDense(5, num_submodels=2)
    second = RLSDense(3, num_submodels=2)
    model = keras.Model(inputs, second(first(inputs)))
    h.randomize_weights(first, 1)
    h.randomize_weights(second, 2)
    x = np.random.default_rng(0).normal(size=(4, 4)).astype("float32")
    for a in range(2):
        for b in range(2):
            with sampling_scope(pinned={id(first): [a], id(second): [b]}):
                got = model(x)
            expected = h.dense_reference(second, b)(h.dense_reference(first, a)(x))
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_pinning_one_layer_leaves_others_sampling():
    first = dense(2)
    second = RLSDense(3, num_submodels=2)
    second.build((None, 3))
    h.randomize_weights(second, 3)
    x = np.random.default_rng(0).normal(size=(4, 4)).astype("float32")
    hidden = h.dense_reference(first, 1)(x)
    seen = set()
    for _ in range(50):
        with sampling_scope(pinned={id(first): [1]}):
            y = second(first(x))
        seen.add(int(h.recover_copies(second, hidden, y)[0]))
        if len(seen) == 2:
            break
    assert seen == {0, 1}


# -- routing --------------------------------------------------------------------------


@pytest.mark.parametrize("index", [3, -1, 7])
def test_pinned_index_out_of_range_raises(index):
    layer = dense(3)
    x = np.zeros((2, 4), "float32")
    with pytest.raises(tf.errors.InvalidArgumentError, match="out of range"):
        h.call_pinned(layer, x, index)


def test_pinned_index_out_of_range_raises_in_tf_function():
    layer = dense(3)

    @tf.function
    def run(x, indices):
        with sampling_scope(pinned={id(layer): indices}):
            return layer(x)

    x = tf.zeros((4, 4))
    run(x, tf.constant([2]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="out of range"):
        run(x, tf.constant([3]))
    # Several groups: the range assertion or the partition op may fail first.
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"out of range|-1 is not in \[0, 3\)"):
        run(x, tf.constant([0, -1]))


@pytest.mark.parametrize("num_groups, batch", [(4, 6), (3, 8), (5, 4)])
def test_batch_not_divisible_by_groups_raises(num_groups, batch):
    layer = dense(2)
    x = np.zeros((batch, 4), "float32")
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError),
                       match="multiple"):
        with sampling_scope(num_groups=num_groups):
            layer(x)


def test_pinned_groups_not_dividing_batch_raises():
    layer = dense(2)
    x = np.zeros((4, 4), "float32")
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError),
                       match="multiple"):
        with sampling_scope(num_groups=3, pinned={id(layer): [0, 1, 0]}):
            layer(x)


def test_pinned_groups_route_rows_and_skip_unused_copies():
    layer = dense(3)
    x = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    with sampling_scope(num_groups=3, pinned={id(layer): np.array([2, 2, 0])}):
        y = np.asarray(layer(x))
    refs = [np.asarray(h.dense_reference(layer, m)(x)) for m in range(3)]
    np.testing.assert_allclose(y[:4], refs[2][:4], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(y[4:], refs[0][4:], rtol=1e-6, atol=1e-6)


def test_grouped_call_in_tf_function_keeps_sampling():
    layer = dense(2)
    x = tf.constant(np.random.default_rng(0).normal(size=(8, 4)), tf.float32)
    traces = []

    @tf.function
    def run(inputs):
        traces.append(1)
        with sampling_scope(num_groups=4):
            return layer(inputs)

    patterns = set()
    for _ in range(10):
        copies = h.recover_copies(layer, x.numpy(), run(x))
        np.testing.assert_array_equal(copies[0::2], copies[1::2])
        patterns.add(tuple(copies[0::2]))
    assert len(patterns) > 1
    assert len(traces) == 1


def test_per_example_empty_batch():
    """An empty batch (e.g. a replica's share of a short last batch) must give
    an empty output, as for the plain layer, not an error."""
    layer = dense(2, per_example_sampling=True)
    y = layer(np.zeros((0, 4), "float32"))
    assert tuple(y.shape) == (0, 3)


def test_grouped_empty_batch():
    layer = dense(2)
    with sampling_scope(num_groups=2):
        y = layer(np.zeros((0, 4), "float32"))
    assert tuple(y.shape) == (0, 3)


# -- select / assign_moving -------------------------------------------------------------


def test_select_int_and_tensor_index():
    weight = keras.Variable(np.arange(24, dtype="float32").reshape(3, 2, 4))
    for m in range(3):
        expected = weight.numpy()[m]
        np.testing.assert_array_equal(RLSLayer.select(weight, m, 3), expected)
        np.testing.assert_array_equal(
            RLSLayer.select(weight, tf.constant(m), 3), expected
        )


@pytest.mark.parametrize("tensor_index", [False, True])
def test_assign_moving_updates_one_copy(tensor_index):
    start = np.random.default_rng(0).normal(size=(3, 5)).astype("float32")
    variable = keras.Variable(start)
    value = np.random.default_rng(1).normal(size=(5,)).astype("float32")
    index = tf.constant(1) if tensor_index else 1
    RLSLayer.assign_moving(variable, index, value, 0.9)
    new = variable.numpy()
    np.testing.assert_array_equal(new[[0, 2]], start[[0, 2]])
    np.testing.assert_allclose(new[1], start[1] * 0.9 + value * 0.1, rtol=1e-6)


# -- initializer ------------------------------------------------------------------------


def test_copies_initializer_rejects_wrong_leading_axis():
    init = _CopiesInitializer("glorot_uniform", 3)
    with pytest.raises(ValueError, match="3"):
        init((2, 4, 4))


def test_copies_initializer_uses_fans_of_one_copy():
    init = _CopiesInitializer("he_normal", 3)
    value = np.asarray(init((3, 3, 3, 64, 64)))
    assert value.shape == (3, 3, 3, 64, 64)
    expected = math.sqrt(2.0 / 576)
    for m in range(3):
        assert abs(value[m].std() - expected) < 0.1 * expected
    for i in range(3):
        for j in range(i):
            assert not np.allclose(value[i], value[j])


@pytest.mark.parametrize(
    "initializer",
    [
        keras.initializers.GlorotUniform(seed=3),
        keras.initializers.HeNormal(seed=0),
        keras.initializers.RandomNormal(seed=11),
    ],
    ids=["glorot", "he", "normal"],
)
def test_copies_initializer_seeded_copies_differ_and_reproduce(initializer):
    first = np.asarray(_CopiesInitializer(initializer, 3)((3, 16, 8)))
    second = np.asarray(_CopiesInitializer(initializer, 3)((3, 16, 8)))
    np.testing.assert_array_equal(first, second)
    for i in range(3):
        for j in range(i):
            assert not np.allclose(first[i], first[j])


def test_copies_initializer_constant():
    value = np.asarray(_CopiesInitializer(keras.initializers.Constant(0.5), 2)((2, 3)))
    np.testing.assert_array_equal(value, 0.5)
    np.testing.assert_array_equal(
        np.asarray(_CopiesInitializer("ones", 2)((2, 3))), 1.0
    )
