"""PGD adversarial training (`rls_tf.adversarial`, ``train.py --adv_train=pgd``).

Tiny models on toy data the tests make (8x8 images whose class is the
quadrant of a bright square, `tests.evaluation.conftest.toy_images`), and
small_cnn on the quadrant MNIST files for the training runs.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver

import train
from rls_tf import adversarial
from rls_tf import attacks
from rls_tf.adversarial import AdversarialTraining
from rls_tf.defenses import ADPModel
from rls_tf.defenses import EnsembleModel
from rls_tf.defenses import RSEModel
from rls_tf.defenses import RSENoise
from rls_tf.layers import RLSConv2DBatchNorm
from rls_tf.layers import RLSDense
from rls_tf.models import RLSModel
from rls_tf.models import build_defense
from rls_tf.models import load_model_dir
from rls_tf.defenses.noise_networks import wrap_sap
from rls_tf.training import TrainConfig
from rls_tf.training import _warm_start
from rls_tf.training import train as run_training
from tests.evaluation.conftest import toy_images
from tests.synthetic_data import write_quadrant_mnist

FLAGS = flags.FLAGS


@pytest.fixture(autouse=True)
def parsed_flags():
    if not FLAGS.is_parsed():
        FLAGS(["train.py"])


def micro(num_submodels=1, seed=0, lr=0.02, optimizer=None, num_samples=2, **kwargs):
    """8x8x1 -> two RLSDense layers (4 classes), compiled."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Flatten()(inputs)
    h = RLSDense(16, num_submodels=num_submodels, activation="relu", name="fc1")(h)
    outputs = RLSDense(4, num_submodels=num_submodels, activation="softmax", name="fc2")(h)
    model = RLSModel(keras.Model(inputs, outputs), num_samples=num_samples, eval_samples=4,
                     **kwargs)
    model.compile(optimizer=optimizer or keras.optimizers.Adam(lr),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def conv_bn(train_forward="loop", per_example=False, seed=0):
    """A seeded RLS conv+BN -> dense model (M=2, K=3): paths and BN statistics matter.

    Per-example sampling: two seeded RLSDense layers (no conv: faster).
    """
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    if per_example:
        h = RLSDense(8, num_submodels=2, activation="relu", seed=11, per_example_sampling=True,
                     name="fc0")(keras.layers.Flatten()(inputs))
    else:
        h = RLSConv2DBatchNorm(4, 3, num_submodels=2, activation="relu", seed=11,
                               name="conv")(inputs)
        h = keras.layers.Flatten()(h)
    outputs = RLSDense(4, num_submodels=2, activation="softmax", seed=12,
                       per_example_sampling=per_example, name="fc")(h)
    model = RLSModel(keras.Model(inputs, outputs), num_samples=3, train_forward=train_forward)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss="sparse_categorical_crossentropy")
    return model


def members(seed=0):
    nets = []
    for i in range(2):
        keras.utils.set_random_seed(seed + i)
        inputs = keras.Input((8, 8, 1))
        h = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(inputs))
        nets.append(keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(h),
                                name=f"member_{i}"))
    return nets


def assert_same_weights(a, b):
    for u, v in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-7)


X, Y = toy_images(128, size=8, seed=1)


# -- the recipe ------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    ({"eps": -0.1}, "Received: eps=-0.1"),
    ({"eps": 2.5}, "Received: eps=2.5"),
    ({"eps": 0.3, "steps": 0}, "Received: steps=0"),
    ({"eps": 0.3, "ratio": 1.5}, "Received: ratio=1.5"),
    ({"eps": 0.3, "ratio": -0.2}, "Received: ratio=-0.2"),
    ({"eps": 0.3, "step_size": -0.1}, "Received: step_size=-0.1"),
    ({"eps": 0.3, "method": "trades"}, "Received: method='trades'"),
    ({"eps": 0.3, "craft_on": "all"}, "Received: craft_on='all'"),
    ({"eps": 0.3, "ramp_epochs": -1}, "Received: ramp_epochs=-1"),
    ({"eps": 0.3, "random_start": 1}, "Received: random_start=1"),
])
def test_bad_recipes_raise_naming_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdversarialTraining(**kwargs)


