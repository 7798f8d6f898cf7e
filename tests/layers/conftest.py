"""Shared helpers for the RLS layer tests.

Every layer test file describes its layer with a `LayerCase` (how to build it,
its input shape, and the plain Keras computation that one copy must equal) and
runs the generic checks below on it. The helpers are plain functions so that
a failing check points at the layer file and test that called it.
"""

import dataclasses
import inspect
import json
from typing import Any, Callable

import keras
import numpy as np
import pytest
import tensorflow as tf

from rls_tf.layers import RLSBatchNormalization
from rls_tf.layers import RLSConv2D
from rls_tf.layers import RLSConv2DBatchNorm
from rls_tf.layers import RLSDense
from rls_tf.layers import sampling_scope

# Required constructor arguments of each RLS layer class (for validation tests).
REQUIRED_ARGS = {
    RLSDense: {"units": 3},
    RLSConv2D: {"filters": 2, "kernel_size": 3},
    RLSBatchNormalization: {},
    RLSConv2DBatchNorm: {"filters": 2, "kernel_size": 3},
}
ALL_LAYER_CLASSES = list(REQUIRED_ARGS)

# The BN-like weights of a layer, in the order Keras' BatchNormalization has them.
BN_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")


# -- fixtures -----------------------------------------------------------------


@pytest.fixture
def mixed_precision():
    """Runs the test under the 'mixed_float16' policy, restoring 'float32'."""
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


@pytest.fixture(autouse=True)
def _float32_policy():
    """Guards every test against a leaked global dtype policy."""
    keras.mixed_precision.set_dtype_policy("float32")
    yield
    keras.mixed_precision.set_dtype_policy("float32")


# -- weights ------------------------------------------------------------------


def randomize_weights(layer, seed=0):
    """Gives every copy of every float weight its own random values.

    Variances and gammas stay positive and away from zero so that BN outputs
    are well conditioned; kernels keep a scale comparable to Glorot.
    """
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        if not keras.backend.is_float_dtype(weight.dtype):
            continue
        shape = tuple(weight.shape)
        name = weight.name
        if "variance" in name:
            value = rng.uniform(0.5, 2.0, shape)
        elif "gamma" in name:
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, 0.4, shape)
        weight.assign(value.astype(weight.dtype))


def snapshot(layer):
    """All weights of `layer` as numpy arrays, keyed by name."""
    return {w.name: np.array(w.numpy()) for w in layer.weights}


def copy_of(weight, m):
    return np.asarray(weight.numpy())[m]


# -- plain Keras references for one copy --------------------------------------


def dense_reference(rls, m):
    ref = keras.layers.Dense(
        rls.units, activation=rls.activation, use_bias=rls.use_bias
    )
    ref.build((None, rls.kernel.shape[1]))
    ref.kernel.assign(copy_of(rls.kernel, m))
    if rls.use_bias:
        ref.bias.assign(copy_of(rls.bias, m))
    return ref


def conv_reference(rls, m):
    ref = keras.layers.Conv2D(
        rls.filters, rls.kernel_size, strides=rls.strides, padding=rls.padding,
        dilation_rate=rls.dilation_rate, activation=rls.activation,
        use_bias=rls.use_bias,
    )
    ref.build((None, None, None, rls.kernel.shape[-2]))
    ref.kernel.assign(copy_of(rls.kernel, m))
    if rls.use_bias:
        ref.bias.assign(copy_of(rls.bias, m))
    return ref


def bn_reference(rls, m, ndim=None):
    ref = keras.layers.BatchNormalization(
        momentum=rls.momentum, epsilon=rls.epsilon, center=rls.center,
        scale=rls.scale,
    )
    if ndim is None:  # Keras' BN fixes the input rank when built.
        ndim = len(rls.get_build_config()["input_shape"])
    ref.build((None,) * (ndim - 1) + (rls.moving_mean.shape[-1],))
    for name in BN_WEIGHTS:
        if getattr(rls, name, None) is not None:
            getattr(ref, name).assign(copy_of(getattr(rls, name), m))
    return ref


