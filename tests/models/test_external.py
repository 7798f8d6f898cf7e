"""Bring-your-own classifiers: rls_tf.models.external.ExternalClassifier.

Four models the tests build (a deterministic CNN, an MC-dropout CNN, a
Gaussian-noise-at-inference CNN and a SavedModel export of an RLS model),
each wrapped, checked for randomness, and broken by EOT-PGD at a large eps.
"""

import numpy as np
import pytest
import keras
import tensorflow as tf

import rls_tf
from rls_tf import pgd_core
from rls_tf.models import external
from rls_tf.models.external import ExternalClassifier
from tests.synthetic_data import quadrant_images as quadrants

SHAPE = (16, 16, 1)


@keras.saving.register_keras_serializable(package="test_external")
class InferenceNoise(keras.layers.Layer):
    """Gaussian noise at inference too (a noise-injection defense)."""

    def __init__(self, stddev, **kwargs):
        super().__init__(**kwargs)
        self.stddev = stddev

    def call(self, x):
        return x + self.stddev * tf.random.normal(tf.shape(x))

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev}


def _cnn(kind, softmax=False):
    inputs = keras.Input(SHAPE)
    h = inputs
    if kind == "noise":
        h = InferenceNoise(0.3)(h)
    h = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(32, activation="relu")(h)
    if kind == "dropout":
        h = keras.layers.Dropout(0.3)(h, training=True)  # MC dropout: on at inference
    out = keras.layers.Dense(4, activation="softmax" if softmax else None)(h)
    return keras.Model(inputs, out, name=f"{kind}_cnn")


_TRAINED = {}


def trained(kind):
    """A CNN trained to ~100% on the quadrant task (cached per kind)."""
    if kind not in _TRAINED:
        keras.utils.set_random_seed(0)
        model = _cnn(kind)
        model.compile(optimizer=keras.optimizers.Adam(0.01),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        x, y = quadrants(512, 0)
        model.fit(x, y, epochs=8, batch_size=64, verbose=0)
        _TRAINED[kind] = model
    return _TRAINED[kind]


def _rls_export(tmp_path):
    keras.utils.set_random_seed(0)
    model = rls_tf.models.build_model("small_cnn", input_shape=SHAPE, num_classes=4)
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss="categorical_crossentropy")
    x, y = quadrants(512, 0)
    model.fit(x, keras.utils.to_categorical(y, 4), epochs=6, batch_size=64, verbose=0)
    from rls_tf.export import export_saved_model
    return export_saved_model(model, str(tmp_path / "serving"), eval_samples=4)


def eot_pgd_accuracy(model, x, y, eps, steps=20, draws=4):
    """Accuracy of the defender's inference under a plain EOT L-inf PGD."""
    x = tf.constant(x)
    x_adv = x
    for _ in range(steps):
        with tf.GradientTape() as tape:
            tape.watch(x_adv)
            probs = tf.reduce_mean(model.sample(x_adv, draws), axis=0)
            # -log p_y without Keras' clipping of p to 1 - 1e-7, which zeroes
            # the gradient on confidently right examples.
            loss = -tf.math.log(tf.gather(probs, y, batch_dims=1) + 1e-30)
        grad = tape.gradient(loss, x_adv)
        x_adv = pgd_core.linf_project(pgd_core.linf_step(x_adv, grad, 2.5 * eps / steps), x, eps)
    clean = np.mean(np.argmax(model.defend(x), -1) == y)
    robust = np.mean(np.argmax(model.defend(x_adv), -1) == y)
    return clean, robust


@pytest.mark.parametrize("kind, stochastic", [
    ("plain", False), ("dropout", True), ("noise", True)])
def test_keras_models_are_wrapped_detected_and_broken(kind, stochastic):
    wrapped = ExternalClassifier.from_keras(trained(kind), input_range=(-1, 1))
    assert wrapped.is_stochastic is stochastic
    assert wrapped.pinnable is False
    assert wrapped.num_classes == 4 and wrapped.image_shape == SHAPE
    x, y = quadrants(64, 1)
    clean, robust = eot_pgd_accuracy(wrapped, x, y, eps=1.0)
    assert clean >= 0.9
    assert robust < 0.1  # strength: a large eps breaks every model


def test_rls_savedmodel_export_is_attacked_as_served(tmp_path):
    path = _rls_export(tmp_path)
    wrapped = external.load_external(path)  # serving_default, "probabilities"
    assert wrapped.output_kind == "probabilities"
    assert wrapped.is_stochastic  # fresh paths on every call
    assert wrapped.image_shape == SHAPE
    x, y = quadrants(32, 1)
    clean, robust = eot_pgd_accuracy(wrapped, x, y, eps=1.0, steps=10)
    assert clean >= 0.8
    assert robust < 0.1


