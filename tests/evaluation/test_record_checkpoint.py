"""An interrupted shard resumes from its finished records and equals an uninterrupted one."""

import dataclasses
import json
import os

import pytest

from rls_tf.evaluation import record_checkpoint
from rls_tf.evaluation import report
from rls_tf.evaluation import runner
from rls_tf.evaluation import shards
from rls_tf.evaluation.record_checkpoint import RecordCheckpoint

from tests.evaluation.conftest import toy_images
from tests.evaluation.test_shards import _config


class _Interrupted(Exception):
    pass


def _roundtrip(payload):
    return json.loads(json.dumps(report.clean_json(payload)))


def _without_time(payload):
    out = {k: v for k, v in payload.items() if k not in ("timings", "environment")}
    out["robust"] = [{k: v for k, v in r.items() if k != "seconds"} for r in payload["robust"]]
    return out


def _config_eot():
    # Paper (pinned draws), transfer (the surrogate cache), eot with its seeded
    # EOT draws: the record kinds a resume must reproduce.
    return _config(attacks=("fgsm", "pgd", "apgd"), threat_models=("paper", "eot", "transfer"))


def test_a_resumed_shard_equals_an_uninterrupted_one(micro_models, tmp_path, monkeypatch):
    x, y = toy_images(9, size=8, seed=21)
    config = _config_eot()
    whole = _roundtrip(shards.run_shard(micro_models, x, y, config, 2, 1, log=None))

    # Interrupted after 5 records (a kill between two records).
    put = RecordCheckpoint.put
    calls = []

    def put_then_stop(self, key, record):
        put(self, key, record)
        calls.append(key)
        if len(calls) == 5:
            raise _Interrupted

    monkeypatch.setattr(RecordCheckpoint, "put", put_then_stop)
    with pytest.raises(_Interrupted):
        shards.run_shard(micro_models, x, y, config, 2, 1, log=None, checkpoint_dir=tmp_path)
    monkeypatch.setattr(RecordCheckpoint, "put", put)
    partial = tmp_path / record_checkpoint.partial_file_name(1, 2)
    assert len(json.loads(partial.read_text())["records"]) == 5

    lines, crafted = [], []
    craft = runner.Evaluation._craft

    def counted(self, *args, **kwargs):
        crafted.append(1)
        return craft(self, *args, **kwargs)

    monkeypatch.setattr(runner.Evaluation, "_craft", counted)
    resumed = _roundtrip(shards.run_shard(micro_models, x, y, config, 2, 1, log=lines.append,
                                          checkpoint_dir=tmp_path))
    assert any("resuming: 5 finished record(s)" in line for line in lines)
    assert _without_time(resumed) == _without_time(whole)
    # The kept records were not recomputed; every record is in the file now.
    assert len(crafted) == len(whole["robust"]) - 5
    assert len(json.loads(partial.read_text())["records"]) == len(whole["robust"])


def test_another_evaluation_moves_the_file_aside(micro_models, tmp_path):
    x, y = toy_images(6, size=8, seed=21)
    config = _config_eot()
    shards.run_shard(micro_models, x, y, config, 2, 0, log=None, checkpoint_dir=tmp_path)
    lines = []
    shards.run_shard(micro_models, x, y, _config(seed=8, attacks=("fgsm",),
                                                 threat_models=("paper",)),
                     2, 0, log=lines.append, checkpoint_dir=tmp_path)
    assert any("another evaluation" in line for line in lines)
    names = sorted(os.listdir(tmp_path))
    assert names[0] == "partial-shard-0-of-2.json"
    assert names[1].startswith("partial-shard-0-of-2.stale-") and names[1].endswith(".json")


def test_a_checkpoint_needs_the_per_example_data(micro_models, tmp_path):
    x, y = toy_images(3, size=8)
    with pytest.raises(ValueError, match="keep_examples must be True"):
        runner.run_evaluation(micro_models, x, y, _config(), log=None,
                              checkpoint=RecordCheckpoint(str(tmp_path / "p.json"), {}))


def test_a_shorter_run_list_keeps_the_shared_records(micro_models, tmp_path, monkeypatch):
    """Dropping an attack (or restricting a threat model) resumes; the kept records match."""
    x, y = toy_images(6, size=8, seed=21)
    full = _roundtrip(shards.run_shard(micro_models, x, y, _config_eot(), 2, 0, log=None,
                                       checkpoint_dir=tmp_path))
    shorter = dataclasses.replace(_config_eot(), attacks=("fgsm", "pgd"),
                                  threat_model_attacks={"transfer": ("fgsm",)})
    crafted = []
    craft = runner.Evaluation._craft
    monkeypatch.setattr(runner.Evaluation, "_craft",
                        lambda self, *a, **k: crafted.append(1) or craft(self, *a, **k))
    lines = []
    resumed = _roundtrip(shards.run_shard(micro_models, x, y, shorter, 2, 0, log=lines.append,
                                          checkpoint_dir=tmp_path))
    assert any("resuming:" in line for line in lines)
    assert not crafted  # every record of the shorter list was in the file
    kept = {(r["threat_model"], r["attack"], r["param"], r["model"]): r["accuracy"]
            for r in full["robust"]}
    assert {(r["threat_model_name"], r["attack"]) for r in resumed["robust"]} == {
        ("paper", "fgsm"), ("paper", "pgd"), ("eot", "fgsm"), ("eot", "pgd"),
        ("transfer", "fgsm")}
    for r in resumed["robust"]:
        assert r["accuracy"] == kept[(r["threat_model"], r["attack"], r["param"], r["model"])]
    assert os.listdir(tmp_path) == [record_checkpoint.partial_file_name(0, 2)]  # none stale