def test_recipe_defaults_json_and_ramp():
    recipe = AdversarialTraining(eps=0.6, steps=10, ramp_epochs=4)
    assert recipe.step_size == pytest.approx(0.15) and recipe.ratio == 1.0
    assert recipe.random_start and recipe.craft_on == "mean" and recipe.method == "pgd"
    assert AdversarialTraining.from_json(json.loads(json.dumps(recipe.to_json()))) == recipe
    with pytest.raises(ValueError, match="Unknown adversarial-training settings"):
        AdversarialTraining.from_json({"eps": 0.3, "beta": 6})
    assert [recipe.eps_at(e) for e in range(6)] == pytest.approx(
        [0.15, 0.3, 0.45, 0.6, 0.6, 0.6])
    assert recipe.eps_at(1, 0.5) == pytest.approx(0.225)
    assert AdversarialTraining(eps=0.6).eps_at(0, 0.0) == 0.6


# -- crafting --------------------------------------------------------------------


def test_crafted_examples_stay_in_ball_and_raise_the_loss():
    model = micro(num_submodels=2)
    model.fit(X, Y, batch_size=64, epochs=3, verbose=0)
    paths = model.draw(3, seed=0)

    def probs_fn(images):
        return tf.reduce_mean(model.outputs(images, paths), axis=0)

    x, y = tf.constant(X[:64]), tf.constant(Y[:64])
    eps = 0.3
    adv = adversarial.pgd_examples(probs_fn, x, y, eps, steps=5, step_size=0.1).numpy()
    assert np.max(np.abs(adv - X[:64])) <= eps + 1e-6
    assert adv.min() >= -1.0 and adv.max() <= 1.0
    clean_loss = np.mean(adversarial.crossentropy(y, probs_fn(x)))
    adv_loss = np.mean(adversarial.crossentropy(y, probs_fn(adv)))
    assert adv_loss > clean_loss + 0.5, (clean_loss, adv_loss)
    # eps = 0 returns the clean batch exactly.
    same = adversarial.pgd_examples(probs_fn, x, y, 0.0, steps=3, step_size=0.0)
    np.testing.assert_array_equal(same.numpy(), X[:64])


def test_pgd_examples_trace_once_for_a_changing_eps():
    model = micro()
    eps = tf.Variable(0.1)
    craft = tf.function(lambda x, y: adversarial.pgd_examples(
        model, x, y, eps, steps=3, step_size=eps / 2))
    x, y = tf.constant(X[:32]), tf.constant(Y[:32])
    first = craft(x, y).numpy()
    eps.assign(0.4)
    second = craft(x, y).numpy()
    assert craft.experimental_get_tracing_count() == 1
    assert np.max(np.abs(first - X[:32])) <= 0.1 + 1e-6
    assert np.max(np.abs(second - X[:32])) > 0.1 + 1e-3


# -- the RLS / plain step --------------------------------------------------------


@pytest.mark.parametrize("train_forward, per_example", [
    ("loop", False), ("tiled", False), ("loop", True)])
def test_eps_zero_equals_clean_training_step_for_step(train_forward, per_example):
    clean, adv = conv_bn(train_forward, per_example), conv_bn(train_forward, per_example)
    adversarial.enable(adv, AdversarialTraining(eps=0.0, steps=2))
    for model in (clean, adv):
        model.fit(X[:64], Y[:64], batch_size=32, epochs=1, shuffle=False, verbose=0)
    # Same paths and the same loss: trainable weights, BN statistics and the
    # layers' path seeds agree after every step.
    assert_same_weights(clean, adv)
    if train_forward == "loop" and not per_example:
        # The check is not vacuous: eps > 0 trains differently.
        other = conv_bn(train_forward, per_example)
        adversarial.enable(other, AdversarialTraining(eps=0.3, steps=2))
        other.fit(X[:64], Y[:64], batch_size=32, epochs=1, shuffle=False, verbose=0)
        assert not np.allclose(other.get_weights()[0], clean.get_weights()[0])


