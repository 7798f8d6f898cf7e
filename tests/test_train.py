"""Tests of the train command (`train.py`, ``rls-train``: `rls_tf.cli.train`) on tiny data.

Also the resume machinery it relies on: rotated checkpoints, the fallback to
the previous epoch when the latest checkpoint is damaged (`rls_tf.callbacks`),
and clean one-line errors for damaged data files.
"""

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
from tests.synthetic_data import truncate
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
    """The issue's command: svhn + resnet50 (M=2, K=3), one step of 16 examples.

    Tracing ResNet-50's K-path training step is most of the cost; the data
    are kept to one small batch (the CI budget), the model is the real one.
    """
    with tfds.testing.mock_data(num_examples=32):
        with flagsaver.flagsaver(
            dataset="svhn", backbone="resnet50", epochs=1, max_train_examples=16,
            batch_size=16, max_test_examples=4, eval_samples=2,
            model_dir=str(tmp_path / "svhn"), verbose=0,
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


# --- Damaged checkpoints and data ----------------------------------------------


def _tiny_run(tmp_path, epochs, **overrides):
    """Trains small_cnn for `epochs` epochs of two steps; returns the model_dir."""
    data_dir = tmp_path / "data"
    if not data_dir.exists():
        data_dir.mkdir()
        write_quadrant_mnist(data_dir, n_train=64, n_test=16)
    model_dir = tmp_path / "run"
    settings = dict(dataset="mnist", backbone="small_cnn", data_dir=str(data_dir),
                    model_dir=str(model_dir), epochs=epochs, batch_size=32,
                    eval_samples=2, verbose=0, seed=0)
    settings.update(overrides)
    with flagsaver.flagsaver(**settings):
        train.main(["train.py"])
    return model_dir


def test_truncated_latest_checkpoint_falls_back_to_previous(tmp_path, capsys):
    model_dir = _tiny_run(tmp_path, epochs=2)
    checkpoints = model_dir / "checkpoints"
    state = json.loads((checkpoints / "latest_state.json").read_text())
    assert state["epoch"] == 2 and state["previous"]["epoch"] == 1
    assert state["previous"]["checkpoint"] == "previous.keras"
    assert len(state["previous"]["history"]["loss"]) == 1
    assert (checkpoints / "previous.keras").is_file()
    loss_epoch_1 = state["history"]["loss"][:1]
    capsys.readouterr()

    truncate(checkpoints / "latest.keras")
    _tiny_run(tmp_path, epochs=3)
    captured = capsys.readouterr()
    # The warning names the damaged file and the lost epoch.
    assert f"{checkpoints}/latest.keras (epoch 2: not a complete .keras zip file" in captured.err
    assert "The training of epoch(s) 2 is lost" in captured.err
    assert f"Resuming from {checkpoints}/previous.keras: 1 of 3 epochs done." in captured.out
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert len(metrics["history"]["loss"]) == 3
    assert metrics["history"]["loss"][:1] == loss_epoch_1
    # The rotation went on from the good checkpoint: epochs 3 and 2 are kept.
    state = json.loads((checkpoints / "latest_state.json").read_text())
    assert (state["epoch"], state["previous"]["epoch"]) == (3, 2)
    assert not [p for p in os.listdir(checkpoints) if p.startswith(".tmp-")]


def test_no_usable_checkpoint_refuses_to_start_over(tmp_path):
    model_dir = _tiny_run(tmp_path, epochs=2)
    checkpoints = model_dir / "checkpoints"
    truncate(checkpoints / "latest.keras")
    truncate(checkpoints / "previous.keras", keep=0.0)
    before = (model_dir / "metrics.json").read_bytes()
    with pytest.raises(SystemExit) as info:
        _tiny_run(tmp_path, epochs=3)
    message = str(info.value)
    assert message.startswith("rls-train: error: Cannot resume") and "\n" not in message
    assert f"{checkpoints}/latest.keras (epoch 2:" in message
    assert f"{checkpoints}/previous.keras (epoch 1:" in message
    assert f"delete {checkpoints} to train from scratch" in message
    # Nothing of the run was touched.
    assert (model_dir / "metrics.json").read_bytes() == before
    assert os.path.getsize(checkpoints / "previous.keras") == 0


def test_checkpoint_files_without_state_refuse_to_start_over(tmp_path):
    model_dir = _tiny_run(tmp_path, epochs=1)
    os.remove(model_dir / "checkpoints" / "latest_state.json")
    with pytest.raises(SystemExit, match=r"latest\.keras but no latest_state\.json"):
        _tiny_run(tmp_path, epochs=2)


def _tiny_keras_fit(directory, epochs, resumed=None, initial_epoch=0, model=None):
    import keras  # pylint: disable=import-outside-toplevel

    from rls_tf.callbacks import AtomicCheckpoint  # pylint: disable=import-outside-toplevel

    if model is None:
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(optimizer="sgd", loss="mse")
    history = resumed.state["history"] if resumed is not None else None
    checkpointer = AtomicCheckpoint(str(directory), history=history, resumed=resumed)
    x, y = np.ones((8, 3), "float32"), np.zeros((8, 2), "float32")
    model.fit(x, y, epochs=epochs, initial_epoch=initial_epoch, verbose=0,
              callbacks=[checkpointer])
    return model


def test_crash_between_rotation_and_state_resumes_the_committed_epoch(tmp_path):
    from rls_tf import callbacks  # pylint: disable=import-outside-toplevel

    _tiny_keras_fit(tmp_path, epochs=3)
    latest, previous = tmp_path / "latest.keras", tmp_path / "previous.keras"
    # Killed right after latest.keras (epoch 3) was renamed to previous.keras.
    os.replace(latest, previous)
    found = callbacks.find_checkpoints(str(tmp_path))
    assert (found[0].epoch, found[0].path, found[0].problem) == (3, str(previous), None)
    assert found[1].problem is not None  # epoch 2's file is gone
    model, checkpoint = callbacks.restore_checkpoint(str(tmp_path), warn=pytest.fail)
    assert checkpoint.epoch == 3
    # Killed after the next epoch's model became latest.keras, before its state.
    _tiny_keras_fit(tmp_path, epochs=4, resumed=checkpoint, initial_epoch=3, model=model)
    state = json.loads((tmp_path / "latest_state.json").read_text())
    assert (state["epoch"], state["previous"]["epoch"]) == (4, 3)
    callbacks.write_json_atomic(str(tmp_path / "latest_state.json"),
                                {**state["previous"], "checkpoint": "latest.keras",
                                 "previous": None})
    _, checkpoint = callbacks.restore_checkpoint(str(tmp_path), warn=pytest.fail)
    assert (checkpoint.epoch, checkpoint.path) == (3, str(previous))


def test_a_checkpoint_keras_cannot_load_falls_back(tmp_path):
    import keras  # pylint: disable=import-outside-toplevel

    from rls_tf import callbacks  # pylint: disable=import-outside-toplevel

    _tiny_keras_fit(tmp_path, epochs=2)

    def load(path):
        if path.endswith("latest.keras"):
            raise OSError("Unable to synchronously open object (bad heap)")
        return keras.models.load_model(path)

    warnings = []
    _, checkpoint = callbacks.restore_checkpoint(str(tmp_path), load=load,
                                                 warn=warnings.append)
    assert checkpoint.epoch == 1 and checkpoint.path.endswith("previous.keras")
    assert len(warnings) == 1 and "Keras cannot load it: OSError" in warnings[0]
    with pytest.raises(callbacks.CheckpointError, match="no checkpoint .* is usable"):
        callbacks.restore_checkpoint(str(tmp_path), load=lambda path: 1 / 0)
    # An unreadable state file is a clear error too.
    (tmp_path / "latest_state.json").write_text('{"epoch": 2, "checkp')
    with pytest.raises(callbacks.CheckpointError, match="Unreadable checkpoint state"):
        callbacks.latest_checkpoint(str(tmp_path))


def test_truncated_mnist_file_is_one_error_line(tmp_path):
    data_dir = write_quadrant_mnist(tmp_path, n_train=64, n_test=16, file_format="idx")
    damaged = os.path.join(data_dir, "train-images-idx3-ubyte.gz")
    truncate(damaged)
    with flagsaver.flagsaver(dataset="mnist", backbone="small_cnn", data_dir=data_dir,
                             model_dir=str(tmp_path / "run"), epochs=1, verbose=0):
        with pytest.raises(SystemExit) as info:
            train.main(["train.py"])
    message = str(info.value)
    assert "\n" not in message and damaged in message
    assert "Truncated or damaged" in message and "Delete it and download it again" in message


def test_train_py_truncated_data_file_without_traceback(tmp_path):
    data_dir = write_quadrant_mnist(tmp_path, n_train=64, n_test=16, file_format="idx")
    damaged = os.path.join(data_dir, "train-images-idx3-ubyte.gz")
    truncate(damaged)
    result = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "train.py"), "--dataset=mnist",
         "--backbone=small_cnn", f"--data_dir={data_dir}",
         f"--model_dir={tmp_path / 'run'}", "--epochs=1"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "EOFError" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"train.py: error: Truncated or damaged gzip-compressed IDX file "
                           f"{damaged}"), result.stderr[-3000:]


def test_help_lists_the_shared_and_own_flags():
    # What `rls-train --help` runs (the console script is rls_tf.cli.train:run).
    code = ("import sys; from rls_tf.cli.train import run; "
            "sys.argv = ['rls-train', '--help']; run()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO_ROOT, timeout=300)
    # (absl's --help exits with status 1 after printing.)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for flag, default in (("--batch_size", "128"), ("--model_dir", "runs/rls"),
                          ("--dataset", "mnist"), ("--backbone", "resnet50")):
        assert flag in result.stdout
        assert f"(default: '{default}')" in result.stdout.split(flag, 1)[1][:400]
