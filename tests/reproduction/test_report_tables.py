"""The report in the paper's layout: Tables 3, 4 and 6 from constructed results.

No training and no attack runs here: a small CIFAR-10 suite, and for each of its
evaluation stages a ``results.json`` written by hand with the records the
harness writes (only the fields the report reads), so every number in the
tables is known in advance and checked against the paper's printed ones.
"""

import json
import os

import pytest

from rls_tf.reproduction import paper_numbers
from rls_tf.reproduction import report
from rls_tf.reproduction import runner
from rls_tf.reproduction import suites

_TRAIN = {"epochs": 1, "batch_size": 8, "seed": 0}


def _suite():
    def run(name, defense, **options):
        return {"name": name, "dataset": "cifar10", "backbone": "resnet9", "defense": defense,
                "options": {**_TRAIN, **options}}

    def stage(name, models, attacks, threats, n):
        return {"name": name, "models": {k: f"c_{k}" for k in models}, "attacks": attacks,
                "threat_models": threats, "num_examples": n,
                "options": {"preset": "paper_cifar10"}}

    return suites.Suite.from_json({
        "name": "tables", "description": "constructed", "train": [
            run("c_plain", "plain"), run("c_rls", "rls", loss="mse"),
            run("c_ensemble", "ensemble", ensemble_size=3),
            run("c_ensemble5", "ensemble", ensemble_size=5), run("c_adp", "adp"),
            run("c_rse", "rse"),
            {"name": "c_sap", "dataset": "cifar10", "backbone": "resnet9", "defense": "sap",
             "base": "c_plain"},
            run("c_rls_at", "rls", adv_train="fgsm_rs", adv_eps=0.0627)],
        "evaluate": [
            stage("main", ("plain", "rls", "ensemble", "ensemble5", "adp", "rse", "rls_at"),
                  ["fgsm", "pgd", "apgd"], ["paper", "eot", "apgd_rand"], 500),
            stage("minnorm", ("plain", "rls", "ensemble", "adp", "rse"),
                  ["deepfool", "cw", "ead"], ["paper"], 200),
            stage("multi", ("plain", "rls"), ["fgsm", "pgd"], ["multi_sample"], 500),
            stage("sap", ("plain", "sap"), ["fgsm", "pgd"], ["paper"], 200),
            stage("later", ("plain",), ["fgsm"], ["paper"], 100)]})


_STOCHASTIC = ("rls", "rse", "rls_at", "sap")


def _summary(percent, stochastic=True):
    # A stochastic model: R=3 repeats of the defender's draw, std 0.5 points; a
    # deterministic one is evaluated once.
    repeats = 3 if stochastic else 1
    return {"mean": percent / 100, "std": 0.005 if stochastic else 0.0,
            "values": [percent / 100] * repeats, "repeats": repeats}


def _record(model, threat, attack, param, percent, n, vs_samples=None, success_rate=None):
    name = threat.split("[")[0]
    stochastic = model in _STOCHASTIC
    record = {"model": model, "threat_model": threat, "threat_model_name": name,
              "attack": attack, "param": param, "accuracy": _summary(percent, stochastic),
              "num_examples": n}
    if param.startswith("eps="):
        record["eps"] = float(param.split("=")[1].split(",")[0])
    if vs_samples:
        record["accuracy_vs_samples"] = {str(k): _summary(v, stochastic)
                                         for k, v in vs_samples.items()}
    if success_rate is not None:
        record.update(success_rate=success_rate, min_norm=True)
    return record


def _results(models, records, n):
    return {"data": {"num_examples": n},
            "models": {m: {"stochastic": m in _STOCHASTIC} for m in models},
            "clean": {m: {"accuracy": _summary(90.0, m in _STOCHASTIC)} for m in models},
            "interrater": {}, "robust": records}