class ConvBNReference:
    """``activation(BatchNormalization(Conv2D(x)))`` with one copy's weights."""

    def __init__(self, rls, m):
        self.conv = keras.layers.Conv2D(
            rls.filters, rls.kernel_size, strides=rls.strides,
            padding=rls.padding, dilation_rate=rls.dilation_rate,
            use_bias=rls.use_bias,
        )
        self.conv.build((None, None, None, rls.kernel.shape[-2]))
        self.conv.kernel.assign(copy_of(rls.kernel, m))
        if rls.use_bias:
            self.conv.bias.assign(copy_of(rls.bias, m))
        self.bn = bn_reference(rls, m, ndim=4)
        self.activation = rls.activation
        self.moving_mean = self.bn.moving_mean
        self.moving_variance = self.bn.moving_variance
        self.kernel = self.conv.kernel
        self.gamma = self.bn.gamma
        self.beta = self.bn.beta

    def __call__(self, x, training=False):
        return self.activation(self.bn(self.conv(x), training=training))


# -- layer cases ----------------------------------------------------------------


@dataclasses.dataclass
class LayerCase:
    """How to build, feed and check one configuration of an RLS layer."""

    cls: type
    kwargs: dict
    input_shape: tuple  # one example's shape (no batch axis)
    reference: Callable[[Any, int], Any]  # (rls_layer, copy) -> plain Keras
    has_training: bool = False  # whether `call` takes `training`
    id: str = ""

    def make(self, num_submodels=3, **kwargs):
        return self.cls(**{**self.kwargs, "num_submodels": num_submodels, **kwargs})

    def built(self, num_submodels=3, weights_seed=0, **kwargs):
        """A built layer whose copies all hold distinct random weights."""
        layer = self.make(num_submodels, **kwargs)
        layer.build((None, *self.input_shape))
        randomize_weights(layer, weights_seed)
        return layer

    def inputs(self, batch=4, seed=1):
        rng = np.random.default_rng(seed)
        return (rng.normal(size=(batch, *self.input_shape)) * 1.5 + 0.3).astype(
            "float32"
        )

    def modes(self):
        """The `training` values worth checking for this layer."""
        return (False, True) if self.has_training else (None,)


def call(layer, x, training=None):
    """Calls `layer`, passing `training` only to layers that take it."""
    if training is None:
        return layer(x)
    return layer(x, training=training)


def call_pinned(layer, x, m, training=None):
    with sampling_scope(pinned={id(layer): [m]}):
        return call(layer, x, training)


def moving_stats(obj):
    return [
        np.asarray(getattr(obj, n).numpy())
        for n in ("moving_mean", "moving_variance")
    ]


def has_bn(layer):
    return getattr(layer, "moving_mean", None) is not None


def recover_copies(layer, x, y, training=None, atol=1e-5):
    """The copy each row of `y` came from, by matching the pinned outputs.

    Every row must match exactly one copy's output on the same input row.
    Only valid where a row's output does not depend on the other rows
    (no BN in training mode).
    """
    y = np.asarray(y)
    refs = [
        np.asarray(call_pinned(layer, x, m, training))
        for m in range(layer.num_submodels)
    ]
    copies = []
    for i in range(len(x)):
        matches = [
            m for m, ref in enumerate(refs)
            if np.allclose(y[i], ref[i], rtol=1e-5, atol=atol)
        ]
        assert len(matches) == 1, f"row {i} matches copies {matches}"
        copies.append(matches[0])
    return np.asarray(copies)


# -- generic checks -------------------------------------------------------------


def check_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    # Through JSON too, as `.keras` files store it.
    restored = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    )
    assert type(restored) is type(layer)
    assert restored.get_config() == config
    params = set(inspect.signature(type(layer).__init__).parameters)
    params -= {"self", "kwargs"}
    missing = params - set(config)
    assert not missing, f"__init__ arguments missing from get_config: {missing}"


