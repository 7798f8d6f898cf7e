"""A suite run in pieces: stage selection, fresh machines, weights or stages that changed."""

import copy
import json
import os
import shutil

import pytest

from rls_tf.reproduction import runner
from rls_tf.reproduction import suites


def _three_run_data():
    """Train a, b, c (c warm-starts from b); evaluate e1 on a and b, e2 on c (as JSON)."""
    data = copy.deepcopy(suites.SUITES["smoke"])
    plain, rls = data["train"]
    data["train"] = [dict(plain, name="a"), dict(rls, name="b"),
                     dict(rls, name="c", init_from="b")]
    first = data["evaluate"][0]
    data["evaluate"] = [dict(first, name="e1", models={"plain": "a", "rls": "b"}),
                        dict(first, name="e2", models={"rls": "c"})]
    return data


def _three_run_suite():
    return suites.Suite.from_json(_three_run_data())


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
    monkeypatch.setattr(runner, "_eval_stage", lambda *a, **k: True)
    lines = []
    runner.reproduce(suite, out, log=lines.append, stages=["e2"])
    assert trained == ["b", "c"]
    assert f"  retrained b: {said}" in lines
    with open(os.path.join(out, "stages", "train-b.json"), encoding="utf-8") as f:
        record = json.load(f)
    assert record["fingerprint"] == again and record["previous"]["fingerprint"] == "f1"


# -- stage specs: a stage that changed under its name is redone, never mixed ------------

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _stage(suite, kind, name):
    return next(stage for stage, _ in runner.plan(suite, "/nonexistent") if
                stage.kind == kind and stage.name == name)


def _edited(edit):
    data = _three_run_data()
    edit(data)
    return suites.Suite.from_json(data)


def test_spec_hash_follows_what_a_stage_computes():
    base = _edited(lambda d: None)
    hashes = {kind_name: runner.spec_hash(base, _stage(base, *kind_name))
              for kind_name in (("train", "a"), ("train", "b"), ("train", "c"),
                                ("evaluate", "e1"), ("evaluate", "e2"))}

    def changed(edit):
        suite = _edited(edit)
        return {k for k, v in hashes.items()
                if runner.spec_hash(suite, _stage(suite, *k)) != v}

    # An estimate is not what a stage computes.
    assert changed(lambda d: d["train"][1].update(estimate_s=1e6)) == set()
    assert changed(lambda d: d["evaluate"][0].update(estimate_s=1e6)) == set()
    # A recipe change reaches the run, what warm-starts from it and what evaluates them.
    assert changed(lambda d: d["train"][1]["options"].update(epochs=2)) == {
        ("train", "b"), ("train", "c"), ("evaluate", "e1"), ("evaluate", "e2")}
    assert changed(lambda d: d["train"][0].update(backbone="resnet9")) == {
        ("train", "a"), ("evaluate", "e1")}
    assert changed(lambda d: d["evaluate"][1].update(num_examples=4)) == {("evaluate", "e2")}
    assert changed(lambda d: d["evaluate"][0].update(attacks=["fgsm"])) == {("evaluate", "e1")}
    assert changed(lambda d: d["evaluate"][0].update(revision=1)) == {("evaluate", "e1")}


def _write(out, key, **fields):
    os.makedirs(os.path.join(out, "stages"), exist_ok=True)
    with open(os.path.join(out, "stages", f"{key}.json"), "w", encoding="utf-8") as f:
        json.dump({"stage": key, "seconds": 1.0, "estimate_s": 1.0, **fields}, f)


def test_records_without_a_spec_count_only_for_unrevised_stages(tmp_path):
    out = str(tmp_path)
    for key in ("train-a", "train-b", "train-c", "evaluate-e1", "evaluate-e2"):
        _write(out, key)  # records from before specs were recorded
    for name in "abc":
        _weights(out, name)
    assert set(_statuses(_edited(lambda d: None), out).values()) == {"done", "todo"}
    revised = _edited(lambda d: (d["train"][0].update(revision=1),
                                 d["evaluate"][0].update(revision=1)))
    assert _statuses(revised, out) == {
        "train-a": "changed", "train-b": "done", "train-c": "done", "evaluate-e1": "changed",
        "evaluate-e2": "done", "report-smoke": "todo"}