# Our numbers (in %), chosen apart from the paper's so that a swap would show.
MAIN = [
    _record("plain", "paper", "fgsm", "eps=0.01", 40.0, 500),
    _record("plain", "paper", "fgsm", "eps=0.02", 20.0, 500),
    _record("plain", "paper", "pgd", "eps=0.01", 30.0, 500),
    _record("rls", "paper", "fgsm", "eps=0.01", 61.0, 500,
            vs_samples={5: 60.0, 10: 61.0, 15: 62.0}),
    _record("rls", "paper", "pgd", "eps=0.01", 66.0, 500,
            vs_samples={5: 65.0, 10: 66.0, 15: 67.0}),
    _record("ensemble", "paper", "fgsm", "eps=0.01", 48.0, 500),
    _record("ensemble5", "paper", "fgsm", "eps=0.01", 49.0, 500),
    _record("adp", "paper", "fgsm", "eps=0.01", 52.0, 500),
    _record("rse", "paper", "fgsm", "eps=0.01", 55.0, 500),
    _record("rls_at", "paper", "fgsm", "eps=0.01", 77.0, 500,
            vs_samples={5: 76.0, 10: 77.0, 15: 77.5}),
    _record("plain", "eot[E=10]", "pgd", "eps=0.01", 29.0, 500),
    _record("rls", "eot[E=10]", "pgd", "eps=0.01", 21.0, 500,
            vs_samples={5: 20.0, 10: 21.0, 15: 22.0}),
    _record("rls", "eot[E=10]", "apgd", "eps=0.01", 19.0, 500),
    _record("rls", "apgd_rand[E=10]", "apgd", "eps=0.01", 18.0, 500),
]
MINNORM = [
    _record("plain", "paper", "deepfool", "overshoot=0.02", 1.0, 200, success_rate=0.99),
    # C&W barely fools the undefended model: the harness's weak-attack flag.
    _record("plain", "paper", "cw", "c=0.01", 85.0, 200, success_rate=0.02),
    _record("plain", "paper", "cw", "c=0.1", 15.0, 200, success_rate=0.8),
    _record("rls", "paper", "deepfool", "overshoot=0.02", 80.0, 200, success_rate=0.2),
    _record("rls", "paper", "cw", "c=0.01", 88.0, 200, success_rate=0.01,
            vs_samples={5: 87.0, 10: 88.0, 15: 89.0}),
    _record("rls", "paper", "ead", "c=0.01", 70.0, 200, success_rate=0.3),
    _record("ensemble", "paper", "cw", "c=0.01", 45.0, 200, success_rate=0.5),
    _record("adp", "paper", "ead", "c=0.01", 60.0, 200, success_rate=0.4),
    _record("rse", "paper", "cw", "c=0.01", 90.0, 200, success_rate=0.1),
]
MULTI = [
    _record("rls", f"multi_sample[S={s}]", attack, "eps=0.01", value, 500)
    for s, values in ((1, (61.5, 66.5)), (5, (58.0, 62.0)), (10, (57.0, 59.0)),
                      (15, (56.0, 58.5)))
    for attack, value in zip(("fgsm", "pgd"), values)
] + [_record("plain", "multi_sample[S=1]", "fgsm", "eps=0.01", 41.0, 500)]
SAP = [_record("plain", "paper", "fgsm", "eps=0.01", 39.0, 200),
       _record("sap", "paper", "fgsm", "eps=0.01", 57.0, 200),
       _record("sap", "paper", "pgd", "eps=0.01", 56.0, 200)]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("tables"))
    suite = _suite()
    for name, models, records, n in (
            ("main", ("plain", "rls", "ensemble", "ensemble5", "adp", "rse", "rls_at"),
             MAIN, 500),
            ("minnorm", ("plain", "rls", "ensemble", "adp", "rse"), MINNORM, 200),
            ("multi", ("plain", "rls"), MULTI, 500), ("sap", ("plain", "sap"), SAP, 200)):
        folder = os.path.join(out, "eval", name)
        os.makedirs(folder)
        with open(os.path.join(folder, "results.json"), "w", encoding="utf-8") as f:
            json.dump(_results(models, records, n), f)
        stage = next(s for s, _ in runner.plan(suite, out) if s.name == name
                     and s.kind == "evaluate")
        os.makedirs(os.path.join(out, "stages"), exist_ok=True)
        with open(os.path.join(out, "stages", f"evaluate-{name}.json"), "w",
                  encoding="utf-8") as f:
            json.dump({"stage": stage.key, "spec": runner.spec_hash(suite, stage),
                       "seconds": 1.0, "estimate_s": 1.0}, f)
    # "later" has results of another version of the stage: never shown.
    os.makedirs(os.path.join(out, "eval", "later"))
    with open(os.path.join(out, "eval", "later", "results.json"), "w", encoding="utf-8") as f:
        json.dump(_results(("plain",), [_record("plain", "paper", "fgsm", "eps=0.01", 99.0,
                                                1000)], 1000), f)
    with open(os.path.join(out, "stages", "evaluate-later.json"), "w", encoding="utf-8") as f:
        json.dump({"stage": "evaluate-later", "spec": "0" * 16, "seconds": 1.0,
                   "estimate_s": 1.0}, f)
    path = report.write_report(suite, out)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    with open(os.path.join(out, "report.json"), encoding="utf-8") as f:
        data = json.load(f)
    return {"text": text, "data": data, "tables": data["paper_tables"]["cifar10"]}