def check_pinned_matches_reference(case, training, num_submodels=3, atol=1e-5):
    """Each pinned copy equals the plain Keras layer holding its weights.

    Also checks that a training call updates only the pinned copy's moving
    statistics, exactly like the reference, and that an inference call
    changes no weight.
    """
    layer = case.built(num_submodels)
    x = case.inputs(6)
    for m in range(num_submodels):
        before = snapshot(layer)
        ref = case.reference(layer, m)
        expected = np.asarray(call(ref, x, training))
        got = call_pinned(layer, x, m, training)
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=atol)
        check_only_copy_updated(layer, before, ref, m, training)


def check_only_copy_updated(layer, before, ref, m, training):
    after = snapshot(layer)
    for name, old in before.items():
        new = after[name]
        others = [k for k in range(layer.num_submodels) if k != m]
        np.testing.assert_array_equal(new[others], old[others], err_msg=name)
        if training and name in ("moving_mean", "moving_variance"):
            np.testing.assert_allclose(
                new[m], np.asarray(getattr(ref, name).numpy()),
                rtol=1e-5, atol=1e-6, err_msg=name,
            )
            assert not np.allclose(new[m], old[m]), f"{name}[{m}] not updated"
        else:
            np.testing.assert_array_equal(new[m], old[m], err_msg=name)


def check_pinned_traced(case, training, num_submodels=3, atol=1e-5):
    """Pinning by a tensor argument of a tf.function: one trace, every copy."""
    layer = case.built(num_submodels)
    x = tf.constant(case.inputs(6))
    traces = []

    @tf.function
    def run(inputs, indices):
        traces.append(1)
        with sampling_scope(pinned={id(layer): indices}):
            return call(layer, inputs, training)

    for m in (1, 0, 2, 1):
        before = snapshot(layer)
        ref = case.reference(layer, m)
        expected = np.asarray(call(ref, x, training))
        got = run(x, tf.constant([m], tf.int32))
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=atol)
        check_only_copy_updated(layer, before, ref, m, training)
    assert len(traces) == 1


def check_single_copy_is_plain_layer(case, training):
    """M=1 with no scope is exactly the plain Keras layer."""
    layer = case.built(1)
    x = case.inputs(6)
    ref = case.reference(layer, 0)
    expected = np.asarray(call(ref, x, training))
    got = np.asarray(call(layer, x, training))
    np.testing.assert_array_equal(got, expected)
    if training and has_bn(layer):
        for got_stat, ref_stat in zip(moving_stats(layer), moving_stats(ref)):
            np.testing.assert_allclose(got_stat[0], ref_stat, rtol=1e-6, atol=1e-7)


def _distinct(outputs):
    return {np.asarray(o).round(5).tobytes() for o in outputs}


def check_unpinned_varies(case, training, seed=None):
    """M=2: repeated calls sample both copies, eagerly and in one tf.function.

    Every sampled output is also exactly one copy's pinned output (per-batch
    sampling: the whole batch uses one copy).
    """
    layer = case.built(2, seed=seed)
    x = case.inputs(4)
    pinned = [np.asarray(call_pinned(layer, x, m, training)) for m in range(2)]

    def which(y):
        y = np.asarray(y)
        matches = [m for m in range(2) if np.allclose(y, pinned[m], atol=1e-5)]
        assert len(matches) == 1, matches
        return matches[0]

    seen = set()
    for _ in range(50):
        seen.add(which(call(layer, x, training)))
        if len(seen) == 2:
            break
    assert seen == {0, 1}, "eager calls never sampled both copies"

    traces = []

    @tf.function
    def run(inputs):
        traces.append(1)
        return call(layer, inputs, training)

    x_t = tf.constant(x)
    seen = set()
    for _ in range(50):
        seen.add(which(run(x_t)))
        if len(seen) == 2:
            break
    assert seen == {0, 1}, "the traced function never sampled both copies"
    assert len(traces) == 1