def test_records_of_another_spec_are_changed(tmp_path):
    out = str(tmp_path)
    suite = _edited(lambda d: None)
    for kind, name in (("train", "a"), ("train", "b"), ("train", "c"), ("evaluate", "e1"),
                       ("evaluate", "e2")):
        _write(out, f"{kind}-{name}", spec=runner.spec_hash(suite, _stage(suite, kind, name)))
    for name in "abc":
        _weights(out, name)
    assert set(_statuses(suite, out).values()) == {"done", "todo"}
    longer = _edited(lambda d: d["train"][1]["options"].update(epochs=2))
    assert _statuses(longer, out) == {
        "train-a": "done", "train-b": "changed", "train-c": "changed", "evaluate-e1": "changed",
        "evaluate-e2": "changed", "report-smoke": "todo"}
    # Selecting e2 leaves a (and e1) alone.
    assert _statuses(longer, out, stages=["e2"])["evaluate-e1"] == "skip"


def test_a_changed_stage_moves_its_old_outputs_aside_and_records_its_spec(tmp_path,
                                                                         monkeypatch):
    out = str(tmp_path)
    suite = _edited(lambda d: None)
    for kind, name in (("train", "a"), ("train", "b"), ("train", "c"), ("evaluate", "e1"),
                       ("evaluate", "e2")):
        _write(out, f"{kind}-{name}", spec=runner.spec_hash(suite, _stage(suite, kind, name)),
               fingerprint="old")
    for name in "abc":
        _weights(out, name, b"old weights")
    os.makedirs(os.path.join(out, "eval", "e1"))
    for name in ("shard-0-of-2.json", "results.json"):
        with open(os.path.join(out, "eval", "e1", name), "w", encoding="utf-8") as f:
            f.write("{}")
    changed = _edited(lambda d: d["train"][0]["options"].update(epochs=2))
    seen = {}

    def fake_train(stage, output_dir, data_dir):
        # train.py would resume from (or refuse) the old run's checkpoints: they are gone.
        seen[stage.name] = os.path.exists(os.path.join(output_dir, "runs", stage.name))
        _weights(output_dir, stage.name, b"new weights")
        return {"fingerprint": "new"}

    def fake_eval(stage, suite_, output_dir, data_dir, log):
        seen[stage.name] = sorted(os.listdir(os.path.join(output_dir, "eval", stage.name)))
        return True  # every shard written here

    monkeypatch.setattr(runner, "_train_stage", fake_train)
    monkeypatch.setattr(runner, "_eval_stage", fake_eval)
    monkeypatch.setattr("rls_tf.reproduction.report.write_report", lambda *a: None)
    lines = []
    runner.reproduce(changed, out, log=lines.append)
    assert seen["a"] is False
    stale_runs = [n for n in os.listdir(os.path.join(out, "runs")) if n.startswith("a.stale-")]
    assert len(stale_runs) == 1
    with open(os.path.join(out, "runs", stale_runs[0], "model.keras"), "rb") as f:
        assert f.read() == b"old weights"
    # The old shard and results of e1 are not resumed nor merged: moved aside.
    assert len(seen["e1"]) == 1 and seen["e1"][0].startswith("stale-")
    assert sorted(os.listdir(os.path.join(out, "eval", "e1", seen["e1"][0]))) == [
        "results.json", "shard-0-of-2.json"]
    assert "b" not in seen and "e2" not in seen  # unchanged: done
    for kind, name in (("train", "a"), ("evaluate", "e1")):
        state, record = runner.record_state(changed, out, _stage(changed, kind, name))
        assert state == "current"
        assert record["spec"] == runner.spec_hash(changed, _stage(changed, kind, name))
        # The old record is kept aside, and the new one names it.
        (path,) = record["superseded"]
        assert path.startswith(os.path.join("stages", "superseded", f"{kind}-{name}-"))
        with open(os.path.join(out, path), encoding="utf-8") as f:
            assert json.load(f)["spec"] == runner.spec_hash(suite, _stage(suite, kind, name))
    assert any("a changed since its record" in line for line in lines)