def _find(tables, number, protocol):
    found = [t for t in tables if t["table"] == number and t["protocol"] == protocol]
    assert len(found) == 1, [(t["table"], t["protocol"]) for t in tables]
    return found[0]


def _rows(table):
    return {(r["model"], r["label"]): r for r in table["rows"]}


def _ours(row, attack):
    cell = row["cells"][attack]
    return None if cell is None else round(100 * cell["ours"]["mean"], 6)


def test_table_3_has_every_defense_and_the_five_attacks_beside_the_paper(written):
    table = _find(written["tables"], 3, "paper")
    assert [c["attack"] for c in table["columns"]] == ["fgsm", "pgd", "deepfool", "cw", "ead"]
    assert [c["param"] for c in table["columns"]] == ["eps=0.01", "eps=0.01", "", "c=0.01",
                                                      "c=0.01"]
    rows = _rows(table)
    assert [r["model"] for r in table["rows"]] == [
        "plain", "rls", "ensemble", "ensemble5", "adp", "rse", "rls_at", "sap"]
    plain, rls = rows[("plain", "")], rows[("rls", "")]
    for defense, row in (("plain", plain), ("rls", rls), ("adp", rows[("adp", "")]),
                         ("rse", rows[("rse", "")]), ("sap", rows[("sap", "")])):
        for attack in ("fgsm", "pgd", "deepfool", "cw", "ead"):
            assert row["paper"][attack] == paper_numbers.paper_value(
                3, "cifar10", defense, attack)
    assert (plain["paper"]["deepfool"], rls["paper"]["deepfool"]) == (0.4, 84.9)
    assert (plain["paper"]["cw"], rls["paper"]["cw"]) == (41.7, 91.7)
    # Ours, each from the stage that computed it: FGSM/PGD from main (500 images, not
    # the sap stage's 200), DeepFool/C&W/EAD from minnorm.
    assert [_ours(plain, a) for a in ("fgsm", "pgd", "deepfool", "cw", "ead")] == [
        40.0, 30.0, 1.0, 85.0, None]
    assert [_ours(rls, a) for a in ("fgsm", "pgd", "deepfool", "cw", "ead")] == [
        61.0, 66.0, 80.0, 88.0, 70.0]
    assert plain["cells"]["fgsm"]["stage"] == "main"
    assert plain["cells"]["fgsm"]["num_examples"] == 500
    assert plain["cells"]["cw"]["stage"] == "minnorm"
    assert plain["cells"]["cw"]["num_examples"] == 200
    # The harness's weak-attack flag on a deterministic model only.
    assert plain["cells"]["cw"]["weak"] and not rls["cells"]["cw"]["weak"]
    # No paper number: the base ensembles (not in Table 3) and adversarial training.
    assert set(rows[("ensemble", "")]["paper"].values()) == {None}
    assert set(rows[("rls_at", "")]["paper"].values()) == {None}
    sap = rows[("sap", "")]
    assert [_ours(sap, a) for a in ("fgsm", "pgd", "cw")] == [57.0, 56.0, None]
    assert sap["cells"]["fgsm"]["stage"] == "sap"


