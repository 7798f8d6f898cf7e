"""The `StochasticClassifier` contract, for every classifier that implements it.

Any defense the harness evaluates or exports must pass this module: add its
factory to `FACTORIES` (a small, untrained instance is enough; the contract
is about randomness and shapes, not accuracy).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from rls_tf.interface import StochasticClassifier
from rls_tf.layers import RLSConv2DBatchNorm
from rls_tf.layers import RLSDense
from rls_tf.defenses import ADPModel
from rls_tf.defenses import EnsembleModel
from rls_tf.models import RLSModel
from rls_tf.models import build_defense
from rls_tf.models import build_model
from rls_tf.defenses import noise_networks as noise_defenses


def _small_rls(num_submodels, per_example=False):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 1))
    h = RLSConv2DBatchNorm(4, 3, padding="same", activation="relu",
                           num_submodels=num_submodels, per_example_sampling=per_example)(inputs)
    h = keras.layers.Flatten()(h)
    h = RLSDense(8, num_submodels=num_submodels, activation="relu",
                 per_example_sampling=per_example)(h)
    outputs = RLSDense(5, num_submodels=num_submodels, activation="softmax",
                       per_example_sampling=per_example)(h)
    model = RLSModel(keras.Model(inputs, outputs), eval_samples=4)
    # Spread the copies so that different draws give clearly different outputs.
    for weight in model.network.trainable_weights:
        weight.assign(np.random.default_rng(0).normal(0, 0.5, weight.shape).astype("float32"))
    return model


def _members(size=3):
    members = []
    for i in range(size):
        keras.utils.set_random_seed(10 + i)
        inputs = keras.Input((8, 8, 1))
        h = keras.layers.Flatten()(inputs)
        outputs = RLSDense(5, num_submodels=1, activation="softmax")(h)
        member = keras.Model(inputs, outputs, name=f"member_{i}")
        for weight in member.trainable_weights:
            weight.assign(np.random.default_rng(i).normal(0, 1.0, weight.shape).astype("float32"))
        members.append(member)
    return members


FACTORIES = {
    "ensemble": lambda: EnsembleModel(_members(3)),
    "adp": lambda: ADPModel(_members(2), alpha=2.0, beta=0.5),
    "rls": lambda: _small_rls(2),
    "rls_m3_per_example": lambda: _small_rls(3, per_example=True),
    "plain": lambda: _small_rls(1),
    "small_cnn_plain": lambda: build_model("small_cnn", num_submodels=1, input_shape=(8, 8, 1),
                                           num_classes=5),
    "rse": lambda: noise_defenses.build_rse("small_cnn", num_classes=5, input_shape=(8, 8, 1),
                                            width=4, eval_samples=4),
    "sap": lambda: noise_defenses.wrap_sap(build_model(
        "small_cnn", num_submodels=1, input_shape=(8, 8, 1), num_classes=5), eval_samples=4),
}


def _resnet9(defense, **options):
    """`defense` built by the registry on a width-2 resnet9 (every wrapping path)."""
    keras.utils.set_random_seed(5)
    if defense == "sap":
        base = build_defense("plain", "resnet9", num_classes=5, input_shape=(8, 8, 1),
                             backbone_options={"width": 2})
        return build_defense("sap", "resnet9", num_classes=5, input_shape=(8, 8, 1),
                             base_model=base, eval_samples=4)
    return build_defense(defense, "resnet9", num_classes=5, input_shape=(8, 8, 1),
                         backbone_options={"width": 2}, **options)


FACTORIES.update({
    "resnet9_rls": lambda: _resnet9("rls", eval_samples=4),
    "resnet9_plain": lambda: _resnet9("plain", eval_samples=4),
    "resnet9_ensemble": lambda: _resnet9("ensemble", ensemble_size=2),
    "resnet9_adp": lambda: _resnet9("adp", ensemble_size=2),
    "resnet9_rse": lambda: _resnet9("rse", eval_samples=4),
    "resnet9_sap": lambda: _resnet9("sap"),
})


@pytest.fixture(scope="module", params=sorted(FACTORIES))
def classifier(request):
    return FACTORIES[request.param]()


def _images(n=6, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, 8, 8, 1)).astype("float32")


def test_implements_the_interface(classifier):
    assert isinstance(classifier, StochasticClassifier)
    assert tuple(classifier.image_shape) == (8, 8, 1)
    assert isinstance(classifier.draw_shape, tuple)
    info = classifier.describe()
    assert info["stochastic"] is classifier.is_stochastic


def test_draw_shapes_and_seeds(classifier):
    draws = classifier.draw(7, seed=11)
    assert tuple(draws.shape) == (7, *classifier.draw_shape)
    np.testing.assert_array_equal(classifier.draw(7, seed=11), draws)  # a seed reproduces
    key = tf.constant([3, 4], tf.int64)
    np.testing.assert_array_equal(classifier.draw(7, seed=key), classifier.draw(7, seed=key))
    if classifier.is_stochastic:
        assert not np.array_equal(classifier.draw(50, seed=11), classifier.draw(50, seed=12))
        assert not np.array_equal(classifier.draw(50), classifier.draw(50))  # fresh entropy
        assert not np.array_equal(classifier.draw(50, seed=key),
                                  classifier.draw(50, seed=tf.constant([3, 5], tf.int64)))


def test_outputs_of_the_same_draws_are_equal(classifier):
    x = _images()
    draws = classifier.draw(5, seed=1)
    first = classifier.outputs(x, draws).numpy()
    assert first.shape == (5, 6, 5)
    np.testing.assert_allclose(first.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(classifier.outputs(x, draws).numpy(), first, atol=1e-6)
    traced = tf.function(classifier.outputs)
    np.testing.assert_allclose(traced(x, draws).numpy(), first, atol=1e-5)


def test_fresh_draws_differ_only_where_draws_name_sub_models(classifier):
    x = _images()
    first, second = classifier.sample(x, 4).numpy(), classifier.sample(x, 4).numpy()
    assert first.shape == (4, 6, 5)
    if classifier.pinnable:
        # Draws name different sub-models (sampled models, members).
        a = classifier.outputs(x, classifier.draw(20, seed=1)).numpy()
        assert len({tuple(np.round(row, 4).ravel()) for row in a}) > 1
    if classifier.is_stochastic:
        assert not np.allclose(first, second, atol=1e-4)
    elif not classifier.pinnable:
        np.testing.assert_allclose(first, second, atol=1e-6)


def test_the_defender_is_deterministic_unless_stochastic(classifier):
    x = _images()
    first, second = classifier.defend(x).numpy(), classifier.defend(x).numpy()
    if classifier.is_stochastic:
        assert not np.allclose(first, second, atol=1e-5)
    else:
        np.testing.assert_allclose(first, second, atol=1e-6)
    fixed = classifier.defender_draws()
    if fixed is not None:  # the defender is exactly the mean of these draws
        np.testing.assert_allclose(
            classifier.outputs(x, fixed).numpy().mean(axis=0), first, atol=1e-5)


def test_inference_outputs_equal_outputs_and_the_defender_averages_them(classifier):
    # The defender and the exports run `inference_outputs` (an RLS model's
    # prefix-sharing loop): it must be `outputs` exactly, eager and traced.
    x = _images()
    for draws in (classifier.draw(6, seed=4),
                  classifier.draw(2 * 6, seed=5).numpy().reshape(2, 6, *classifier.draw_shape)):
        reference = classifier.outputs(x, draws).numpy()
        np.testing.assert_allclose(classifier.inference_outputs(x, draws).numpy(), reference,
                                   atol=1e-5)
        traced = tf.function(classifier.inference_outputs)
        np.testing.assert_allclose(traced(x, draws).numpy(), reference, atol=1e-5)
    samples = classifier.defender_outputs(x, 3).numpy()
    fixed = classifier.defender_draws()
    expected = (len(fixed) if fixed is not None else 3 if classifier.is_stochastic else 1)
    assert samples.shape == (expected, 6, 5)
    np.testing.assert_allclose(samples.sum(-1), 1.0, atol=1e-5)
    if not classifier.is_stochastic:
        np.testing.assert_allclose(samples.mean(0), classifier.defend(x, 3).numpy(), atol=1e-5)


def test_per_example_draws_equal_the_per_draw_reference(classifier):
    x = _images(5, seed=2)
    draws = classifier.draw(3 * 5, seed=9).numpy().reshape(3, 5, *classifier.draw_shape)
    out = classifier.outputs(x, draws).numpy()
    assert out.shape == (3, 5, 5)
    for d in range(3):
        for b in range(5):
            reference = classifier.outputs(x[b:b + 1], draws[d, b][None]).numpy()[0, 0]
            np.testing.assert_allclose(out[d, b], reference, atol=1e-5)


def test_a_deterministic_classifier_ignores_draws(classifier):
    if classifier.is_stochastic or classifier.pinnable:
        pytest.skip("its draws matter")
    x = _images()
    zeros = np.zeros((3, *classifier.draw_shape), np.int32)
    np.testing.assert_allclose(classifier.outputs(x, zeros).numpy(),
                               classifier.outputs(x, classifier.draw(3)).numpy(), atol=1e-6)


def test_seeded_sample_repeats_and_defend_is_a_mean(classifier):
    x = _images()
    key = tf.constant([0, 42], tf.int64)
    np.testing.assert_allclose(classifier.sample(x, 3, seed=key).numpy(),
                               classifier.sample(x, 3, seed=key).numpy(), atol=1e-6)
    probs = classifier.defend(x).numpy()
    assert probs.shape == (6, 5)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


def test_graph_draws_are_fresh_per_call_without_retracing(classifier):
    x = tf.constant(_images())
    traces = []

    @tf.function
    def fresh(images):
        traces.append(1)
        return classifier.outputs(images, classifier.draw(8))

    first, second = fresh(x).numpy(), fresh(x).numpy()
    pinned = tf.function(lambda images, d: classifier.outputs(images, d))
    for seed in (1, 2, 3):
        pinned(x, classifier.draw(4, seed=seed))
    assert len(traces) == 1
    assert pinned.experimental_get_tracing_count() == 1
    if classifier.pinnable:  # fresh draws at every call of the traced function
        assert not np.allclose(first, second, atol=1e-4)


def test_bad_draws_raise_clear_errors(classifier):
    x = _images()
    with pytest.raises(ValueError, match="Received"):
        classifier.outputs(x, np.zeros((2, 99), np.int32))
    with pytest.raises(ValueError, match="seed"):
        classifier.draw(2, seed=-1)