def test_step_crafts_against_the_same_paths_it_trains():
    model = micro(num_submodels=2, num_samples=3)
    switch_calls = []
    recipe = AdversarialTraining(eps=0.2, steps=1)
    adversarial.enable(model, recipe)
    original = model._path_samples

    def recording(x, paths, training=True):
        switch_calls.append((paths, training))
        return original(x, paths, training=training)

    object.__setattr__(model, "_path_samples", recording)
    model.train_on_batch(X[:32], Y[:32])
    # In every trace the crafting forward (inference mode) and the loss
    # forward (training mode) are pinned to the same tensor of K paths.
    crafting = [p for p, training in switch_calls if not training]
    training = [p for p, training in switch_calls if training]
    assert crafting and training
    assert all(any(p is t for t in training) for p in crafting)
    assert tuple(training[0].shape) == (3, 2)


def test_ratio_zero_is_clean_training_and_ratio_mixes_the_losses():
    clean, zero = micro(optimizer=keras.optimizers.SGD(0.1)), micro(
        optimizer=keras.optimizers.SGD(0.1))
    adversarial.enable(zero, AdversarialTraining(eps=0.5, ratio=0.0))
    for model in (clean, zero):
        model.fit(X, Y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    assert_same_weights(clean, zero)
    # With a learning rate of 0 every model sees the same weights: the
    # logged loss of ratio r is r * L(adv) + (1 - r) * L(clean).
    losses = {}
    for ratio in (0.0, 0.25, 1.0):
        model = micro(optimizer=keras.optimizers.SGD(0.0))
        adversarial.enable(model, AdversarialTraining(eps=0.5, steps=3, ratio=ratio,
                                                      random_start=False))
        losses[ratio] = model.train_on_batch(X[:64], Y[:64], return_dict=True)["loss"]
    assert losses[1.0] > losses[0.0] + 0.1
    assert losses[0.25] == pytest.approx(0.25 * losses[1.0] + 0.75 * losses[0.0], rel=1e-4)


def test_adversarial_fit_raises_robust_accuracy():
    x_test, y_test = toy_images(256, size=8, seed=2)
    eps = 0.5
    results = {}
    for name in ("clean", "pgd"):
        model = micro(seed=0)
        if name == "pgd":
            adversarial.enable(model, AdversarialTraining(eps=eps, steps=5))
        model.fit(*toy_images(512, size=8, seed=1), batch_size=64, epochs=5, verbose=0)
        adv = attacks.pgd(lambda t, m=model: tf.math.log(m(t) + 1e-12), x_test, y_test,
                          eps=eps, eps_iter=eps / 4, nb_iter=10, rand_init=True, seed=0)
        results[name] = float(np.mean(np.argmax(model.predict(adv, verbose=0), -1) == y_test))
    assert results["pgd"] > results["clean"] + 0.3, results


def test_ramp_assigns_eps_per_batch_without_retracing():
    model = micro()
    recipe = AdversarialTraining(eps=0.4, steps=2, ramp_epochs=2)
    callbacks = adversarial.enable(model, recipe)
    assert len(callbacks) == 1 and isinstance(callbacks[0], adversarial.EpsRamp)
    seen, traces = [], []
    original = model._adversarial_train_step

    def counting(data, switch):
        traces.append(1)
        return original(data, switch)

    object.__setattr__(model, "_adversarial_train_step", counting)
    switch = model._adversarial_training

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(round(float(switch.eps.numpy()), 6))

    model.fit(X[:64], Y[:64], batch_size=32, epochs=3, verbose=0,
              callbacks=[*callbacks, Record()])
    assert seen == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4, 0.4])
    traced = len(traces)  # Keras traces a step twice (as for a clean step)
    # A resumed fit continues the ramp where it was, in the same graph.
    seen.clear()
    model.fit(X[:64], Y[:64], batch_size=32, epochs=2, initial_epoch=1, verbose=0,
              callbacks=[*callbacks, Record()])
    assert seen == pytest.approx([0.3, 0.4])
    assert 1 <= traced <= 2 and len(traces) == traced