def test_table_3_renders_ours_beside_the_paper_and_dashes_for_missing_cells(written):
    text = written["text"]
    assert "## CIFAR-10: the paper's tables" in text
    assert "### Table 3: every defense, the paper's five attacks, under the paper's protocol" \
        in text
    assert ("| Model | FGSM paper | FGSM ours | PGD paper | PGD ours | DeepFool paper | "
            "DeepFool ours | C&W paper | C&W ours | EAD paper | EAD ours |") in text
    # Values with their source tags ([a] main, [b] minnorm, [c] sap), "—" where missing.
    assert ("| plain | 45.4 | 40.0 [a] | 36.4 | 30.0 [a] | 0.4 | 1.0 [b] | 41.7 | "
            "85.0 [b] ‡ | 26.2 | — |") in text
    assert ("| rls | 65.1 | 61.0 ± 0.5 [a] | 70.9 | 66.0 ± 0.5 [a] | 84.9 | 80.0 ± 0.5 [b] | "
            "91.7 | 88.0 ± 0.5 [b] | 79.0 | 70.0 ± 0.5 [b] |") in text
    assert "| ensemble | — | 48.0 [a] | — | — | — | — | — | 45.0 [b] | — | — |" in text
    assert ("| sap | 58.5 | 57.0 ± 0.5 [c] | 59.0 | 56.0 ± 0.5 [c] | 56.4 | — | 53.4 | — | "
            "38.1 | — |") in text
    assert "| rls_at | — | 77.0 ± 0.5 [a] | — | — | — | — | — | — | — | — |" in text
    assert ("Ours from: [a] `main` (500 images); [b] `minnorm` (200 images); "
            "[c] `sap` (200 images).") in text
    assert "‡ The harness's weak-attack flag" in text


def test_table_3_again_under_the_adaptive_threat_models(written):
    eot = _find(written["tables"], 3, "eot")
    assert [c["attack"] for c in eot["columns"]] == ["fgsm", "pgd", "deepfool", "cw", "ead",
                                                      "apgd"]
    rows = _rows(eot)
    assert _ours(rows[("rls", "")], "pgd") == 21.0 and _ours(rows[("rls", "")], "apgd") == 19.0
    assert _ours(rows[("rls", "")], "fgsm") is None
    assert rows[("rls", "")]["paper"]["pgd"] == 70.9  # its own protocol's, for contrast
    assert rows[("rls", "")]["cells"]["pgd"]["threat_model"] == "eot[E=10]"
    rand = _find(written["tables"], 3, "apgd_rand")
    assert _ours(_rows(rand)[("rls", "")], "apgd") == 18.0
    assert "### Table 3: every defense, the paper's five attacks, under `eot` (eot[E=10])" \
        in written["text"]
    assert "under `apgd_rand` (apgd_rand[E=10])" in written["text"]


def test_table_4_attacked_sampled_models(written):
    table = _find(written["tables"], 4, "paper")
    assert [c["attack"] for c in table["columns"]] == ["fgsm", "pgd", "cw"]
    rows = _rows(table)
    for count, fgsm, pgd in ((1, 61.5, 66.5), (5, 58.0, 62.0), (10, 57.0, 59.0),
                             (15, 56.0, 58.5)):
        row = rows[("rls", f"S={count}")]
        assert (_ours(row, "fgsm"), _ours(row, "pgd"), _ours(row, "cw")) == (fgsm, pgd, None)
        for attack in ("fgsm", "pgd", "cw"):
            assert row["paper"][attack] == paper_numbers.paper_value(
                4, "cifar10", "rls", attack, samples=count)
    assert _ours(rows[("plain", "S=1")], "fgsm") == 41.0
    assert rows[("plain", "S=1")]["paper"] == {"fgsm": None, "pgd": None, "cw": None}
    assert _ours(rows[("plain", "S=5")], "fgsm") is None
    assert "| rls | S=5 | 60.5 | 58.0 ± 0.5 | 65.3 | 62.0 ± 0.5 | 84.5 | — |" in written["text"]
    assert "| plain | S=5 | — | — | — | — | — | — |" in written["text"]
    # Under eot: the paper column is its lowest over S (FGSM 58.7, PGD 60.2, C&W 81.7).
    eot = _rows(_find(written["tables"], 4, "eot"))[("rls", "eot")]
    assert eot["paper"] == {"fgsm": 58.7, "pgd": 60.2, "cw": 81.7, "apgd": None}
    assert _ours(eot, "pgd") == 21.0


