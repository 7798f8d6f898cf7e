"""tf.distribute training on one machine: 2 logical CPU devices, 2 local workers.

Each check runs `replica_script.py` in a fresh process (the device list is
fixed when TensorFlow starts) and reads the JSON it prints.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from rls_tf.distribute import STRATEGIES
from rls_tf.distribute import make_strategy
from rls_tf.distribute import split_cpu
from rls_tf.training import TrainConfig
from tests.synthetic_data import write_quadrant_mnist

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(HERE, "replica_script.py")


def _run(*args, logical_cpus=2, env=None, timeout=300):
    environment = {**os.environ, "RLS_LOGICAL_CPUS": str(logical_cpus), **(env or {})}
    if "TF_CONFIG" not in (env or {}):
        environment.pop("TF_CONFIG", None)
    result = subprocess.run([sys.executable, SCRIPT, *map(str, args)], cwd=REPO_ROOT,
                            env=environment, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result


def test_m1_mirrored_step_equals_single_device_step():
    out, _ = _run("one_step_m1")
    assert out["replicas"] == 2 and len(out["devices"]) == 2
    assert out["max_update"] > 1e-4, "the SGD step did not move the weights"
    # Same gradient (mean over the global batch, L2 penalty included) and
    # the same update: the loss is scaled by 1 / num_replicas_in_sync once.
    assert out["max_diff"] <= 1e-6, out


@pytest.fixture(scope="module")
def m2_runs():
    """train_m2 unseeded and seeded, in one fresh process: ``{seed: output}``."""
    out, _ = _run("train_m2_seeds", "none", "3")
    return out


@pytest.mark.parametrize("seed", ["none", "3"], ids=["unseeded", "seeded"])
def test_m2_mirrored_trains_and_replicas_draw_their_own_paths(m2_runs, seed):
    out = m2_runs[seed]
    assert out["replicas"] == 2
    loss = out["loss"]
    assert all(np.isfinite(loss)) and loss[-1] < 0.5 * loss[0], loss
    first, second = (np.array(d) for d in out["draws"])
    assert first.shape == second.shape == (6, 64)  # small_cnn: 6 RLS layers
    assert set(np.unique(first)) == {0, 1}
    # Replicas sample independently (a seeded layer folds in the replica id).
    assert (first != second).mean() > 0.2


def test_train_under_mirrored_checkpoints_and_resumes(tmp_path):
    data_dir = write_quadrant_mnist(tmp_path)
    model_dir = tmp_path / "run"
    first, _ = _run("train_py", model_dir, data_dir, 1)
    assert first["num_replicas"] == 2 and first["strategy"] == "mirrored"
    assert (model_dir / "checkpoints" / "latest.keras").is_file()
    second, result = _run("train_py", model_dir, data_dir, 2)
    assert "Resuming from" in result.stdout + result.stderr
    assert len(second["history"]["loss"]) == 2
    assert second["history"]["loss"][0] == pytest.approx(first["history"]["loss"][0])
    assert second["history"]["loss"][1] < second["history"]["loss"][0]


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_local_workers_with_tf_config(tmp_path):
    data_dir = write_quadrant_mnist(tmp_path)
    model_dir = tmp_path / "run"
    workers = [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "RLS_LOGICAL_CPUS": "1", "TF_CONFIG": json.dumps(tf_config)}
        processes.append(subprocess.Popen(
            [sys.executable, SCRIPT, "train_py", str(model_dir), data_dir, "1", "multi_worker"],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    outputs = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=300)
            assert process.returncode == 0, stderr[-3000:]
            outputs.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for process in processes:  # bounded: never leave a worker waiting on a port
            if process.poll() is None:
                process.kill()
    assert [o["num_replicas"] for o in outputs] == [2, 2]
    # Both workers ran the same synchronous steps.
    assert outputs[0]["history"]["loss"] == pytest.approx(outputs[1]["history"]["loss"])
    # Only the chief (worker 0) wrote the run's files.
    assert (model_dir / "model.keras").is_file() and (model_dir / "metrics.json").is_file()
    assert json.loads((model_dir / "metrics.json").read_text())["strategy"] == "multi_worker"


def test_bad_strategy_settings_raise(monkeypatch):
    assert STRATEGIES == ("default", "mirrored", "multi_worker", "tpu")
    with pytest.raises(ValueError, match=r"strategy.*Received: strategy='gpu'"):
        TrainConfig(dataset="mnist", backbone="small_cnn", strategy="gpu").validate()
    with pytest.raises(ValueError, match=r"tpu.*Received: tpu='local'"):
        TrainConfig(dataset="mnist", backbone="small_cnn", strategy="mirrored",
                    tpu="local").validate()
    with pytest.raises(ValueError, match="Received: strategy='gpu'"):
        make_strategy("gpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        make_strategy("multi_worker")
    with pytest.raises(ValueError, match="Received: num_devices=0"):
        split_cpu(0)
