"""Prefix sharing between the sampled models of a step is exact."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from rls_tf.layers import RLSDense
from rls_tf.models import RLSModel
from rls_tf.models import build_network
from rls_tf.models.prefix_sharing import PrefixSharing
from rls_tf.models.prefix_sharing import plan_prefix_sharing


def _pair(backbone, shape, seed=3, **kwargs):
    """Two identical seeded models, prefix sharing off / on."""
    models = []
    for share in (False, True):
        keras.utils.set_random_seed(0)
        network = build_network(backbone, num_submodels=2, input_shape=shape, seed=seed)
        models.append(RLSModel(network, num_samples=3, eval_samples=6,
                               share_prefixes=share, **kwargs))
    models[1].set_weights(models[0].get_weights())
    return models


@pytest.mark.parametrize("backbone,shape", [("small_cnn", (28, 28, 1)),
                                            ("resnet20", (16, 16, 3))])
def test_same_outputs_and_gradients(backbone, shape):
    plain, shared = _pair(backbone, shape)
    assert plain._prefix_sharing(3) is None
    assert shared._prefix_sharing(3) is not None
    x = np.random.default_rng(0).uniform(-1, 1, (4, *shape)).astype("float32")

    for _ in range(3):  # several draws (the seeded draws are the same)
        np.testing.assert_allclose(plain(x), shared(x), atol=1e-6)

    def step(model):
        with tf.GradientTape() as tape:
            samples = model._training_samples(x)
            loss = tf.reduce_sum(tf.reduce_mean(samples, 0) * tf.range(10.0))
        return samples, tape.gradient(loss, model.trainable_weights)

    # (Training updates a copy's moving statistics once per distinct prefix,
    # so inference is compared before training.)
    for _ in range(3):
        s0, g0 = step(plain)
        s1, g1 = step(shared)
        np.testing.assert_allclose(s0, s1, atol=1e-6)
        for a, b in zip(g0, g1):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("backbone,shape", [("small_cnn", (28, 28, 1)),
                                            ("resnet20", (16, 16, 3))])
def test_given_draws_share_prefixes_exactly(backbone, shape, monkeypatch):
    plain, shared = _pair(backbone, shape)
    x = np.random.default_rng(1).uniform(-1, 1, (4, *shape)).astype("float32")
    draws = shared.draw(8, seed=5)
    # The loop forward of given draws reuses earlier draws' outputs...
    calls = []
    original = PrefixSharing.route

    def counting(self, layer, fn, inputs, **kwargs):
        calls.append(self.sample)
        return original(self, layer, fn, inputs, **kwargs)

    monkeypatch.setattr(PrefixSharing, "route", counting)
    looped = shared.outputs(x, draws, forward="loop").numpy()
    assert calls and max(calls) == 7
    # ... and gives what the tiled forward and the unshared model give.
    np.testing.assert_allclose(looped, shared.outputs(x, draws).numpy(), atol=1e-6)
    np.testing.assert_allclose(looped, plain.outputs(x, draws, forward="loop").numpy(),
                               atol=1e-6)
    # Per-example draws and training never share.
    calls.clear()
    shared.outputs(x, shared.draw(2 * 4, seed=1).numpy().reshape(2, 4, -1), forward="loop")
    shared.outputs(x, draws, forward="loop", training=True)
    assert not calls


def test_shared_layers_are_the_early_ones():
    _, model = _pair("small_cnn", (28, 28, 1))
    names = {id(l): l.name for l in model.rls_layers}
    k3 = [names[k] for k in model._prefix_sharing(3).ancestors]
    n10 = [names[k] for k in model._prefix_sharing(10).ancestors]
    assert k3 == ["conv1", "conv2", "conv3"]
    assert n10 == ["conv1", "conv2", "conv3", "conv4", "fc1"]


def test_off_where_not_exact():
    shape = (28, 28, 1)
    _, model = _pair("small_cnn", shape, per_example_sampling=True)
    assert model._prefix_sharing(3) is None
    inputs = keras.Input((8,))
    h = RLSDense(8, num_submodels=2)(inputs)
    h = keras.layers.Dropout(0.5)(h)
    outputs = RLSDense(3, num_submodels=2, activation="softmax")(h)
    model = RLSModel(keras.Model(inputs, outputs))
    assert model._prefix_sharing(3) is None


def test_fit_and_config():
    _, model = _pair("small_cnn", (28, 28, 1))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).uniform(-1, 1, (8, 28, 28, 1)).astype("float32")
    y = np.arange(8) % 10
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert np.all(np.isfinite(model.evaluate(x, y, verbose=0)))
    assert model.get_config()["share_prefixes"] is True


def test_deep_layers_of_a_deep_network_are_not_shared():
    """With 2**54 possible paths the fc layer's samples never repeat: the
    plan must not share it (1 - 1/2**54 rounds to 1 in float64)."""
    from rls_tf.models import build_model

    model = build_model("resnet50", num_submodels=2, input_shape=(32, 32, 3))
    share = model._prefix_sharing(3)
    fc = model.network.get_layer("fc")
    assert id(fc) not in share.ancestors
    for key, ancestors in share.ancestors.items():
        assert all(a in share.ancestors for a in ancestors)
    assert 1 <= len(share.ancestors) <= 4


def test_plan_without_a_model():
    """The planning function on a bare network: the same plan as the model's,
    none for one sample or per-example sampling, `min_repeats` as the cut."""
    _, model = _pair("small_cnn", (28, 28, 1))
    network, layers = model.network, model.rls_layers
    plan = plan_prefix_sharing(network, layers, 3)
    assert isinstance(plan, PrefixSharing)
    assert plan.ancestors == model._prefix_sharing(3).ancestors
    assert plan_prefix_sharing(network, layers, 1) is None
    assert plan_prefix_sharing(network, layers, 3, per_example_override=True) is None
    everything = plan_prefix_sharing(network, layers, 3, min_repeats=0.0)
    assert set(everything.ancestors) == {id(l) for l in layers}
    assert plan_prefix_sharing(network, layers, 3, min_repeats=1.0) is None