def test_table_6_base_ensembles_and_defender_samples(written):
    table = _find(written["tables"], 6, "paper")
    rows = _rows(table)
    assert [(r["model"], r["label"]) for r in table["rows"]][:2] == [
        ("ensemble", "base ensemble of 3"), ("ensemble5", "base ensemble of 5")]
    three, five = rows[("ensemble", "base ensemble of 3")], rows[("ensemble5",
                                                                   "base ensemble of 5")]
    assert (three["paper"]["fgsm"], five["paper"]["fgsm"]) == (50.2, 51.1)
    assert (_ours(three, "fgsm"), _ours(five, "fgsm"), _ours(three, "cw")) == (48.0, 49.0, 45.0)
    assert _ours(five, "cw") is None
    for count, fgsm, pgd, cw in ((5, 60.0, 65.0, 87.0), (10, 61.0, 66.0, 88.0),
                                 (15, 62.0, 67.0, 89.0)):
        row = rows[("rls", f"N={count}")]
        assert (_ours(row, "fgsm"), _ours(row, "pgd"), _ours(row, "cw")) == (fgsm, pgd, cw)
        assert row["paper"]["pgd"] == paper_numbers.paper_value(6, "cifar10", "rls", "pgd",
                                                                samples=count)
    assert rows[("rls_at", "N=15")]["paper"] == {"fgsm": None, "pgd": None, "cw": None}
    assert _ours(rows[("rls_at", "N=15")], "fgsm") == 77.5
    assert ("| rls | N=5 | 64.8 | 60.0 ± 0.5 [a] | 70.3 | 65.0 ± 0.5 [a] | 91.5 | "
            "87.0 ± 0.5 [b] |") in written["text"]
    assert "| ensemble5 | base ensemble of 5 | 51.1 | 49.0 [a] | 55.2 | — | 47.6 | — |" in \
        written["text"]
    eot = _rows(_find(written["tables"], 6, "eot"))
    assert _ours(eot[("rls", "N=5")], "pgd") == 20.0
    assert _ours(eot[("rls", "N=15")], "pgd") == 22.0


def test_results_of_an_earlier_version_of_a_stage_are_not_shown(written):
    text = written["text"]
    assert "99.0" not in text  # the "later" stage's old number
    section = text.split("## later")[1]
    assert section.lstrip().startswith("Not evaluated yet in its current version")
    later = next(s for s in written["data"]["stages"] if s["name"] == "later")
    assert later["state"] == "changed" and "paper_protocol" not in later


def test_the_existing_sections_stay(written):
    text = written["text"]
    main = text.split("## main")[1].split("\n## ")[0]
    assert "### The paper's protocol beside the paper's numbers" in main
    assert "| 1 | plain | fgsm | eps=0.01 | 45.4 | 40.0 |" in main
    assert "| 1 | rls | pgd | eps=0.01 | 70.9 | 66.0 ± 0.5 |" in main
    assert "### Every threat model (loss-based attacks)" in main
    assert "### What holds up" in main
    # plain has no EAD cell: 4 columns in common.
    assert ("- Table 3 under the paper's protocol: rls is above plain in 4 of 4 columns "
            "(FGSM, PGD, DeepFool, C&W); the paper reports RLS above at 4 of 4 of them.") \
        in text
    assert "- Table 3 under `eot` (eot[E=10]): rls is above plain in 0 of 1 columns (none)." \
        in text


def test_worst_case_per_defense_takes_each_attack_from_its_largest_stage(written):
    worst = written["data"]["worst_cases"]["cifar10"]
    rows = {r["model"]: r for r in worst["rows"]}
    assert [e["key"] for e in worst["eps"]] == ["0.01", "0.02"]
    # plain's paper FGSM ran in "main" (500 images, 40%) and "sap" (200, 39%):
    # the 500-image number is the one compared.
    plain = rows["plain"]["cells"]["0.01"]
    assert (plain["label"], plain["stage"], plain["num_examples"]) == (
        "pgd@eot[E=10]", "main", 500)
    assert round(100 * plain["accuracy"]["mean"], 6) == 29.0
    # rls: the lowest over paper, eot, apgd_rand and multi_sample.
    rls = rows["rls"]["cells"]["0.01"]
    assert (rls["label"], rls["stage"]) == ("apgd@apgd_rand[E=10]", "main")
    assert round(100 * rls["accuracy"]["mean"], 6) == 18.0
    # sap only ran in its own 200-image stage; rls_at is adversarially trained.
    assert (rows["sap"]["cells"]["0.01"]["stage"], rows["sap"]["cells"]["0.01"]["num_examples"]) \
        == ("sap", 200)
    assert rows["rls_at"]["adversarial"] and not rows["rls"]["adversarial"]
    assert rows["plain"]["clean"]["num_examples"] == 500
    # DeepFool / C&W / EAD (no eps) are not in it; the Markdown names the source.
    assert "0.02" in rows["plain"]["cells"] and "0.02" not in rows["rls"]["cells"]
    text = written["text"]
    section = text.split("## CIFAR-10: the worst case per defense")[1].split("\n## ")[0]
    # rls at 0.01: paper FGSM / PGD, eot PGD / APGD, apgd_rand APGD, multi_sample
    # FGSM / PGD at S = 1, 5, 10, 15.
    assert rls["compared"] == 13
    assert ("| rls | no | 90.0 ± 0.5 (500) | 18.0 ± 0.5 (apgd@apgd_rand[E=10], main, 500; "
            "of 13) | — |") in section


