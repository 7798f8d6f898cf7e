"""A suite run in pieces: stage selection, fresh machines, weights that changed."""

import copy
import json
import os

import pytest

from rls_tf.reproduction import runner
from rls_tf.reproduction import suites


def _three_run_suite():
    """Train a, b, c (c warm-starts from b); evaluate e1 on a and b, e2 on c."""
    data = copy.deepcopy(suites.SUITES["smoke"])
    plain, rls = data["train"]
    data["train"] = [dict(plain, name="a"), dict(rls, name="b"),
                     dict(rls, name="c", init_from="b")]
    first = data["evaluate"][0]
    data["evaluate"] = [dict(first, name="e1", models={"plain": "a", "rls": "b"}),
                        dict(first, name="e2", models={"rls": "c"})]
    return suites.Suite.from_json(data)


def _record(out, key):
    os.makedirs(os.path.join(out, "stages"), exist_ok=True)
    with open(os.path.join(out, "stages", f"{key}.json"), "w", encoding="utf-8") as f:
        json.dump({"stage": key, "seconds": 1.0, "estimate_s": 1.0}, f)


def _weights(out, name, content=b"weights"):
    os.makedirs(os.path.join(out, "runs", name), exist_ok=True)
    with open(os.path.join(out, "runs", name, "model.keras"), "wb") as f:
        f.write(content)


def _statuses(suite, out, stages=None):
    return {stage.key: status for stage, status in runner.plan(suite, out, stages=stages)}


def test_a_fresh_run_has_everything_to_do(tmp_path):
    assert set(_statuses(_three_run_suite(), str(tmp_path)).values()) == {"todo"}


def test_selected_stages_run_with_only_the_training_they_need(tmp_path):
    got = _statuses(_three_run_suite(), str(tmp_path), stages=["e2"])
    # c warm-starts from b, so e2 needs both; a serves only e1.
    assert got == {"train-a": "skip", "train-b": "todo", "train-c": "todo",
                   "evaluate-e1": "skip", "evaluate-e2": "todo", "report-smoke": "todo"}


def test_on_a_fresh_machine_finished_evaluations_need_no_weights(tmp_path):
    out = str(tmp_path)
    suite = _three_run_suite()
    for key in ("train-a", "train-b", "train-c", "evaluate-e1"):
        _record(out, key)
    # No runs/ at all (a fresh machine): e1 is done, so a needs nothing; e2 is not,
    # so c and its warm start b are trained again.
    assert _statuses(suite, out) == {
        "train-a": "done", "train-b": "redo", "train-c": "redo", "evaluate-e1": "done",
        "evaluate-e2": "todo", "report-smoke": "todo"}
    _weights(out, "b")
    _weights(out, "c")
    assert _statuses(suite, out)["train-c"] == "done"
    _record(out, "evaluate-e2")
    os.remove(os.path.join(out, "runs", "c", "model.keras"))
    assert set(_statuses(suite, out).values()) == {"done", "todo"}


def test_unknown_stage_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"Received: stages=\['e3'\]. Expected some of "
                                         r"\['e1', 'e2'\]"):
        runner.plan(_three_run_suite(), str(tmp_path), stages=["e3"])
    with pytest.raises(ValueError, match="Received: stages=\\[\\]"):
        runner.plan(_three_run_suite(), str(tmp_path), stages=[])


def test_fingerprint_is_of_the_bytes(tmp_path):
    _weights(str(tmp_path), "a", b"one")
    _weights(str(tmp_path), "b", b"one")
    _weights(str(tmp_path), "c", b"two")
    prints = [runner.fingerprint(os.path.join(tmp_path, "runs", n, "model.keras"))
              for n in "abc"]
    assert prints[0] == prints[1] != prints[2] and len(prints[0]) == 16
    assert runner.fingerprint(os.path.join(tmp_path, "nothing")) is None


def test_fingerprint_of_a_keras_file_is_of_its_weights_only(tmp_path):
    import keras  # pylint: disable=import-outside-toplevel

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    first, second = str(tmp_path / "a.keras"), str(tmp_path / "b.keras")
    model.save(first)
    model.save(second)  # another save date in metadata.json
    assert runner.fingerprint(first) == runner.fingerprint(second)
    model.layers[0].kernel.assign(model.layers[0].kernel + 1.0)
    model.save(second)
    assert runner.fingerprint(first) != runner.fingerprint(second)


def test_shards_of_other_weights_are_moved_aside(tmp_path):
    out = str(tmp_path / "eval")
    dirs = {"rls": str(tmp_path / "runs" / "c")}
    _weights(str(tmp_path), "c", b"first training")
    lines = []
    runner._check_weights(out, dirs, lines.append)  # pylint: disable=protected-access
    with open(os.path.join(out, "shard-0-of-2.json"), "w", encoding="utf-8") as f:
        f.write("{}")
    # Same weights: the shard stays.
    runner._check_weights(out, dirs, lines.append)  # pylint: disable=protected-access
    assert os.path.isfile(os.path.join(out, "shard-0-of-2.json")) and not lines
    # Retrained (another machine): the shard is moved aside, never merged with new ones.
    _weights(str(tmp_path), "c", b"second training")
    runner._check_weights(out, dirs, lines.append)  # pylint: disable=protected-access
    assert not os.path.exists(os.path.join(out, "shard-0-of-2.json"))
    stale = [n for n in os.listdir(out) if n.startswith("stale-")]
    assert len(stale) == 1
    assert sorted(os.listdir(os.path.join(out, stale[0]))) == ["models.json",
                                                               "shard-0-of-2.json"]
    assert len(lines) == 1 and "weights of rls changed" in lines[0] and stale[0] in lines[0]
    with open(os.path.join(out, "models.json"), encoding="utf-8") as f:
        assert json.load(f) == {"rls": runner.fingerprint(
            os.path.join(dirs["rls"], "model.keras"))}


@pytest.mark.parametrize("again, said", [("f1", "the same weights as its earlier record"),
                                         ("f2", "other weights than its earlier record (f1 -> f2)")])
def test_a_retrained_stage_says_whether_its_weights_repeat(tmp_path, monkeypatch, again, said):
    out = str(tmp_path)
    suite = _three_run_suite()
    for key in ("train-a", "train-b", "evaluate-e1"):
        _record(out, key)
    with open(os.path.join(out, "stages", "train-b.json"), "w", encoding="utf-8") as f:
        json.dump({"stage": "train-b", "seconds": 1.0, "estimate_s": 1.0,
                   "fingerprint": "f1"}, f)
    trained = []

    def fake_train(stage, output_dir, data_dir):
        trained.append(stage.name)
        return {"fingerprint": again if stage.name == "b" else "fc"}

    monkeypatch.setattr(runner, "_train_stage", fake_train)
    monkeypatch.setattr(runner, "_eval_stage", lambda *a, **k: None)
    lines = []
    runner.reproduce(suite, out, log=lines.append, stages=["e2"])
    assert trained == ["b", "c"]
    assert f"  retrained b: {said}" in lines
    with open(os.path.join(out, "stages", "train-b.json"), encoding="utf-8") as f:
        record = json.load(f)
    assert record["fingerprint"] == again and record["previous"]["fingerprint"] == "f1"
