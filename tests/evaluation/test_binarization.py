"""Zimmermann et al.'s binarization test: the readout, the binarized classifier, the verdicts."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from rls_tf.evaluation import binarization
from rls_tf.evaluation import indicators
from rls_tf.models.external import ExternalClassifier
from tests.synthetic_data import quadrant_images as quadrants

SHAPE = (16, 16, 1)   # conftest's quadrant_cnn input


@pytest.fixture
def net(quadrant_cnn):
    return quadrant_cnn


def _pgd(steps):
    """The indicators' EOT-PGD probe as the attack under test."""
    def attack(binarized, x, eps):
        rng = np.random.default_rng(1)
        draws = 10 if binarized.is_stochastic else 1
        return indicators._pgd_path(binarized, x, np.zeros(len(x), np.int64), eps, steps,
                                    draws, rng)[4]
    return attack


def test_readouts_separate_separable_points_and_say_when_they_cannot():
    rng = np.random.default_rng(0)
    inner = rng.normal(0, 1, (2, 30, 3))
    boundary = np.array([[[6.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]]])  # image 1: at the centre
    labels = np.r_[np.zeros(30), 1]
    feats = np.concatenate([inner, boundary], axis=1)
    weights, biases, separated = binarization.fit_readouts(feats, labels)
    assert separated.tolist() == [True, False]
    scores = feats[0] @ weights[0] + biases[0]
    assert np.all((scores > 0) == (labels == 1))
    # Rescaled so that the largest score is 10 in size: a 2-class softmax keeps a gradient.
    assert np.max(np.abs(scores)) == pytest.approx(10.0, rel=1e-6)


def test_a_saturated_feature_does_not_separate_the_points():
    # Feature 0 moves by float noise only (a log-probability at 0): the points
    # are separable in it, but not by anything a gradient could follow.
    rng = np.random.default_rng(0)
    feats = np.stack([rng.normal(0, 1e-7, 31), np.full(31, -27.6)], axis=-1)[None]
    feats[0, -1, 0] = 5e-7
    assert not binarization.fit_readouts(feats, np.r_[np.zeros(30), 1])[2][0]


def test_the_binarized_classifier_is_the_readout_of_every_draw(net):
    model = ExternalClassifier.from_keras(net)
    x, _ = quadrants(3, 1)
    w = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    b = np.array([0.5, -1.0, 2.0], np.float32)
    binarized = binarization.BinarizedClassifier(model, w, b)
    probs = model.defend(tf.constant(x)).numpy()
    score = np.sum(np.log(probs + 1e-12) * w, axis=-1) + b
    expected = np.stack([1 / (1 + np.exp(score)), 1 / (1 + np.exp(-score))], axis=-1)
    np.testing.assert_allclose(binarized.defend(tf.constant(x)).numpy(), expected, rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="one readout per image"):
        binarized.defend(tf.constant(x[:2]))


def test_a_sound_attack_finds_the_known_adversarial_example(net):
    x, _ = quadrants(24, 1)
    found = binarization.binarization_test(ExternalClassifier.from_keras(net), x, 0.5,
                                           _pgd(40))
    assert found.valid >= 20
    assert found.attack_success_rate == 1.0
    # The adversarial regions are tight: the boundary point keeps 1e-4 of its margin.
    assert set(found.keep_fractions) == {1e-4}


def test_a_masked_gradient_fails_the_test(net):
    # The gradient is cut (BPDA's target): PGD never leaves its random start.
    masked = ExternalClassifier(lambda v: net(tf.stop_gradient(v)), image_shape=SHAPE)
    x, _ = quadrants(24, 1)
    found = binarization.binarization_test(masked, x, 0.5, _pgd(20))
    assert found.valid >= 20
    assert found.attack_success_rate < 0.5
    found = {i.id: i for i in indicators.run_indicators(masked, x, np.zeros(24, np.int64),
                                                        eps=0.5, steps=10)}
    assert found["binarization"].status == "fail"


def test_a_random_model_needs_the_boundary_point_adversarial_under_every_call(net):
    inputs = keras.Input(SHAPE)
    noisy = ExternalClassifier.from_keras(keras.Model(
        inputs, net(keras.layers.GaussianNoise(0.3)(inputs, training=True))))
    assert noisy.is_stochastic
    x, _ = quadrants(16, 1)
    found = binarization.binarization_test(noisy, x, 0.5, _pgd(20))
    assert found.valid + found.not_separable + found.not_adversarial == 16
    assert found.valid >= 8
    assert found.attack_success_rate >= 0.95       # EOT-PGD finds it
    assert all(k in binarization.KEEP_FRACTIONS for k in found.keep_fractions)


def test_a_seed_repeats_the_test(net):
    model = ExternalClassifier.from_keras(net)
    x, _ = quadrants(8, 1)
    a = binarization.binarization_test(model, x, 0.3, _pgd(5), num_inner=20, seed=3)
    b = binarization.binarization_test(model, x, 0.3, _pgd(5), num_inner=20, seed=3)
    assert a == b


def test_bad_arguments_raise_clear_errors(net):
    model = ExternalClassifier.from_keras(net)
    x, _ = quadrants(4, 1)
    with pytest.raises(TypeError, match="Received: model="):
        binarization.binarization_test(net, x, 0.3, _pgd(2))
    with pytest.raises(ValueError, match="eps"):
        binarization.binarization_test(model, x, 0.0, _pgd(2))
    with pytest.raises(ValueError, match="eps-ball"):
        binarization.binarization_test(model, x, 0.3, lambda b, v, e: v + 2 * e,
                                       num_inner=10)


class _Members(binarization.StochasticClassifier):
    """A deterministic ensemble of fixed members: its defender averages their softmaxes."""

    def __init__(self, nets):
        self.nets = nets
        self.eval_samples = len(nets)

    is_stochastic = False
    draw_shape = (1,)
    image_shape = SHAPE
    pinnable = True

    def defender_draws(self):
        return tf.range(len(self.nets))[:, None]

    def draw(self, num_draws, seed=None):
        return tf.range(num_draws)[:, None] % len(self.nets)

    def outputs(self, x, draws, training=False):
        members = tf.stack([tf.nn.softmax(net(x)) for net in self.nets])
        return tf.gather(members, draws[:, 0])


def test_an_ensemble_readout_is_fitted_on_every_member(net):
    # Three members that disagree (the first's logits reversed and rolled). A
    # readout fitted on their mean log-probabilities scores the mean of the
    # members' scores, but the binarized defender averages their 2-class
    # softmaxes: with three members the two can disagree (scores 10, -2, -2),
    # and the boundary point was then not adversarial on 18 of these 24 images.
    # Fitted member by member, every separated image is valid.
    flipped = keras.Sequential([net, keras.layers.Lambda(lambda z: tf.reverse(z, [-1]))])
    rolled = keras.Sequential([net, keras.layers.Lambda(lambda z: tf.roll(z, 1, -1))])
    x, _ = quadrants(24, 1)
    found = binarization.binarization_test(_Members([net, flipped, rolled]), x, 0.5, _pgd(40))
    assert found.valid + found.not_separable + found.not_adversarial == 24
    assert found.not_adversarial == 0
    assert found.valid >= 18
    assert found.attack_success_rate == 1.0
