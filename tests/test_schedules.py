"""Learning-rate schedules (`rls_tf.schedules`) and their use by train.py."""

import json

import keras
import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver

import train
from rls_tf.schedules import OneCycle
from rls_tf.schedules import learning_rate
from tests.synthetic_data import write_quadrant_mnist

FLAGS = flags.FLAGS


@pytest.fixture(autouse=True)
def parsed_flags():
    if not FLAGS.is_parsed():
        FLAGS(["train.py"])


def _reference(t, peak, total, warmup):
    """NumPy transcription of the documented formula."""
    if t >= total:
        return 0.0
    if t < warmup:
        return peak * (t + 1) / warmup
    return peak * (total - t) / (total - warmup)


@pytest.mark.parametrize("total, warmup", [(50, 10), (7, 0), (12, 11), (1, 0)])
def test_onecycle_equals_its_formula(total, warmup):
    schedule = OneCycle(peak=0.4, total_steps=total, warmup_steps=warmup)
    for t in range(total + 3):
        assert float(schedule(t)) == pytest.approx(_reference(t, 0.4, total, warmup),
                                                   abs=1e-7), t
    rates = [float(schedule(t)) for t in range(total)]
    assert min(rates) > 0 and max(rates) == pytest.approx(0.4)


def test_onecycle_serialises():
    schedule = OneCycle(peak=0.2, total_steps=30, warmup_steps=6)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert isinstance(again, OneCycle) and again.get_config() == schedule.get_config()


@pytest.mark.parametrize("kwargs, match", [
    (dict(peak=0.0, total_steps=5), "Received: peak=0.0"),
    (dict(peak=0.1, total_steps=0), "Received: total_steps=0"),
    (dict(peak=0.1, total_steps=5, warmup_steps=5), "warmup_steps=5, total_steps=5"),
])
def test_onecycle_arguments_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OneCycle(**kwargs)


def test_learning_rate_builds_each_schedule():
    assert learning_rate("step", 0.01, epochs=3, steps_per_epoch=4) == 0.01
    step = learning_rate("step", 0.1, epochs=3, steps_per_epoch=4, decay_epochs=1)
    # The first step of every epoch already uses that epoch's rate.
    assert [float(step(t)) for t in (0, 3, 4, 7, 8)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001])
    cycle = learning_rate("onecycle", 0.4, epochs=10, steps_per_epoch=5, warmup_epochs=2.6)
    assert cycle.total_steps == 50 and cycle.warmup_steps == 13
    with pytest.raises(ValueError, match="Received: lr_schedule='cosine'"):
        learning_rate("cosine", 0.1, epochs=3, steps_per_epoch=4)
    with pytest.raises(ValueError, match="lr_warmup_epochs=3"):
        learning_rate("onecycle", 0.1, epochs=3, steps_per_epoch=4, warmup_epochs=3)


def test_train_follows_the_onecycle_schedule(tmp_path):
    data_dir = write_quadrant_mnist(tmp_path, n_train=64, n_test=16)
    model_dir = tmp_path / "run"
    with flagsaver.flagsaver(
        dataset="mnist", backbone="small_cnn", data_dir=data_dir,
        model_dir=str(model_dir), epochs=3, batch_size=32, learning_rate=0.3,
        lr_schedule="onecycle", lr_warmup_epochs=1.0, nesterov=True,
        eval_samples=2, verbose=0, seed=0,
    ):
        train.main(["train.py"])
    history = json.loads((model_dir / "metrics.json").read_text())["history"]
    # Logged per epoch: the rate of the epoch's first step, t = 2e.
    expected = [_reference(t, 0.3, 6, 2) for t in (0, 2, 4)]
    np.testing.assert_allclose(history["learning_rate"], expected, atol=1e-6)
    config = json.loads((model_dir / "config.json").read_text())
    assert config["lr_schedule"] == "onecycle" and config["nesterov"] is True
    model = keras.models.load_model(model_dir / "model.keras")
    assert model.optimizer.nesterov
    assert isinstance(model.optimizer._learning_rate, OneCycle)


@pytest.mark.parametrize("overrides, match", [
    (dict(lr_schedule="onecycle", lr_warmup_epochs=5.0, epochs=5), "lr_warmup_epochs"),
    (dict(lr_warmup_epochs=1.0), "used with lr_schedule='onecycle' only"),
    (dict(label_smoothing=1.0), "Received: label_smoothing=1.0"),
    (dict(label_smoothing=0.1, loss="mse"), "loss='mse', label_smoothing=0.1"),
    (dict(backbone="resnet20", backbone_width=8), "Received: backbone_width=8"),
])
def test_bad_recipe_settings_exit_with_clear_message(tmp_path, overrides, match):
    settings = dict(dataset="mnist", backbone="small_cnn", model_dir=str(tmp_path / "run"))
    with flagsaver.flagsaver(**{**settings, **overrides}):
        with pytest.raises(SystemExit, match=match):
            train.main(["train.py"])
