"""Combining evaluations of other models on one protocol: equal to one run, refusals."""

import json

import pytest

from rls_tf.evaluation import combine
from rls_tf.evaluation import presets
from rls_tf.evaluation import report
from rls_tf.evaluation import runner

from tests.evaluation.conftest import make_micro_model
from tests.evaluation.conftest import toy_images


def _config(**changes):
    preset = presets.get_preset("paper_mnist").replace(
        fgsm_eps=(0.3,), pgd_eps=(0.3,), pgd_steps=2, pgd_rand_init=True, deepfool_max_iter=2,
        apgd_steps=2, eot_samples=2, eot_pgd_steps=2, eot_pgd_restarts=1, transfer_steps=2,
        multi_sample_paths=(2,), convergence_steps=(1, 2), convergence_draws=(1, 2),
        sweep_eps=(0.6,))
    fields = dict(attacks=("fgsm", "pgd", "deepfool", "apgd"),
                  threat_models=("paper", "multi_sample", "eot", "apgd_rand", "transfer"),
                  surrogates=("baseline",), convergence=True, preset=preset, eval_samples=3,
                  repeats=2, sample_counts=(1, 3), batch_size=4, seed=3, verbose=0)
    fields.update(changes)
    return runner.EvalConfig(**fields)


def _roundtrip(results):
    return json.loads(json.dumps(report.clean_json(results)))


