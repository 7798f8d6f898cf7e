"""Tests of the `train.py` command line (absl flags + main) on tiny data."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds
from absl import flags
from absl.testing import flagsaver

import train
from tests.synthetic_data import write_quadrant_mnist

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS


@pytest.fixture(autouse=True)
def parsed_flags():
    if not FLAGS.is_parsed():
        FLAGS(["train.py"])
    yield


def test_train_writes_outputs_and_prints_accuracy(tmp_path, capsys):
    data_dir = write_quadrant_mnist(tmp_path)
    model_dir = tmp_path / "run"
    with flagsaver.flagsaver(
        dataset="mnist", backbone="small_cnn", data_dir=data_dir,
        model_dir=str(model_dir), epochs=2, batch_size=64, learning_rate=0.02,
        eval_samples=4, verbose=0, seed=3,
    ):
        train.main(["train.py"])
    out = capsys.readouterr().out
    assert "Test accuracy of the N=4-sample ensemble" in out
    metrics = json.loads((model_dir / "metrics.json").read_text())
    config = json.loads((model_dir / "config.json").read_text())
    assert config["num_submodels"] == 2 and config["num_samples"] == 3
    assert config["epochs"] == 2 and config["weight_decay"] == 5e-4
    assert len(metrics["history"]["loss"]) == 2
    assert set(metrics["history"]) >= {"loss", "accuracy", "diversity", "learning_rate"}
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert f"{metrics['test_accuracy']:.4f}" in out
    assert (model_dir / "model.keras").exists()
    assert (model_dir / "checkpoints" / "latest.keras").exists()
    assert os.listdir(model_dir / "logs")
    # Nothing half-written is left behind.
    assert not [p for p in os.listdir(model_dir) if p.startswith(".tmp-")]


def test_lr_schedule_divides_by_ten(tmp_path):
    data_dir = write_quadrant_mnist(tmp_path, n_train=64, n_test=16)
    model_dir = tmp_path / "run"
    with flagsaver.flagsaver(
        dataset="mnist", backbone="small_cnn", data_dir=data_dir,
        model_dir=str(model_dir), epochs=3, lr_decay_epochs=1, batch_size=32,
        learning_rate=0.01, eval_samples=2, verbose=0,
    ):
        train.main(["train.py"])
    lrs = json.loads((model_dir / "metrics.json").read_text())["history"]["learning_rate"]
    np.testing.assert_allclose(lrs, [0.01, 0.001, 0.0001], rtol=1e-5)


def test_resume_after_kill_9(tmp_path):
    """A run killed with SIGKILL resumes after its last complete epoch."""
    data_dir = write_quadrant_mnist(tmp_path, n_train=512, n_test=32)
    model_dir = tmp_path / "run"
    args = [
        sys.executable, os.path.join(REPO_ROOT, "train.py"), "--dataset=mnist",
        "--backbone=small_cnn", f"--data_dir={data_dir}", f"--model_dir={model_dir}",
        "--epochs=6", "--batch_size=32", "--eval_samples=2", "--verbose=2",
    ]
    state = model_dir / "checkpoints" / "latest_state.json"
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            cwd=REPO_ROOT)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if state.exists() and json.loads(state.read_text())["epoch"] >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = json.loads(state.read_text())["epoch"]
    assert 2 <= done < 6
    history_before = json.loads(state.read_text())["history"]["loss"]
    rerun = subprocess.run(args, capture_output=True, text=True, cwd=REPO_ROOT,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"Resuming from {model_dir}/checkpoints/latest.keras: {done} of 6" in rerun.stdout
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert len(metrics["history"]["loss"]) == 6
    assert metrics["history"]["loss"][:done] == history_before
    # The resumed optimizer continued from the checkpoint's step count.
    assert f"Epoch {done + 1}/6" in rerun.stdout
    assert "Epoch 1/6" not in rerun.stdout


def test_resume_refuses_different_settings(tmp_path):
    data_dir = write_quadrant_mnist(tmp_path, n_train=64, n_test=16)
    model_dir = str(tmp_path / "run")
    common = dict(dataset="mnist", backbone="small_cnn", data_dir=data_dir,
                  model_dir=model_dir, epochs=1, batch_size=32, eval_samples=2,
                  verbose=0)
    with flagsaver.flagsaver(**common):
        train.main(["train.py"])
    with flagsaver.flagsaver(**common, num_submodels=3):
        with pytest.raises(SystemExit, match="num_submodels: saved 2 vs now 3"):
            train.main(["train.py"])


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"mu": ["0.5", "0.6"]}, "`mu` must sum to 1"),
        ({"mu": ["0.5", "x"]}, "`mu` must be numbers"),
        ({"mu": ["1.0"]}, "one probability per sub-model"),
        ({"data_dir": "/nonexistent/rls-data"}, "/nonexistent/rls-data"),
    ],
)
def test_bad_settings_exit_with_clear_message(tmp_path, overrides, match):
    with flagsaver.flagsaver(dataset="mnist", backbone="small_cnn",
                             model_dir=str(tmp_path / "run"), **overrides):
        with pytest.raises(SystemExit, match=match):
            train.main(["train.py"])


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--dataset=imagenet"], "dataset"),
        (["--backbone=resnet9000"], "backbone"),
        (["--num_submodels=0"], "num_submodels must be >= 1"),
        (["--num_samples=0"], "num_samples must be >= 1"),
    ],
)
def test_bad_flags_are_rejected(argv, match):
    with flagsaver.flagsaver():
        with pytest.raises(flags.IllegalFlagValueError, match=match):
            FLAGS(["train.py", *argv])


def test_svhn_resnet50_under_tfds_mock_data(tmp_path, capsys):
    """The issue's command: svhn + resnet50, one epoch on 256 examples."""
    with tfds.testing.mock_data(num_examples=256):
        with flagsaver.flagsaver(
            dataset="svhn", backbone="resnet50", epochs=1, max_train_examples=256,
            max_test_examples=16, eval_samples=2, model_dir=str(tmp_path / "svhn"),
            verbose=0,
        ):
            train.main(["train.py"])
    metrics = json.loads((tmp_path / "svhn" / "metrics.json").read_text())
    assert metrics["backbone"] == "resnet50" and metrics["dataset"] == "svhn"
    assert len(metrics["history"]["loss"]) == 1
    assert np.isfinite(metrics["history"]["loss"][0])
    assert "Test accuracy of the N=2-sample ensemble" in capsys.readouterr().out


def test_svhn_offline_fails_with_clear_message(tmp_path):
    with flagsaver.flagsaver(dataset="svhn", backbone="resnet50", epochs=1,
                             max_train_examples=256, data_dir=str(tmp_path),
                             model_dir=str(tmp_path / "svhn")):
        with pytest.raises(SystemExit) as info:
            train.main(["train.py"])
    message = str(info.value)
    assert "train_32x32.mat" in message and "--data_dir" in message
