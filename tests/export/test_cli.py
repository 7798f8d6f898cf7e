"""Tests of the export command line (`python -m export`, the top-level `export/`)."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver

import export.__main__ as export_cli
from rls_tf.export import SIGNATURE_KEY
from tests.export.conftest import REPO_ROOT

FLAGS = flags.FLAGS


@pytest.fixture(autouse=True)
def parsed_flags():
    if not FLAGS.is_parsed():
        FLAGS(["export"])
    yield


def test_writes_both_formats_and_a_record(trained_dir, tmp_path, capsys):
    out = tmp_path / "serving"
    with flagsaver.flagsaver(model_dir=trained_dir, output_dir=str(out),
                             formats=["saved_model", "tflite"], eval_samples=3):
        export_cli.main(["export"])
    assert (out / "1" / "saved_model.pb").is_file()
    assert (out / "model.tflite").is_file()
    record = json.loads((out / "export.json").read_text())
    assert record["saved_model"] == str(out / "1")
    assert record["eval_samples"] == 3 and record["seed"] is None
    assert record["per_example_sampling"] is False
    assert "MULTINOMIAL" in record["tflite_ops"]
    assert record["training_config"]["num_submodels"] == 2
    serve = tf.saved_model.load(str(out / "1")).signatures[SIGNATURE_KEY]
    assert serve(images=tf.zeros((1, 28, 28, 1)))["sample_probabilities"].shape == (1, 3, 10)
    printed = capsys.readouterr().out
    assert "SavedModel:" in printed and "TFLite:" in printed


def test_seed_given_is_recorded_and_default_is_unseeded(trained_dir, tmp_path):
    with flagsaver.flagsaver(model_dir=trained_dir, output_dir=str(tmp_path / "s"),
                             formats=["saved_model"], seed=5, eval_samples=2):
        assert export_cli.export_from_flags()["seed"] == 5
    # Another module's --seed default (train.py: None, attack_eval: 0) must
    # never make an export seeded: only a value that was given counts.
    with flagsaver.flagsaver(model_dir=trained_dir, output_dir=str(tmp_path / "u"),
                             formats=["saved_model"], eval_samples=2):
        assert export_cli.export_from_flags()["seed"] is None


@pytest.mark.parametrize("overrides, error, match", [
    (dict(formats=["onnx"]), ValueError, r"--formats.*Received: --formats=onnx"),
    (dict(model_dir="/nonexistent/run"), FileNotFoundError, "/nonexistent/run"),
])
def test_bad_flags_raise(trained_dir, tmp_path, overrides, error, match):
    settings = dict(model_dir=trained_dir, output_dir=str(tmp_path / "x"),
                    formats=["saved_model"])
    settings.update(overrides)
    with flagsaver.flagsaver(**settings):
        with pytest.raises(error, match=match):
            export_cli.main(["export"])


def test_python_dash_m_export(trained_dir, tmp_path):
    out = tmp_path / "serving"
    result = subprocess.run(
        [sys.executable, "-m", "export", f"--model_dir={trained_dir}", f"--output_dir={out}",
         "--formats=saved_model", "--eval_samples=2", "--version=3"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert os.path.isfile(out / "3" / "saved_model.pb")
    assert "SavedModel:" in result.stdout


@pytest.mark.parametrize("order", [("export.__main__", "attack_eval", "train"),
                                   ("train", "attack_eval", "export.__main__")])
def test_the_three_clis_import_together(order):
    # The test suite imports every CLI into one process: their shared flag
    # names (--output_dir, --seed, ...) must not clash in any order.
    code = "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in order)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
