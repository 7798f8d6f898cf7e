"""Tests of the export command line (`python -m export`, ``rls-export``) and its library call.

The command is `rls_tf.cli.export` (imported here through the top-level
`export/` shim, as `python -m export` runs it); the manifest is built by
`rls_tf.export.export_model_dir`.
"""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver

import export.__main__ as export_cli
from rls_tf.cli import export as cli_export
from rls_tf.export import SIGNATURE_KEY
from rls_tf.export import export_model_dir
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


@pytest.mark.parametrize("overrides, match", [
    (dict(formats=["onnx"]), r"formats.*Received: formats=onnx"),
    (dict(formats=[]), r"formats.*non-empty"),
    (dict(model_dir="/nonexistent/run"), "/nonexistent/run is not a directory"),
    (dict(model_dir=None), "--model_dir is required"),
    (dict(output_dir=""), "output_dir"),
])
def test_bad_flags_exit_with_one_error_line(trained_dir, tmp_path, overrides, match):
    settings = dict(model_dir=trained_dir, output_dir=str(tmp_path / "x"),
                    formats=["saved_model"])
    settings.update(overrides)
    with flagsaver.flagsaver(**settings):
        with pytest.raises(SystemExit, match=match) as info:
            export_cli.main(["export"])
    message = str(info.value)
    assert message.startswith("rls-export: error: ") and "\n" not in message
    assert not (tmp_path / "x").exists()


def test_damaged_model_file_exits_with_one_error_line(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"PK\x03\x04 truncated")
    with flagsaver.flagsaver(model_dir=str(run), output_dir=str(tmp_path / "x"),
                             formats=["saved_model"]):
        with pytest.raises(SystemExit, match=r"model\.keras is damaged.*Rerun train\.py"):
            export_cli.main(["export"])


def test_library_call_writes_the_manifest(trained_dir, tmp_path):
    out = tmp_path / "lib"
    lines = []
    info = export_model_dir(trained_dir, str(out), formats=["saved_model"], eval_samples=2,
                            version=7, log=lines.append)
    assert info == json.loads((out / "export.json").read_text())
    assert info["saved_model"] == str(out / "7") and "tflite" not in info
    assert info["model_dir"] == os.path.abspath(trained_dir)
    assert info["eval_samples"] == 2 and info["seed"] is None
    assert lines and lines[0].startswith("SavedModel: ")


@pytest.mark.parametrize("kwargs, match", [
    (dict(formats="onnx"), r"`formats`.*Received: formats=onnx"),
    (dict(formats=None), r"`formats`"),
    (dict(eval_samples=0), r"`eval_samples`.*Received: eval_samples=0"),
    (dict(seed=-1), r"`seed`.*Received: seed=-1"),
    (dict(per_example_sampling="yes"), r"`per_example_sampling`"),
    (dict(version=0), r"`version`.*Received: version=0"),
    (dict(output_dir=""), r"`output_dir` must be set"),
])
def test_library_call_refuses_bad_arguments_before_loading(tmp_path, kwargs, match):
    arguments = dict(model_dir=str(tmp_path / "missing"), output_dir=str(tmp_path / "o"))
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        export_model_dir(**arguments)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, match", [
    (["--model_dir=/nonexistent"], "--model_dir=/nonexistent is not a directory"),
    (["--formats=onnx"], "Received: formats=onnx"),
])
def test_python_dash_m_export_errors_are_one_line(argv, match):
    result = subprocess.run([sys.executable, "-m", "export", *argv], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("python -m export: error: ") and match in last, result.stderr[-3000:]


def test_the_shim_is_the_cli_module():
    assert export_cli.main is cli_export.main
    assert export_cli.export_from_flags is cli_export.export_from_flags


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