def check_seed_reproduces(case, training):
    a = case.built(2, seed=11)
    b = case.make(2, seed=11)
    b.build((None, *case.input_shape))
    b.set_weights(a.get_weights())
    x = case.inputs(4)
    out_a = [np.asarray(call(a, x, training)) for _ in range(10)]
    out_b = [np.asarray(call(b, x, training)) for _ in range(10)]
    for ya, yb in zip(out_a, out_b):
        np.testing.assert_array_equal(ya, yb)
    # Seed 11 must not make the layer stick to one copy.
    assert len(_distinct(out_a)) == 2
    # Different seeds: different index sequences.
    c = case.make(2, seed=11)
    d = case.make(2, seed=12)
    e = case.make(2, seed=11)
    seq_c = c.draw_indices(1000).numpy()
    assert not np.array_equal(seq_c, d.draw_indices(1000).numpy())
    np.testing.assert_array_equal(seq_c, e.draw_indices(1000).numpy())


def check_per_example(case, use_scope, batch=64):
    """Per-example sampling, inference: each row equals its copy's output."""
    training = False if case.has_training else None
    if use_scope:
        layer = case.built(2, per_example_sampling=False)
    else:
        layer = case.built(2, per_example_sampling=True)
    x = case.inputs(batch)
    if use_scope:
        with sampling_scope(per_example=True):
            y = call(layer, x, training)
    else:
        y = call(layer, x, training)
    assert tuple(y.shape) == tuple(call_pinned(layer, x, 0, training).shape)
    copies = recover_copies(layer, x, y, training)
    assert set(copies.tolist()) == {0, 1}, "a batch of 64 used only one copy"


def check_select_routing(case, batch=12):
    """routing="select" (the TFLite form) equals the partition routing.

    Per-example pinned indices, inference, in eager mode and traced; in
    training the select routing must refuse (its statistics would be wrong).
    """
    training = False if case.has_training else None
    layer = case.built(3)
    x = case.inputs(batch)
    indices = np.random.default_rng(4).integers(0, 3, size=batch).astype("int32")
    pinned = {id(layer): indices}
    with sampling_scope(pinned=pinned):
        expected = np.asarray(call(layer, x, training))
    with sampling_scope(pinned=pinned, routing="select"):
        got = np.asarray(call(layer, x, training))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    for row in (0, batch - 1):
        ref = np.asarray(call_pinned(layer, x[row:row + 1], int(indices[row]), training))
        np.testing.assert_allclose(got[row:row + 1], ref, rtol=1e-5, atol=1e-5)

    @tf.function
    def traced(x, idx):
        with sampling_scope(pinned={id(layer): idx}, routing="select"):
            return call(layer, x, training)

    np.testing.assert_allclose(np.asarray(traced(x, indices)), expected, rtol=1e-5, atol=1e-5)
    if case.has_training:
        with pytest.raises(ValueError, match="inference only"):
            with sampling_scope(pinned=pinned, routing="select"):
                layer(x, training=True)


def check_per_example_traced(case, batch=64):
    """Per-example sampling inside a tf.function with an unknown batch size."""
    training = False if case.has_training else None
    layer = case.built(2, per_example_sampling=True)
    x = case.inputs(batch)
    traces = []

    @tf.function(input_signature=[tf.TensorSpec([None, *case.input_shape])])
    def run(inputs):
        traces.append(1)
        return call(layer, inputs, training)

    for _ in range(2):
        copies = recover_copies(layer, x, run(tf.constant(x)), training)
        assert set(copies.tolist()) == {0, 1}
    assert len(traces) == 1


def check_scope_disables_per_example(case):
    """`sampling_scope(per_example=False)` overrides the layer's setting."""
    training = False if case.has_training else None
    layer = case.built(2, per_example_sampling=True)
    x = case.inputs(16)
    for _ in range(3):
        with sampling_scope(per_example=False):
            copies = recover_copies(layer, x, call(layer, x, training), training)
        assert len(set(copies.tolist())) == 1


