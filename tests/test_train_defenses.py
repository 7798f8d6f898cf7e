"""`train.py --defense=...`: every registered defense trains (or wraps) and reloads."""

import json

import pytest
from absl import flags
from absl.testing import flagsaver

import train
from rls_tf.interface import StochasticClassifier
from rls_tf.models import DEFENSES
from rls_tf.models import load_model_dir

from tests.synthetic_data import write_quadrant_mnist

FLAGS = flags.FLAGS


@pytest.fixture(autouse=True)
def parsed_flags():
    if not FLAGS.is_parsed():
        FLAGS(["train.py"])


def _run(tmp_path, name, **overrides):
    data_dir = tmp_path / "data"
    if not data_dir.exists():
        data_dir.mkdir()
        write_quadrant_mnist(data_dir, n_train=128, n_test=32)
    model_dir = tmp_path / name
    settings = dict(dataset="mnist", backbone="small_cnn", data_dir=str(data_dir),
                    model_dir=str(model_dir), epochs=2, batch_size=32, eval_samples=2,
                    verbose=0, seed=0, learning_rate=0.02, defense=name)
    settings.update(overrides)
    with flagsaver.flagsaver(**settings):
        train.main(["train.py"])
    return model_dir


@pytest.mark.parametrize("name", ["plain", "ensemble", "adp"])
def test_train_py_trains_the_defense(tmp_path, capsys, name):
    model_dir = _run(tmp_path, name, ensemble_size=2)
    out = capsys.readouterr().out
    config = json.loads((model_dir / "config.json").read_text())
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert config["defense"] == metrics["defense"] == name
    assert len(metrics["history"]["loss"]) == 2
    model, _ = load_model_dir(str(model_dir))
    assert isinstance(model, StochasticClassifier)
    assert model.describe()["stochastic"] is False
    assert f"{metrics['test_accuracy']:.4f}" in out
    if name == "plain":
        assert config["num_submodels"] == 1 and "plain network" in out
    else:
        assert model.ensemble_size == 2 and "of 2 members" in out


def test_defense_settings_are_part_of_resume(tmp_path):
    _run(tmp_path, "adp", epochs=1, ensemble_size=2)
    with pytest.raises(SystemExit, match="adp_alpha"):
        _run(tmp_path, "adp", epochs=2, ensemble_size=2, adp_alpha=1.0)


@pytest.mark.parametrize("overrides, match", [
    ({"defense": "adp", "ensemble_size": 1}, "ensemble_size"),
    ({"defense": "adp", "adp_beta": -0.5}, "adp_beta"),
    ({"defense": "sap"}, "base_model_dir"),
    ({"defense": "rls", "base_model_dir": "/tmp"}, "base_model_dir"),
])
def test_bad_defense_settings_exit_with_clear_message(tmp_path, overrides, match):
    with flagsaver.flagsaver(dataset="mnist", backbone="small_cnn",
                             model_dir=str(tmp_path / "run"), **overrides):
        with pytest.raises(SystemExit, match=match):
            train.main(["train.py"])


def test_unknown_defense_flag_is_refused():
    with pytest.raises(flags.IllegalFlagValueError):
        flags.FLAGS["defense"].parse("dropout")
    assert set(DEFENSES) == {"rls", "plain", "ensemble", "adp", "rse", "sap"}