def test_a_changed_stage_interrupted_resumes_its_new_version(tmp_path, monkeypatch):
    out = str(tmp_path)
    suite = _edited(lambda d: None)
    _write(out, "train-a", spec=runner.spec_hash(suite, _stage(suite, "train", "a")))
    _weights(out, "a", b"old weights")
    changed = _edited(lambda d: d["train"][0]["options"].update(epochs=2))
    runs = []

    def killed(stage, output_dir, data_dir):
        runs.append(sorted(os.listdir(os.path.join(output_dir, "runs"))))
        _weights(output_dir, stage.name, b"half of the new training")
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_train_stage", killed)
    with pytest.raises(KeyboardInterrupt):
        runner.reproduce(changed, out, log=None, stages=["e1"])
    # Now to do, not changed: the next run resumes the new version's run directory.
    assert _statuses(changed, out)["train-a"] == "todo"
    def resumed(stage, output_dir, data_dir):
        if stage.name == "a":  # what train.py would resume from
            with open(os.path.join(output_dir, "runs", "a", "model.keras"), "rb") as f:
                runs.append(f.read())
        return {}

    monkeypatch.setattr(runner, "_train_stage", resumed)
    monkeypatch.setattr(runner, "_eval_stage", lambda *a, **k: True)
    monkeypatch.setattr("rls_tf.reproduction.report.write_report", lambda *a: None)
    runner.reproduce(changed, out, log=None, stages=["e1"])
    # When the first attempt started, runs/ held only the old version's run, set aside.
    assert len(runs[0]) == 1 and runs[0][0].startswith("a.stale-")
    assert runs[1] == b"half of the new training"
    with open(os.path.join(out, "stages", "train-a.json"), encoding="utf-8") as f:
        assert len(json.load(f)["superseded"]) == 1


def test_records_without_a_spec_get_the_current_one_at_the_next_run(tmp_path, monkeypatch):
    out = str(tmp_path)
    suite = _edited(lambda d: None)
    for key in ("train-a", "train-b", "train-c", "evaluate-e1", "evaluate-e2"):
        _write(out, key)
    monkeypatch.setattr("rls_tf.reproduction.report.write_report", lambda *a: None)
    runner.reproduce(suite, out, log=None)
    for kind, name in (("train", "a"), ("evaluate", "e2")):
        state, record = runner.record_state(suite, out, _stage(suite, kind, name))
        assert state == "current" and record["spec"] == runner.spec_hash(
            suite, _stage(suite, kind, name)) and "spec_adopted" in record
    # From now on an edit of the stage is seen.
    longer = _edited(lambda d: d["train"][0]["options"].update(epochs=2))
    assert _statuses(longer, out)["train-a"] == "changed"


def test_the_committed_cpu_records_keep_mnist_and_redo_the_old_cifar10(tmp_path):
    # The records of docs/reproduction/cpu predate specs: the MNIST stages are
    # unchanged (revision 0), the small_cnn CIFAR-10 stages were replaced under the
    # same names (revision 1) and must not count as the new ones.
    # As the rerun proceeds, records of the new stages are committed too: those
    # carry their spec and count as done (redo here, whose copy has no weights).
    out = str(tmp_path)
    stages = os.path.join(REPO_ROOT, "docs", "reproduction", "cpu", "stages")
    shutil.copytree(stages, os.path.join(out, "stages"))
    got = _statuses("cpu", out)
    for key, status in got.items():
        path = os.path.join(stages, f"{key}.json")
        record = None
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                record = json.load(f)
        if key.startswith(("train-mnist", "evaluate-mnist")):
            assert status == "done", key
        elif record is not None and "spec" not in record:
            assert status == "changed", key  # an old small_cnn record under this name
        elif record is not None:
            assert status in ("done", "redo"), key  # a record of the new stage
        else:
            assert status == "todo", key