def _timeless(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


@pytest.fixture(scope="module")
def runs(micro_models):
    """One run of three models, and two runs of two of them sharing the baseline."""
    models = {**micro_models, "rls2": make_micro_model(2, seed=1)}
    x, y = toy_images(8, size=8, seed=17)
    config = _config()

    def run(keys):
        results = _roundtrip(runner.run_evaluation({k: models[k] for k in keys}, x, y, config,
                                                   log=None))
        results["data"] = {"dataset": "toy", "num_examples": len(x)}
        return results

    return {"whole": run(("baseline", "rls", "rls2")), "a": run(("baseline", "rls")),
            "b": run(("baseline", "rls2")), "models": models, "x": x, "y": y}


def test_combined_runs_equal_one_run_of_all_models(runs):
    whole = runs["whole"]
    combined = _roundtrip(combine.combine_results([runs["a"], runs["b"]]))
    assert list(combined["models"]) == ["baseline", "rls", "rls2"]
    for key in ("config", "models", "clean", "interrater", "skipped", "data"):
        assert combined[key] == whole[key], key
    # The same records in the same order: setting by setting for robust,
    # model by model for the convergence sweeps.
    assert _timeless(combined["robust"]) == _timeless(whole["robust"])
    assert _timeless(combined["convergence"]) == _timeless(whole["convergence"])
    assert {r["threat_model_name"] for r in combined["robust"]} == {
        "paper", "multi_sample", "eot", "apgd_rand", "transfer"}
    assert list(combined["timings"]) == list(whole["timings"])
    assert combined["timings"]["total"] == pytest.approx(
        runs["a"]["timings"]["total"] + runs["b"]["timings"]["total"])
    # Masking checks (cross-model: against the baseline) are those of the one run.
    from rls_tf.evaluation import masking  # pylint: disable=import-outside-toplevel
    assert masking.masking_checks(combined) == masking.masking_checks(whole)
    parts = combined["combined"]["parts"]
    assert [p["contributed"] for p in parts] == [["baseline", "rls"], ["rls2"]]
    # The attacks did something: not a vacuous equality.
    rls2 = [r for r in combined["robust"] if r["model"] == "rls2"]
    assert any(r["accuracy"]["mean"] < combined["clean"]["rls2"]["accuracy"]["mean"]
               for r in rls2)


def test_the_order_of_the_parts_only_orders_the_models(runs):
    combined = _roundtrip(combine.combine_results([runs["b"], runs["a"]]))
    assert list(combined["models"]) == ["baseline", "rls2", "rls"]
    by_key = lambda rs: {(r["model"], r["threat_model"], r["attack"], r["param"]):  # noqa: E731
                         {k: v for k, v in r.items() if k != "seconds"} for r in rs}
    assert by_key(combined["robust"]) == by_key(runs["whole"]["robust"])


def test_combine_refuses_other_protocols_and_inconsistent_shared_models(runs):
    a, b = runs["a"], runs["b"]
    with pytest.raises(ValueError, match=r"at least two evaluations\. Received: 1"):
        combine.combine_results([a])
    other = json.loads(json.dumps(b))
    other["config"]["seed"] = 4
    with pytest.raises(ValueError, match=r"differ in config\.seed\. Received: 3 vs 4"):
        combine.combine_results([a, other])
    other = json.loads(json.dumps(b))
    other["data"]["num_examples"] = 9
    with pytest.raises(ValueError, match=r"differ in data\.num_examples\. Received: 8 vs 9"):
        combine.combine_results([a, other])
    other = json.loads(json.dumps(b))
    record = next(r for r in other["robust"] if r["model"] == "baseline")
    record["accuracy"]["mean"] = 0.5 if record["accuracy"]["mean"] != 0.5 else 0.25
    with pytest.raises(ValueError, match=r"Model 'baseline' is in part 0 and in part 1 with "
                                         r"different results at robust\.0\.accuracy\.mean"):
        combine.combine_results([a, other])
    other = json.loads(json.dumps(b))
    other["models"]["baseline"]["fingerprint"] = "1" * 16
    a_fp = json.loads(json.dumps(a))
    a_fp["models"]["baseline"]["fingerprint"] = "2" * 16
    with pytest.raises(ValueError, match=r"Model 'baseline' .* different weights\. Received: "
                                         r"fingerprint 2{16} vs 1{16}"):
        combine.combine_results([a_fp, other])
    # A real run of a shared stochastic model with another seed (other
    # defender draws): with the seed edited back, refused by its numbers.
    other = _roundtrip(runner.run_evaluation(
        {k: runs["models"][k] for k in ("baseline", "rls")}, runs["x"], runs["y"],
        _config(seed=4), log=None))
    other["config"] = a["config"]
    other["data"] = a["data"]
    with pytest.raises(ValueError, match=r"Model '(baseline|rls)' is in part 0 and in part 1 "
                                         r"with different results"):
        combine.combine_results([a, other])


def test_combine_directories_writes_the_report(runs, tmp_path):
    dirs = []
    for name in ("a", "b"):
        results = {**runs[name], "command": f"python attack_eval.py --model_dirs=x=runs/x "
                                            f"--seed=3 --output_dir=results/{name}"}
        results["models"] = {k: {**v, "dir": f"runs/{k}"} for k, v in results["models"].items()}
        report.write_reports(results, str(tmp_path / name))
        dirs.append(str(tmp_path / name))
    out = str(tmp_path / "all")
    results, paths = combine.combine_directories(dirs, out)
    written = json.loads(open(paths["json"], encoding="utf-8").read())
    assert list(written["models"]) == ["baseline", "rls", "rls2"]
    assert written["command"] == (f"python attack_eval.py --model_dirs=baseline=runs/baseline,"
                                  f"rls=runs/rls,rls2=runs/rls2 --seed=3 --output_dir={out}")
    assert written["masking_checks"] == results_checks(results)
    text = open(paths["markdown"], encoding="utf-8").read()
    assert "Combined from 2 evaluations" in text and "rls2" in text
    assert written["combined"]["command"] == (
        f"python attack_eval.py --combine={dirs[0]},{dirs[1]} --output_dir={out}")
    with pytest.raises(ValueError, match=r"needs --output_dir"):
        combine.combine_directories(dirs, None)
    with pytest.raises(FileNotFoundError, match=r"No such directory"):
        combine.combine_directories([dirs[0], str(tmp_path / "missing")], out)
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "results.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"is not the results\.json of attack_eval\.py"):
        combine.combine_directories([dirs[0], str(tmp_path / "odd")], out)
    (tmp_path / "sharded").mkdir()
    (tmp_path / "sharded" / "shard-0-of-2.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"merge them first with python attack_eval\.py "
                                                r"--merge="):
        combine.combine_directories([dirs[0], str(tmp_path / "sharded")], out)


def results_checks(results):
    from rls_tf.evaluation import masking  # pylint: disable=import-outside-toplevel
    return json.loads(json.dumps(report.clean_json(masking.summarize(masking.masking_checks(
        results, reference=results["config"].get("reference"))))))


def test_combine_keeps_every_models_attack_failure_indicators(runs):
    from rls_tf.evaluation import indicators  # pylint: disable=import-outside-toplevel

    settings = {"num_examples": 8, "eps": 0.3, "steps": 2, "eot_samples": 2}

    def section(keys):
        entries = []
        for key in keys:
            entries += [i.to_json() for i in indicators.run_indicators(
                runs["models"][key], runs["x"], runs["y"], 0.3, name=key, steps=2,
                eot_samples=2, seed=3)]
        return json.loads(json.dumps({**settings, "entries": entries}))

    a = {**runs["a"], "indicators": section(("baseline", "rls"))}
    b = {**runs["b"], "indicators": section(("baseline", "rls2"))}
    combined = combine.combine_results([a, b])
    whole = section(("baseline", "rls", "rls2"))
    # The deterministic baseline's seeded probes repeat exactly; the random
    # models' probes draw fresh randomness: the same indicators, in order.
    assert {k: v for k, v in combined["indicators"].items() if k != "entries"} == settings
    ids = lambda entries: [(e["model"], e["id"]) for e in entries]  # noqa: E731
    assert ids(combined["indicators"]["entries"]) == ids(whole["entries"])
    baseline = lambda entries: [e for e in entries if e["model"] == "baseline"]  # noqa: E731
    assert baseline(combined["indicators"]["entries"]) == baseline(whole["entries"])
    assert {e["model"] for e in whole["entries"]} == {"baseline", "rls", "rls2"}
    # A part without indicators adds its models without any.
    only_a = combine.combine_results([a, runs["b"]])["indicators"]
    assert {e["model"] for e in only_a["entries"]} == {"baseline", "rls"}
    assert "indicators" not in combine.combine_results([runs["a"], runs["b"]])
    other = json.loads(json.dumps(b))
    other["indicators"]["eps"] = 0.1
    with pytest.raises(ValueError, match=r"indicators .* ran with different settings"):
        combine.combine_results([a, other])
    other = json.loads(json.dumps(b))
    entry = next(e for e in other["indicators"]["entries"] if e["model"] == "baseline")
    entry["status"] = "fail" if entry["status"] != "fail" else "pass"
    with pytest.raises(ValueError, match=r"Model 'baseline' has different attack-failure "
                                         r"indicators in part 0 and part 1"):
        combine.combine_results([a, other])
    # A part run by an earlier version (no binarization entries): the shared
    # indicators are compared, the later part's extra ones added.
    older = json.loads(json.dumps(a))
    older["indicators"]["entries"] = [e for e in older["indicators"]["entries"]
                                      if e["id"] != "binarization"]
    mixed = combine.combine_results([older, b])["indicators"]["entries"]
    assert ("baseline", "binarization") in ids(mixed)
    assert ("rls", "binarization") not in ids(mixed)
    assert ("rls2", "binarization") in ids(mixed)
