"""Shard claims: two runs of one suite share a sharded stage instead of repeating it."""

import json
import os
import socket
import subprocess
import sys
import types

import pytest

from rls_tf.reproduction import claims
from rls_tf.reproduction import runner

SHARD = "shard-1-of-3.json"


def _write_claim(folder, pid, **owner):
    path = os.path.join(folder, SHARD.replace(".json", ".claim"))
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"pid": pid, "host": socket.gethostname(), "boot": claims._boot_id(),
                   **owner}, f)
    return path


@pytest.fixture
def other_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_claim_is_held_while_the_block_runs_and_removed_after(tmp_path):
    folder = str(tmp_path)
    path = os.path.join(folder, "shard-1-of-3.claim")
    with claims.claim(folder, SHARD) as mine:
        assert mine and os.path.isfile(path)
        with open(path, encoding="utf-8") as f:
            assert json.load(f)["pid"] == os.getpid()
        assert not claims.held_elsewhere(folder, SHARD)  # its own claim
    assert not os.path.exists(path)
    with pytest.raises(RuntimeError):
        with claims.claim(folder, SHARD):
            raise RuntimeError("the shard failed")
    assert not os.path.exists(path)


def test_a_live_process_claim_is_respected(tmp_path, other_process):
    folder = str(tmp_path)
    path = _write_claim(folder, other_process)
    assert claims.held_elsewhere(folder, SHARD)
    with claims.claim(folder, SHARD) as mine:
        assert not mine
    with open(path, encoding="utf-8") as f:
        assert json.load(f)["pid"] == other_process  # left to its owner


@pytest.mark.parametrize("owner", ["dead", "other boot", "other host", "garbled"])
def test_a_stale_claim_is_taken_over(tmp_path, other_process, owner):
    folder = str(tmp_path)
    if owner == "dead":
        _write_claim(folder, _dead_pid())
    elif owner == "other boot":  # the pid may be reused after a restart
        _write_claim(folder, other_process, boot="an-earlier-boot")
    elif owner == "other host":
        _write_claim(folder, other_process, host="another-machine")
    else:
        with open(os.path.join(folder, "shard-1-of-3.claim"), "w", encoding="utf-8") as f:
            f.write("{not json")
    assert not claims.held_elsewhere(folder, SHARD)
    with claims.claim(folder, SHARD) as mine:
        assert mine


def _fake_stage(num_shards):
    spec = types.SimpleNamespace(name="st", models={"plain": "run_plain"}, options={},
                                 attacks=["fgsm"], threat_models=["paper"], num_examples=6,
                                 preset_overrides={}, num_shards=num_shards)
    suite = types.SimpleNamespace(name="fake", dataset_of=lambda s: "mnist")
    return types.SimpleNamespace(spec=spec), suite


@pytest.fixture
def fake_evaluation(monkeypatch):
    from rls_tf.evaluation import api  # pylint: disable=import-outside-toplevel
    from rls_tf.evaluation import shards  # pylint: disable=import-outside-toplevel
    done = {"shards": [], "merged": 0}

    def evaluate_dirs(dirs, num_shards, shard_index, output_dir, **kwargs):
        del dirs, kwargs
        done["shards"].append(shard_index)
        with open(os.path.join(output_dir, shards.shard_file_name(shard_index, num_shards)),
                  "w", encoding="utf-8") as f:
            f.write("{}")

    def merge_dir(out, log=None):
        del out, log
        done["merged"] += 1

    monkeypatch.setattr(api, "evaluate_dirs", evaluate_dirs)
    monkeypatch.setattr(api, "merge_dir", merge_dir)
    monkeypatch.setattr(runner, "_check_weights", lambda out, dirs, log: None)
    return done


def test_a_run_skips_the_shard_another_run_holds_and_leaves_it_the_merge(
        tmp_path, other_process, fake_evaluation):
    stage, suite = _fake_stage(3)
    out = os.path.join(str(tmp_path), "eval", "st")
    os.makedirs(out)
    _write_claim(out, other_process)  # the second shard is another live run's
    lines = []
    assert not runner._eval_stage(stage, suite, str(tmp_path), None, lines.append)
    assert fake_evaluation == {"shards": [0, 2], "merged": 0}
    # The log names the shard as its file does (0-based), like `evaluate_dirs`' own.
    assert "  shard-1-of-3.json: another run is computing it" in lines
    assert any(line.startswith("  shard-1-of-3.json: another run's;") for line in lines)
    # That run writes its shard and merges; a later run finds everything done.
    os.remove(os.path.join(out, "shard-1-of-3.claim"))
    with open(os.path.join(out, SHARD), "w", encoding="utf-8") as f:
        f.write("{}")
    assert runner._eval_stage(stage, suite, str(tmp_path), None, None)
    assert fake_evaluation == {"shards": [0, 2], "merged": 1}
    assert sorted(os.listdir(out)) == [f"shard-{i}-of-3.json" for i in range(3)]


def test_a_stale_claim_does_not_stop_the_stage(tmp_path, fake_evaluation):
    stage, suite = _fake_stage(3)
    out = os.path.join(str(tmp_path), "eval", "st")
    os.makedirs(out)
    _write_claim(out, _dead_pid())
    assert runner._eval_stage(stage, suite, str(tmp_path), None, None)
    assert fake_evaluation == {"shards": [0, 1, 2], "merged": 1}