def test_worst_case_sentences_rank_the_defenses_and_compare_rls_objectives(written):
    from rls_tf.reproduction import report_render  # pylint: disable=import-outside-toplevel

    text = written["text"]
    assert ("- Worst case at eps 0.01, highest first: rls_at 77.0%, sap 56.0%, rse 55.0%, "
            "adp 52.0%, ensemble5 49.0%, ensemble 48.0%, plain 29.0%, rls 18.0%.") in text

    def row(model, loss, values, adversarial=False):
        return {"model": model, "defense": "rls", "loss": loss, "adversarial": adversarial,
                "cells": {k: {"accuracy": {"mean": v}} for k, v in values.items()}}

    eps = [{"key": k, "eps": float(k), "unit_255": u}
           for k, u in (("0.0314", 4), ("0.0627", 8), ("0.125", 16))]
    worst = {"eps": eps, "rows": [
        row("rls_mse", "mse", {"0.0314": 0.20, "0.0627": 0.05, "0.125": 0.0}),
        row("rls_ce", "crossentropy", {"0.0314": 0.10, "0.0627": 0.07, "0.125": 0.0}),
        # An adversarially trained cross-entropy RLS is not the comparison's.
        row("rls_at", "crossentropy", {"0.0314": 0.50, "0.0627": 0.40}, adversarial=True)]}
    lines = report_render._worst_holds_up(worst)  # pylint: disable=protected-access
    assert lines[-1] == (
        "RLS with the paper's MSE objective (rls_mse) against cross-entropy (rls_ce), worst "
        "case over every threat model: higher at 1 of 3 eps (eps 0.0314 (4/255)), lower at "
        "1 (eps 0.0627 (8/255)).")


def test_first_params_are_table_1s():
    assert report.first_params("cifar10") == {
        "fgsm": "eps=0.01", "pgd": "eps=0.01", "deepfool": "", "cw": "c=0.01",
        "ead": "c=0.01", "apgd": "eps=0.01"}
    assert report.first_params("mnist")["pgd"] == "eps=0.05"
    assert report.first_params("fashion_mnist") == {}


def test_a_cell_takes_the_strongest_of_equally_large_stages():
    # EAD at the paper's constant c (fools nothing) and searched from it, each
    # on 200 images in its own stage: the cell is the lower accuracy, whichever
    # stage comes first; a larger stage still wins over a stronger smaller one.
    from rls_tf.reproduction import paper_layout  # pylint: disable=import-outside-toplevel

    def stage(name, records, n):
        return {"name": name, "dataset": "cifar10", "num_examples": n,
                "columns": {"plain": {"run": "c_plain", "defense": "plain",
                                      "adversarial": False}},
                "_results": _results(("plain",), records, n)}

    constant = stage("minnorm", [_record("plain", "paper", "ead", "c=0.01", 90.0, 200,
                                         success_rate=0.0),
                                 _record("plain", "paper", "cw", "c=0.01", 60.0, 100)], 200)
    searched = stage("ead", [_record("plain", "paper", "ead", "c=0.01, search=5", 4.0, 200,
                                     success_rate=0.96),
                             _record("plain", "paper", "cw", "c=0.01", 10.0, 50)], 200)
    for order in ((constant, searched), (searched, constant)):
        table = _find(paper_layout.paper_tables("cifar10", list(order)), 3, "paper")
        cell = table["rows"][0]["cells"]["ead"]
        assert (cell["stage"], cell["param"], round(100 * cell["ours"]["mean"], 6)) == (
            "ead", "c=0.01, search=5", 4.0)
        assert not cell["weak"]
        cw = table["rows"][0]["cells"]["cw"]
        assert (cw["stage"], cw["num_examples"]) == ("minnorm", 100)