def test_keras_file_with_custom_objects_loads(tmp_path):
    path = str(tmp_path / "noise.keras")
    trained("noise").save(path)
    wrapped = external.load_external(path, custom_objects={"InferenceNoise": InferenceNoise})
    assert wrapped.is_stochastic and wrapped.source == path
    dropout_path = str(tmp_path / "dropout.keras")
    trained("dropout").save(dropout_path)
    assert external.load_external(dropout_path).is_stochastic  # training=True survives saving


def test_outputs_are_fresh_per_draw_and_draws_carry_nothing():
    wrapped = ExternalClassifier.from_keras(trained("dropout"))
    x, _ = quadrants(4, 2)
    out = wrapped.outputs(x, wrapped.draw(3, seed=0)).numpy()
    assert out.shape == (3, 4, 4)
    scores = np.log(out + 1e-30)  # the probabilities of a confident model saturate
    assert not np.allclose(scores[0], scores[1])
    again = np.log(wrapped.outputs(x, wrapped.draw(3, seed=0)).numpy() + 1e-30)
    assert not np.allclose(scores, again)  # a seed cannot pin an external model
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)


def test_declared_deterministic_but_random_is_an_error():
    with pytest.raises(ValueError, match=r"declared deterministic.*stochastic=False"):
        ExternalClassifier.from_keras(trained("dropout"), stochastic=False)
    with pytest.raises(ValueError, match=r"declared random.*stochastic=True"):
        ExternalClassifier.from_keras(trained("plain"), stochastic=True)


def test_wrong_output_kind_is_caught():
    softmax_net = _cnn("plain", softmax=True)
    with pytest.raises(ValueError, match=r"look like probabilities.*output='logits'"):
        ExternalClassifier.from_keras(softmax_net, output="logits")
    assert ExternalClassifier.from_keras(softmax_net, output="probabilities").num_classes == 4
    with pytest.raises(ValueError, match=r"output='probabilities'"):
        ExternalClassifier.from_keras(trained("plain"), output="probabilities")


def test_wrong_input_range_is_caught():
    x, y = quadrants(64, 3)
    # The same trained network behind a layer that takes raw 0..255 pixels.
    raw = keras.Sequential([keras.Input(SHAPE), keras.layers.Rescaling(1 / 127.5, offset=-1.0),
                            trained("plain")])
    right = ExternalClassifier.from_keras(raw, input_range=(0, 255))
    assert external.check_input_range(right, x, y)["accuracy"] >= 0.9
    wrong = ExternalClassifier.from_keras(raw, input_range=(-1, 1))
    with pytest.raises(ValueError, match=r"input_range=\[-1.0, 1.0\].*\[0.0, 255.0\]"):
        external.check_input_range(wrong, x, y)


def test_input_range_maps_harness_pixels_to_the_models():
    seen = []

    def fn(x):
        seen.append(float(tf.reduce_min(x)))
        seen.append(float(tf.reduce_max(x)))
        return tf.zeros([tf.shape(x)[0], 3])

    wrapped = ExternalClassifier(fn, image_shape=(2, 2, 1), input_range=(0, 255))
    seen.clear()
    wrapped.probabilities(np.array([[[[-1.0], [1.0]], [[0.0], [0.0]]]], "float32"))
    assert seen == [0.0, 255.0]


@pytest.mark.parametrize("kwargs, message", [
    ({"input_range": (1, 0)}, r"input_range=\(1, 0\)"),
    ({"input_range": "01"}, "input_range='01'"),
    ({"output": "scores"}, "output='scores'"),
    ({"image_shape": (4, 4)}, r"image_shape=\(4, 4\)"),
    ({"eval_samples": 0}, "eval_samples=0"),
])
def test_bad_arguments_are_named(kwargs, message):
    args = {"image_shape": (4, 4, 1), **kwargs}
    with pytest.raises(ValueError, match=message):
        ExternalClassifier(lambda x: tf.zeros([tf.shape(x)[0], 3]), **args)


def test_missing_or_foreign_paths_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="No Keras model file"):
        external.load_external(str(tmp_path / "none.keras"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a SavedModel"):
        external.load_external(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="custom_objects='no_such_module_xyz'"):
        external.import_custom_objects("no_such_module_xyz")
