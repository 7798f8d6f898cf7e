"""The smoke suite end to end, resume without redoing finished stages, the CLI."""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from rls_tf import training
from rls_tf.evaluation import api
from rls_tf.reproduction import reproduce
from rls_tf.reproduction import runner
from tests.synthetic_data import write_quadrant_mnist

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The smoke suite, killed after its first stage, then rerun to the end."""
    base = tmp_path_factory.mktemp("repro")
    (base / "data").mkdir()
    data_dir = write_quadrant_mnist(base / "data", n_train=64, n_test=16)
    out = str(base / "out")
    calls = {"train": [], "evaluate": []}
    real_train, real_eval = training.train, api.evaluate_dirs

    def counting_train(config):
        calls["train"].append(os.path.basename(config.model_dir))
        return real_train(config)

    def counting_eval(dirs, **kwargs):
        calls["evaluate"].append(kwargs.get("shard_index"))
        return real_eval(dirs, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(training, "train", counting_train)
    mp.setattr(api, "evaluate_dirs", counting_eval)
    lines = []
    try:
        first = reproduce("smoke", out, data_dir=str(data_dir), log=lines.append, stop_after=1)
        after_first = {k: list(v) for k, v in calls.items()}
        report = reproduce("smoke", out, data_dir=str(data_dir), log=lines.append)
        after_second = {k: list(v) for k, v in calls.items()}
        with open(report, encoding="utf-8") as f:
            text = f.read()
        again = reproduce("smoke", out, data_dir=str(data_dir), log=lines.append)
        with open(again, encoding="utf-8") as f:
            text_again = f.read()
    finally:
        mp.undo()
    return {"out": out, "first": first, "after_first": after_first,
            "after_second": after_second, "final_calls": calls, "report": text,
            "report_again": text_again, "lines": lines}


def test_stopped_run_resumes_without_redoing_finished_stages(smoke_run):
    assert smoke_run["first"] is None
    assert smoke_run["after_first"]["train"] == ["mnist_plain"]
    # The second run trains only what the first did not, evaluates both shards.
    assert smoke_run["after_second"]["train"] == ["mnist_plain", "mnist_rls"]
    assert smoke_run["after_second"]["evaluate"] == [0, 1]
    # The third run redoes nothing and writes the same report.
    assert smoke_run["final_calls"] == smoke_run["after_second"]
    assert smoke_run["report_again"] == smoke_run["report"]
    assert any("4 stages, 1 done, 3 to run" in line for line in smoke_run["lines"])
    assert any("4 stages, 3 done, 1 to run" in line for line in smoke_run["lines"])
    assert any("estimated" in line for line in smoke_run["lines"])


def test_report_and_files(smoke_run):
    out = smoke_run["out"]
    for name in ("REPORT.md", "report.json", "mnist_robustness.png",
                 "eval/mnist/results.json", "runs/mnist_rls/model.keras",
                 "stages/train-mnist_plain.json", "stages/evaluate-mnist.json"):
        assert os.path.isfile(os.path.join(out, name)), name
    text = smoke_run["report"]
    assert "# Reproduction report: suite `smoke`" in text
    assert "The paper's protocol beside the paper's numbers" in text
    assert "### Every threat model" in text and "### What holds up" in text
    data = json.load(open(os.path.join(out, "report.json"), encoding="utf-8"))
    stage = data["stages"][0]
    rows = [r for r in stage["paper_protocol"] if r["attack"] == "pgd"]
    # The preset runs Table 1's MNIST PGD eps (0.05, 0.1): each beside the paper's value.
    assert {(r["model"], r["param"], r["paper"]) for r in rows} == {
        ("plain", "eps=0.05", 68.3), ("plain", "eps=0.1", 30.8),
        ("rls", "eps=0.05", 86.4), ("rls", "eps=0.1", 62.5)}
    assert all(0.0 <= r["ours"]["mean"] <= 1.0 for r in rows)
    clean = {r["model"]: r["paper"] for r in stage["paper_protocol"] if r["attack"] == "clean"}
    assert clean == {"plain": 99.5, "rls": 99.6}
    assert set(stage["headline"]) == {"plain", "rls"}


def test_cli_plan_and_bad_suite(tmp_path):
    env = {**os.environ, "PYTHONPATH": REPO_ROOT}
    result = subprocess.run([sys.executable, "-m", "rls_tf.reproduce", "--suite=smoke",
                             "--plan", f"--output_dir={tmp_path}"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "todo  train    mnist_plain" in result.stdout
    assert "todo  report   smoke" in result.stdout


def test_cli_bad_suite_is_one_error_line(tmp_path):
    from absl import flags
    from absl.testing import flagsaver

    from rls_tf.cli import reproduce as cli

    if not flags.FLAGS.is_parsed():
        flags.FLAGS(["reproduce"])
    with flagsaver.flagsaver(suite="nope", output_dir=str(tmp_path)):
        with pytest.raises(SystemExit) as err:
            cli.main(["reproduce"])
    assert "error: Unknown suite. Received: suite='nope'" in str(err.value)


def test_plan_marks_done_stages(tmp_path):
    stages = runner.plan("smoke", str(tmp_path))
    assert [s.key for s, _ in stages] == ["train-mnist_plain", "train-mnist_rls",
                                          "evaluate-mnist", "report-smoke"]
    assert {status for _, status in stages} == {"todo"}


def test_records_keep_the_weights_fingerprint_and_accuracy(smoke_run):
    out = smoke_run["out"]
    with open(os.path.join(out, "stages", "train-mnist_rls.json"), encoding="utf-8") as f:
        record = json.load(f)
    assert record["fingerprint"] == runner.fingerprint(
        os.path.join(out, "runs", "mnist_rls", "model.keras"))
    assert 0.0 <= record["test_accuracy"] <= 1.0 and record["test_examples"] == 16
    # The report names the weights twice: the stage's model table and the stages table.
    assert smoke_run["report"].count(f"`{record['fingerprint']}`") == 2
    with open(os.path.join(out, "eval", "mnist", "models.json"), encoding="utf-8") as f:
        assert json.load(f) == {
            key: runner.fingerprint(os.path.join(out, "runs", f"mnist_{key}", "model.keras"))
            for key in ("plain", "rls")}


def test_a_finished_run_on_a_fresh_machine_redoes_nothing(smoke_run, tmp_path, monkeypatch):
    # What a commit keeps: everything but runs/ (the weights).
    out = str(tmp_path / "committed")
    shutil.copytree(smoke_run["out"], out, ignore=shutil.ignore_patterns("runs"))
    calls = []
    monkeypatch.setattr(training, "train", lambda config: calls.append(config))
    monkeypatch.setattr(api, "evaluate_dirs", lambda *a, **k: calls.append(k))
    lines = []
    report = reproduce("smoke", out, data_dir="unused", log=lines.append)
    assert calls == []
    assert any("4 stages, 3 done, 1 to run" in line for line in lines)
    with open(report, encoding="utf-8") as f:
        assert f.read() == smoke_run["report"]


def test_interrater_cells_say_why_there_is_no_number():
    from rls_tf.reproduction import report  # pylint: disable=import-outside-toplevel

    assert report._kappa_text({"mean": 0.4641, "std": 0.0338, "repeats": 10}) == \
        "0.464 ± 0.034"
    # SAP right on all 50 images at every draw: kappa is 0/0 (results.json: null).
    assert report._kappa_text({"mean": None, "std": None, "values": [None],
                               "repeats": 1}).startswith("undefined")
    assert report._kappa_text({"mean": 0.5, "std": None}) == "0.500 ± 0.000"
    assert report._kappa_text(None).startswith("— (deterministic")


def test_a_stage_whose_shards_another_run_holds_is_left_unrecorded(smoke_run, tmp_path,
                                                                     monkeypatch):
    # Another run still computes a shard (rls_tf/reproduction/claims.py): this run
    # goes on to the report and does not record the stage; the other run will.
    out = str(tmp_path / "copy")
    shutil.copytree(smoke_run["out"], out)
    evaluation = next(name for name in os.listdir(os.path.join(out, "stages"))
                      if name.startswith("evaluate-"))
    os.remove(os.path.join(out, "stages", evaluation))
    monkeypatch.setattr(runner, "_eval_stage", lambda *a, **k: False)
    lines = []
    assert reproduce("smoke", out, data_dir="unused", log=lines.append)
    assert not os.path.exists(os.path.join(out, "stages", evaluation))
    assert not [line for line in lines if re.match(r"\[\d+/\d+\] evaluate \S+: ", line)]
    assert [line for line in lines if re.match(r"\[\d+/\d+\] evaluate \S+ \(", line)]


def _unfinished_copy(smoke_run, tmp_path):
    # The smoke suite's evaluation (2 shards of 8 images) with only its first shard:
    # another run still computes the second.
    out = str(tmp_path / "partial")
    shutil.copytree(smoke_run["out"], out)
    folder = os.path.join(out, "eval", "mnist")
    os.remove(os.path.join(out, "stages", "evaluate-mnist.json"))
    for name in ("results.json", "results.md", "shard-1-of-2.json"):
        os.remove(os.path.join(folder, name))
    return out, folder


def test_an_unfinished_stage_is_reported_from_its_shards_marked_partial(smoke_run, tmp_path):
    from rls_tf.reproduction import report  # pylint: disable=import-outside-toplevel
    from rls_tf.reproduction import suites  # pylint: disable=import-outside-toplevel
    out, folder = _unfinished_copy(smoke_run, tmp_path)
    suite = suites.load_suite("smoke")
    with open(os.path.join(smoke_run["out"], "eval", "mnist", "shard-0-of-2.json"),
              encoding="utf-8") as f:
        shard = json.load(f)
    results = report.partial_results(suite, out, suite.evaluate[0])
    assert results["data"]["num_examples"] == shard["shard"]["stop"] == 4
    assert results["merged"]["missing"] == [1]
    assert results["merged"]["planned_examples"] == 8
    # The numbers are the first shard's alone.
    first = next(r for r in shard["robust"] if r["model"] == "plain")
    merged = next(r for r in results["robust"] if r["model"] == "plain"
                  and r["attack"] == first["attack"] and r["param"] == first["param"]
                  and r["threat_model"] == first["threat_model"])
    assert merged["num_examples"] == 4
    assert merged["accuracy"]["mean"] == pytest.approx(
        first["examples"]["attacker_correct"].count("1") / 4)
    with open(report.write_report(suite, out), encoding="utf-8") as f:
        text = f.read()
    section = text.split("## mnist\n")[1].split("\n## ")[0]
    assert "**Partial: not finished.** Dataset mnist, 4 of its 8 test images: 1 of its 2 " \
           "shards (missing: 1)" in section
    assert "Not evaluated yet" not in section
    assert not os.path.exists(os.path.join(folder, "results.json"))  # left to the runner
    # Shards of other weights, or of another definition of the stage, are not shown.
    with open(os.path.join(folder, "models.json"), encoding="utf-8") as f:
        weights = json.load(f)
    with open(os.path.join(folder, "models.json"), "w", encoding="utf-8") as f:
        json.dump({**weights, "rls": "0" * 16}, f)
    assert report.partial_results(suite, out, suite.evaluate[0]) is None
    with open(os.path.join(folder, "models.json"), "w", encoding="utf-8") as f:
        json.dump(weights, f)
    for change in ({"attacks": ("fgsm",)}, {"num_examples": 16},
                   {"preset_overrides": {"pgd_steps": 3}}):
        other = dataclasses.replace(suite.evaluate[0], **change)
        assert report.partial_results(suite, out, other) is None, change
    assert report.partial_results(suite, out, suite.evaluate[0]) is not None
    # Every shard there but the stage not recorded (its run stopped before): shown whole.
    shutil.copy(os.path.join(smoke_run["out"], "eval", "mnist", "shard-1-of-2.json"), folder)
    with open(report.write_report(suite, out), encoding="utf-8") as f:
        section = f.read().split("## mnist\n")[1].split("\n## ")[0]
    assert "Dataset mnist, 8 test images: all 2 shards, merged here" in section
    assert "Partial" not in section
