"""Attack-failure indicators: each flags a constructed failure and passes a healthy model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from rls_tf.evaluation import indicators
from rls_tf.models.external import ExternalClassifier
from tests.synthetic_data import quadrant_images as quadrants

SHAPE = (16, 16, 1)   # conftest's quadrant_cnn input


@pytest.fixture
def net(quadrant_cnn):
    return quadrant_cnn


def _by_id(found):
    return {i.id: i for i in found}


def _run(model, **kwargs):
    x, y = quadrants(32, 1)
    return _by_id(indicators.run_indicators(model, x, y, eps=0.5, **kwargs))


def test_a_healthy_model_passes_every_indicator(net):
    found = _run(ExternalClassifier.from_keras(net), steps=40)
    assert [i.id for i in found.values()] == [s.id for s in indicators.INDICATORS]
    assert {k: v.status for k, v in found.items()} == {s.id: "pass" for s in
                                                      indicators.INDICATORS}
    assert found["unconstrained_attack"].numbers["robust_accuracy"] <= 0.05


def test_quantised_inputs_flag_zero_gradients_and_unconstrained_failure(net):
    # Rounding the input to a coarse grid: the gradient is zero everywhere.
    quantised = ExternalClassifier(lambda x: net(tf.round(x)), image_shape=SHAPE)
    found = _run(quantised, steps=10)
    assert found["zero_gradients"].status == "fail"
    assert found["zero_gradients"].numbers["zero_fraction"] == 1.0
    assert found["unconstrained_attack"].status == "fail"


def test_two_steps_flag_incomplete_optimisation(net):
    found = _run(ExternalClassifier.from_keras(net), steps=2)
    assert found["incomplete_optimisation"].status == "fail"
    assert found["incomplete_optimisation"].numbers["relative_rise"] > 0.02


def test_a_shattered_loss_flags_unstable_predictions(net):
    w = tf.constant(np.random.default_rng(0).normal(size=(int(np.prod(SHAPE)), 4)), tf.float32)

    def shattered(x):
        flat = tf.reshape(x, [tf.shape(x)[0], -1])
        return net(x) + 10.0 * tf.sin(300.0 * flat @ w)

    found = _run(ExternalClassifier(shattered, image_shape=SHAPE), steps=5)
    assert found["unstable_predictions"].status == "fail"


def test_a_random_model_declared_deterministic_flags_randomness(net):
    inputs = keras.Input(SHAPE)
    h = keras.layers.Dropout(0.5)(keras.layers.Flatten()(inputs), training=True)
    dropout = ExternalClassifier.from_keras(keras.Model(inputs, keras.layers.Dense(4)(h)))
    assert dropout.is_stochastic
    dropout._stochastic = False  # what a mislabelled model would say of itself
    found = _run(dropout, steps=2)
    assert found["randomness"].status == "fail"
    assert found["randomness"].numbers == {"declared": False, "detected": True}


def test_a_deterministic_ensemble_is_judged_by_its_defender():
    # An ensemble's draws name members (one draw: a random member), but its
    # defender averages all of them: deterministic, and attacked as a whole.
    from rls_tf.defenses import build_defense  # pylint: disable=import-outside-toplevel
    keras.utils.set_random_seed(0)
    ensemble = build_defense("ensemble", "small_cnn", input_shape=SHAPE, num_classes=4,
                             ensemble_size=3)
    assert not ensemble.is_stochastic
    found = _run(ensemble, steps=3)
    assert found["randomness"].status == "pass"
    assert found["randomness"].numbers == {"declared": False, "detected": False}


def test_a_seed_repeats_the_probes_of_a_random_model():
    # The probes' EOT draws and the defender's come from the seed: the same
    # seed gives the same numbers, another seed other draws.
    from rls_tf.models import build_model  # pylint: disable=import-outside-toplevel
    keras.utils.set_random_seed(1)
    rls = build_model("small_cnn", num_submodels=2, input_shape=SHAPE, num_classes=4,
                      eval_samples=3)
    first, again = (_run(rls, steps=3, eot_samples=2, seed=5) for _ in range(2))
    other = _run(rls, steps=3, eot_samples=2, seed=6)
    assert first["randomness"].numbers == {"declared": True, "detected": True}
    for key in ("unstable_predictions", "silent_success", "incomplete_optimisation",
                "unconstrained_attack"):
        assert first[key].numbers == again[key].numbers, key
    assert first["incomplete_optimisation"].numbers != other["incomplete_optimisation"].numbers


def test_silent_success_counts_paths_that_passed_an_adversarial_point():
    along = np.array([[0, 1, 0, 0], [1, 1, 0, 0], [0, 1, 0, 1]], bool)   # T=3, B=4
    end = np.array([0, 1, 0, 1], bool)
    np.testing.assert_array_equal(indicators.silent_success(along, end),
                                  [True, False, False, False])


def test_incomplete_optimisation_reads_the_end_of_the_trace():
    assert indicators.incomplete_optimisation(np.linspace(0, 5, 50))[0]          # rising
    flat = np.concatenate([np.linspace(0, 5, 25), np.full(25, 5.0)])
    assert not indicators.incomplete_optimisation(flat)[0]                       # converged


def test_table_and_json():
    found = [indicators.Indicator("zero_gradients", "m", "fail", "all zero", {"x": 1.0})]
    assert indicators.Indicator.from_json(found[0].to_json()) == found[0]
    table = indicators.render_indicator_table(found)
    assert "**fail**: all zero" in table and "Gradients available" in table


def test_bad_arguments_are_named(net):
    x, y = quadrants(4, 0)
    with pytest.raises(ValueError, match="eps=0"):
        indicators.run_indicators(ExternalClassifier.from_keras(net), x, y, eps=0)