def check_grouped(case, calls=5):
    """num_groups=4 on a batch of 8: rows 2g and 2g+1 share a copy."""
    training = False if case.has_training else None
    layer = case.built(2)
    x = case.inputs(8)
    group_copies = []
    for _ in range(calls):
        with sampling_scope(num_groups=4):
            y = call(layer, x, training)
        copies = recover_copies(layer, x, y, training)
        np.testing.assert_array_equal(copies[0::2], copies[1::2])
        group_copies.extend(copies[0::2].tolist())
    # 4 independent groups x `calls` calls: both copies must show up.
    assert set(group_copies) == {0, 1}


def record_draws(layer, monkeypatch):
    """Records every index tensor `layer.draw_indices` returns."""
    drawn = []
    original = layer.draw_indices

    def spy(num):
        indices = original(num)
        drawn.append(indices)
        return indices

    monkeypatch.setattr(layer, "draw_indices", spy)
    return drawn


def check_per_example_bn_training(case, monkeypatch, use_scope, batch=64):
    """BN in training mode: copy m normalizes with the moments of its rows.

    The rows routed to each copy are read from the indices the layer draws;
    copy m's output on those rows and its moving statistics must equal a
    plain Keras reference trained on exactly those rows, and copies no row
    used must stay untouched.
    """
    layer = case.built(3, per_example_sampling=not use_scope)
    x = case.inputs(batch)
    before = snapshot(layer)
    refs = [case.reference(layer, m) for m in range(3)]
    drawn = record_draws(layer, monkeypatch)
    if use_scope:
        with sampling_scope(per_example=True):
            y = np.asarray(call(layer, x, True))
    else:
        y = np.asarray(call(layer, x, True))
    assert len(drawn) == 1
    copies = np.asarray(drawn[0])
    assert copies.shape == (batch,)
    assert set(copies.tolist()) == {0, 1, 2}
    after = snapshot(layer)
    for m in range(3):
        rows = np.flatnonzero(copies == m)
        expected = np.asarray(refs[m](x[rows], training=True))
        np.testing.assert_allclose(y[rows], expected, rtol=1e-5, atol=1e-5)
        for name, ref_stat in zip(("moving_mean", "moving_variance"),
                                  moving_stats(refs[m])):
            np.testing.assert_allclose(after[name][m], ref_stat, rtol=1e-5,
                                       atol=1e-6)
            assert not np.allclose(after[name][m], before[name][m])


def check_copies_differ(layer, names=("kernel",)):
    for name in names:
        value = np.asarray(getattr(layer, name).numpy())
        for i in range(len(value)):
            for j in range(i):
                assert not np.allclose(value[i], value[j]), (
                    f"{name} copies {i} and {j} are equal"
                )


def check_seeded_initializer(case, input_shape=None):
    """A seeded initializer still gives M different, reproducible copies."""
    shape = (None, *(input_shape or case.input_shape))
    layers = []
    for _ in range(2):
        layer = case.make(
            3, kernel_initializer=keras.initializers.GlorotUniform(seed=3)
        )
        layer.build(shape)
        layers.append(layer)
    check_copies_differ(layers[0])
    np.testing.assert_array_equal(layers[0].kernel.numpy(), layers[1].kernel.numpy())
    # Each copy is bounded by the Glorot limit of ONE copy's fans.
    kernel = layers[0].kernel.numpy()
    receptive = int(np.prod(kernel.shape[1:-2]))
    fan_in, fan_out = kernel.shape[-2] * receptive, kernel.shape[-1] * receptive
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    assert np.abs(kernel).max() <= limit * (1 + 1e-6)