def test_switch_is_a_training_option_not_saved(tmp_path):
    model = micro()
    config = model.get_config()
    adversarial.enable(model, AdversarialTraining(eps=0.3, steps=2))
    assert model.get_config() == config
    model.fit(X[:64], Y[:64], batch_size=32, epochs=1, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert adversarial.recipe_of(model) == AdversarialTraining(eps=0.3, steps=2)
    assert adversarial.recipe_of(loaded) is None
    assert len(loaded.weights) == len(model.weights)
    np.testing.assert_allclose(loaded.predict(X[:8], verbose=0),
                               model.predict(X[:8], verbose=0), atol=1e-6)
    adversarial.disable(model)
    assert adversarial.recipe_of(model) is None


# -- the other defenses ----------------------------------------------------------


@pytest.mark.parametrize("cls, craft_on", [(EnsembleModel, "mean"), (ADPModel, "one")])
def test_ensemble_and_adp_adversarial_step_lowers_loss(cls, craft_on):
    model = cls(members())
    model.compile(optimizer=keras.optimizers.Adam(0.02), metrics=["accuracy"])
    recipe = AdversarialTraining(eps=0.3, steps=3, craft_on=craft_on)
    adversarial.enable(model, recipe)
    history = model.fit(X, Y, batch_size=32, epochs=4, verbose=0).history["loss"]
    assert np.all(np.isfinite(history)) and history[-1] < history[0] - 0.1, history
    x_adv = model._adversarial_batch(adversarial.active(model), tf.constant(X[:32]),
                                     tf.constant(Y[:32])).numpy()
    assert 0.0 < np.max(np.abs(x_adv - X[:32])) <= 0.3 + 1e-6


def test_rse_adversarial_step_runs_with_the_noise_on():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    h = RSENoise(0.2)(inputs)
    h = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(h))
    model = RSEModel(keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(h)),
                     eval_samples=4)
    model.compile(optimizer=keras.optimizers.Adam(0.02),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    adversarial.enable(model, AdversarialTraining(eps=0.3, steps=3))
    history = model.fit(X, Y, batch_size=32, epochs=4, verbose=0).history["loss"]
    assert np.all(np.isfinite(history)) and history[-1] < history[0], history


def test_unsupported_defenses_are_refused():
    sap = wrap_sap(micro(), eval_samples=2)
    with pytest.raises(ValueError, match="SAP wraps a trained plain network"):
        adversarial.enable(sap, AdversarialTraining(eps=0.3))
    with pytest.raises(ValueError, match="has no adversarial train_step"):
        adversarial.enable(keras.Sequential([keras.layers.Dense(2)]),
                           AdversarialTraining(eps=0.3))
    with pytest.raises(ValueError, match="not available for defense='sap'"):
        TrainConfig(defense="sap", backbone="small_cnn", base_model_dir="/tmp",
                    adv_train="pgd", adv_eps=0.3).validate()


# -- train.py --------------------------------------------------------------------


@pytest.mark.parametrize("overrides, match", [
    ({"adv_train": "pgd"}, "`adv_eps` .* is required"),
    ({"adv_eps": 0.3}, "`adv_eps` is used with adversarial training only"),
    ({"adv_train": "pgd", "adv_eps": -0.3}, "Received: adv_eps=-0.3"),
    ({"adv_train": "pgd", "adv_eps": 2.5}, "Received: adv_eps=2.5"),
    ({"adv_train": "pgd", "adv_eps": 0.3, "adv_ratio": 1.5}, "Received: adv_ratio=1.5"),
    ({"adv_train": "pgd", "adv_eps": 0.3, "defense": "sap", "base_model_dir": "/tmp"},
     "not available for defense='sap'"),
])
def test_bad_adversarial_settings_exit_with_clear_message(tmp_path, overrides, match):
    with flagsaver.flagsaver(dataset="mnist", backbone="small_cnn",
                             model_dir=str(tmp_path / "run"), **overrides):
        with pytest.raises(SystemExit, match=match):
            train.main(["train.py"])


@pytest.mark.parametrize("argv, match", [
    (["--adv_steps=0"], "adv_steps must be >= 1"),
    (["--adv_train=trades"], "adv_train"),
    (["--adv_craft_on=all"], "adv_craft_on"),
])
def test_bad_adversarial_flags_are_rejected(argv, match):
    with flagsaver.flagsaver():
        with pytest.raises(flags.IllegalFlagValueError, match=match):
            FLAGS(["train.py", *argv])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("data")
    return write_quadrant_mnist(directory, n_train=64, n_test=16)


def _config(data_dir, model_dir, **overrides):
    settings = dict(dataset="mnist", backbone="small_cnn", defense="plain", data_dir=data_dir,
                    model_dir=str(model_dir), epochs=1, batch_size=32, eval_samples=2,
                    verbose=0, seed=0, learning_rate=0.02)
    settings.update(overrides)
    return TrainConfig(**settings)


def test_warm_start_resume_keeps_the_recipe(tmp_path, data_dir, monkeypatch, capsys):
    clean_dir = tmp_path / "clean"
    run_training(_config(data_dir, clean_dir))
    recipe = dict(adv_train="pgd", adv_eps=0.6, adv_steps=2, adv_ramp_epochs=2)
    adv_dir = tmp_path / "adv"
    capsys.readouterr()
    run_training(_config(data_dir, adv_dir, init_from=str(clean_dir), **recipe))
    out = capsys.readouterr().out
    assert "Initialised the weights from" in out and "Adversarially trained: PGD, eps 0.6" in out
    config = json.loads((adv_dir / "config.json").read_text())
    expected = AdversarialTraining(eps=0.6, steps=2, ramp_epochs=2).to_json()
    assert config["adversarial_training"] == expected and config["adv_train"] == "pgd"
    assert json.loads((adv_dir / "metrics.json").read_text())["adversarial_training"] == expected

    # Resumed (one more epoch): the recipe is enabled again, no second warm start.
    enabled = []
    original = adversarial.enable

    def spy(model, value):
        enabled.append(value)
        return original(model, value)

    monkeypatch.setattr(adversarial, "enable", spy)
    run_training(_config(data_dir, adv_dir, epochs=2, init_from=str(clean_dir), **recipe))
    out = capsys.readouterr().out
    assert "Resuming from" in out and "1 of 2 epochs done" in out
    assert "Initialised the weights" not in out
    assert enabled == [AdversarialTraining(eps=0.6, steps=2, ramp_epochs=2)]
    assert len(json.loads((adv_dir / "metrics.json").read_text())["history"]["loss"]) == 2

    # Another recipe (or none) on the same directory is refused.
    with pytest.raises(ValueError, match="adv_eps: saved 0.6 vs now 0.3"):
        run_training(_config(data_dir, adv_dir, epochs=3, init_from=str(clean_dir),
                             **{**recipe, "adv_eps": 0.3}))
    with pytest.raises(ValueError, match="adv_train: saved 'pgd' vs now 'none'"):
        run_training(_config(data_dir, adv_dir, epochs=3, init_from=str(clean_dir)))

    # The warm start copies every weight of the source run's model.
    fresh = build_defense("plain", "small_cnn", num_classes=10, input_shape=(28, 28, 1))
    _warm_start(fresh, _config(data_dir, tmp_path / "unused", init_from=str(clean_dir)).validate())
    source, _ = load_model_dir(str(clean_dir))
    for a, b in zip(fresh.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    # A warm start from another architecture is refused clearly.
    with pytest.raises(ValueError, match="num_submodels: 1 there vs 2 here"):
        run_training(_config(data_dir, tmp_path / "rls", defense="rls",
                             init_from=str(clean_dir), **recipe))