def check_save_load(case, tmp_path, **layer_kwargs):
    """`.keras` round trip: every pinned copy, the seed and mu survive."""
    mu = (0.2, 0.5, 0.3)
    layer = case.built(3, seed=5, mu=mu, **layer_kwargs)
    inputs = keras.Input(case.input_shape)
    outputs = layer(inputs)
    model = keras.Model(inputs, outputs)
    randomize_weights(layer, seed=4)
    x = case.inputs(4)
    training = False if case.has_training else None
    before = [np.asarray(call_pinned(layer, x, m, training)) for m in range(3)]
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    new = loaded.get_layer(layer.name)
    assert type(new) is type(layer)
    assert new is not layer
    assert new.seed == 5
    assert tuple(new.mu) == pytest.approx(mu)
    assert new.get_config() == layer.get_config()
    for m in range(3):
        np.testing.assert_array_equal(
            np.asarray(call_pinned(new, x, m, training)), before[m]
        )
    for old_w, new_w in zip(layer.weights, new.weights):
        np.testing.assert_array_equal(old_w.numpy(), new_w.numpy())
    # The seeded path stream survives: the loaded layer draws what the
    # original (which has not drawn yet) draws.
    np.testing.assert_array_equal(
        new.draw_indices(200).numpy(), layer.draw_indices(200).numpy()
    )


def check_gradients(case, names, training, num_submodels=3):
    """Per-batch sampling, pinned copy m: gradients live only in copy m and
    equal the plain layer's gradients there."""
    layer = case.built(num_submodels)
    x = tf.constant(case.inputs(6))
    for m in range(num_submodels):
        ref = case.reference(layer, m)
        y_shape = tuple(call(ref, x, training).shape)
        weights = np.random.default_rng(m).normal(size=y_shape).astype("float32")
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(call_pinned(layer, x, m, training) * weights)
        grads = tape.gradient(loss, [getattr(layer, n) for n in names])
        with tf.GradientTape() as tape:
            ref_loss = tf.reduce_sum(call(ref, x, training) * weights)
        ref_grads = tape.gradient(ref_loss, [getattr(ref, n) for n in names])
        for name, grad, ref_grad in zip(names, grads, ref_grads):
            grad = np.asarray(tf.convert_to_tensor(grad))
            ref_grad = np.asarray(tf.convert_to_tensor(ref_grad))
            assert grad.shape == (num_submodels, *ref_grad.shape)
            assert np.any(ref_grad != 0), name
            for k in range(num_submodels):
                if k == m:
                    np.testing.assert_allclose(grad[k], ref_grad, rtol=1e-4,
                                               atol=1e-5, err_msg=name)
                else:
                    assert not np.any(grad[k]), f"{name}: copy {k} has a gradient"


def check_unpinned_gradient_in_one_copy(case, name, training):
    layer = case.built(3, seed=2)
    x = tf.constant(case.inputs(6))
    used = []
    for _ in range(6):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(call(layer, x, training)))
        grad = np.asarray(tf.convert_to_tensor(tape.gradient(loss, getattr(layer, name))))
        nonzero = [k for k in range(3) if np.any(grad[k])]
        assert len(nonzero) == 1, nonzero
        used.append(nonzero[0])
    assert len(set(used)) > 1


def check_mixed_precision_smoke(case, num_submodels=3):
    """mixed_float16: float16 outputs, float32 variables, all routing paths."""
    layer = case.make(num_submodels, seed=1)
    x = case.inputs(8)
    modes = case.modes()
    for training in modes:
        y = call(layer, x, training)
        assert y.dtype == tf.float16
        with sampling_scope(num_groups=2):
            assert call(layer, x, training).dtype == tf.float16
        # Copy 1 unused: exercises the skipped (empty) branch.
        with sampling_scope(num_groups=2, pinned={id(layer): [0, 2]}):
            assert call(layer, x, training).dtype == tf.float16
        with sampling_scope(per_example=True):
            assert call(layer, x, training).dtype == tf.float16

    @tf.function
    def run(inputs):
        with sampling_scope(num_groups=2):
            return call(layer, inputs, modes[-1])

    y = run(tf.constant(x))
    assert y.dtype == tf.float16
    assert np.all(np.isfinite(np.asarray(y, "float32")))
    assert layer.compute_dtype == "float16"
    assert layer.variable_dtype == "float32"
    assert layer.weights
    for weight in layer.weights:
        assert weight.dtype == "float32", weight.name
