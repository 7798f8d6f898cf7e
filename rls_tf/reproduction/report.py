"""The reproduction report: the paper's tables beside ours, then the honest attacks.

`write_report` reads the merged ``results.json`` of every evaluation stage
of a suite and writes ``REPORT.md`` and ``report.json`` (plus the stages'
plots, copied beside it):

* per dataset, the paper's layout (`paper_tables`): Table 3 (every defense x
  FGSM, PGD, DeepFool, C&W, EAD at the paper's first parameter), Table 4
  (the attacker attacks S = 1, 5, 10, 15 sampled models: ``multi_sample``)
  and Table 6 (accuracy against the defender's N samples, and the base
  ensembles of 3 and 5), ours beside the paper's printed numbers; each
  again under the adaptive threat models (``eot``, ``apgd_rand``) where
  those ran. A cell comes from whichever evaluation stage of the dataset
  holds it (the one with the most images), named with its image count;
  a cell no stage computed is "—";
* per evaluation stage, clean accuracy, and the paper protocol's numbers
  beside the paper's printed ones (`rls_tf.reproduction.paper_numbers`) at
  the same dataset, defense, attack and parameter: Table 1 (plain vs rls),
  Table 5 (interrater agreement);
* per dataset, the worst case per model at each eps over every loss attack,
  threat model and stage (`worst_cases`), each cell named with where it
  comes from, with the ranking at each eps and, where RLS was trained both
  ways, the paper's MSE objective against cross-entropy;
* the headline: per model, the accuracy at each eps under every threat model
  (the paper's, then the adaptive, transfer and black-box ones) and the
  worst of them;
* the gradient-masking checks of the stage;
* "what holds up": sentences computed from those numbers.

Adversarially trained runs are never set beside the paper's (clean-trained)
numbers. Only stages whose completion record is of their current spec
(`runner.record_state`) are reported: the results of an earlier version of
a stage (another backbone, recipe or attack list under the same name) are
not shown as the new one's. A sharded stage not finished yet is shown from
the shards it has (`partial_results`), marked partial with their images.

This module owns the report's data (`collect`: per stage its numbers, per
dataset the paper's tables, the stages' records) and `write_report`. The
paper's tables are built in `rls_tf.reproduction.paper_layout`, the Markdown
written in `rls_tf.reproduction.report_render`.
"""

import json
import os
import shutil

from rls_tf.reproduction import paper_numbers
from rls_tf.reproduction import runner
# The paper's tables and the Markdown live in modules of their own; first_params,
# paper_tables and _kappa_text are re-exported here, their former home.
from rls_tf.reproduction.paper_layout import _PAPER_ATTACKS
from rls_tf.reproduction.paper_layout import first_params
from rls_tf.reproduction.paper_layout import paper_tables
from rls_tf.reproduction.report_render import _kappa_text
from rls_tf.reproduction.report_render import _render

__all__ = ["collect", "first_params", "paper_tables", "partial_results", "worst_cases",
           "write_report"]


def _param_key(attack, param):
    # DeepFool's parameter (overshoot) is not printed by the paper.
    return "" if attack == "deepfool" else (param or "").replace(" ", "")


def _columns(suite, stage):
    by_name = {s.name: s for s in suite.train}
    out = {}
    for key, ref in stage.models.items():
        train = by_name[ref]
        adversarial = train.options.get("adv_train", "none") != "none"
        out[key] = {"run": ref, "defense": train.defense, "backbone": train.backbone,
                    "adversarial": adversarial,
                    # TrainConfig's default loss is cross-entropy.
                    "loss": train.options.get("loss", "crossentropy")}
        if train.defense in ("ensemble", "adp"):
            # TrainConfig's default ensemble_size is 3.
            out[key]["ensemble_size"] = int(train.options.get("ensemble_size", 3))
    return out


def _paper_rows(dataset, columns, results):
    """Our paper-protocol cells with the paper's printed value, where it has one."""
    ours = {}
    for record in results.get("robust", []):
        if record["threat_model"] == "paper" and record["attack"] in _PAPER_ATTACKS:
            key = (record["model"], record["attack"], _param_key(record["attack"],
                                                                 record["param"]))
            ours[key] = record
    rows = []
    for model, info in columns.items():
        if info["adversarial"]:
            continue
        cells = paper_numbers.paper_cells(table=1, dataset=dataset, defense=info["defense"])
        cells = [c for c in cells if c.backbone == "resnet50"]
        for cell in cells:
            if cell.attack == "clean":
                clean = results.get("clean", {}).get(model)
                rows.append({"table": 1, "model": model, "attack": "clean", "param": "",
                             "paper": cell.value,
                             "ours": None if clean is None else clean["accuracy"]})
                continue
            record = ours.get((model, cell.attack, _param_key(cell.attack, cell.param)))
            if record is not None:
                rows.append({"table": 1, "model": model, "attack": cell.attack,
                             "param": cell.param, "paper": cell.value,
                             "ours": record["accuracy"]})
    return rows


def _interrater_rows(dataset, columns, results):
    rows = []
    for model, info in columns.items():
        ours = (results.get("interrater") or {}).get(model)
        cells = [] if info["adversarial"] else paper_numbers.paper_cells(
            table=5, dataset=dataset, defense=info["defense"])
        if ours is None and not cells:
            continue
        rows.append({"model": model, "paper": cells[0].value if cells else None,
                     "paper_std": cells[0].std if cells else None, "ours": ours})
    return rows


def _loss_records(results):
    """``(eps key, attack@threat model, record)`` of the eps-parametrised loss attacks."""
    for record in results.get("robust", []):
        eps = record.get("eps")
        if eps is None or record.get("min_norm"):
            continue
        yield f"{eps:g}", f"{record['attack']}@{record['threat_model']}", record


def _headline(results):
    """``{model: {eps: {label: summary}}}`` of the eps-parametrised loss attacks."""
    out = {}
    for key, label, record in _loss_records(results):
        out.setdefault(record["model"], {}).setdefault(key, {})[label] = record["accuracy"]
    return out


def worst_cases(stages):
    """Per trained run of the stages (one dataset's): at each eps, the worst over every stage.

    Every loss-based attack record (attack, threat model, eps) is taken from the
    stage with the most images that ran it (the first such stage on a tie); the
    worst case at an eps is the lowest accuracy among them, named with its
    attack@threat model, stage and images. Clean accuracy likewise comes from
    the stage with the most images. Rows are trained runs, named by the first
    stage's key for them (stages may call one run by the same key or not).

    Args:
        stages: the report's stage entries of one dataset (with ``_results``).

    Returns:
        ``{"eps": [{"key", "eps", "unit_255"}], "rows": [{"model", "run",
        "defense", "loss", "adversarial", "clean", "cells"}]}``: eps in
        increasing order (``unit_255``: the eps in 1/255 of the [0, 1] range
        where that is a whole number, else None); ``clean`` is ``{"accuracy",
        "stage", "num_examples"}`` or None; ``cells`` maps an eps key to
        ``{"accuracy", "label", "stage", "num_examples", "compared"}``
        (``compared``: how many attack@threat model results it is the
        lowest of).
    """
    chosen, clean, runs, eps_info = {}, {}, {}, {}
    for stage in stages:
        results, columns = stage["_results"], stage["columns"]
        count = int(stage.get("num_examples") or 0)
        for model, info in columns.items():
            runs.setdefault(info["run"], {**info, "model": model})
            accuracy = (results.get("clean", {}).get(model) or {}).get("accuracy")
            if accuracy is not None and count > clean.get(info["run"], {}).get(
                    "num_examples", -1):
                clean[info["run"]] = {"accuracy": accuracy, "stage": stage["name"],
                                      "num_examples": count}
        for key, label, record in _loss_records(results):
            if record["model"] not in columns:
                continue
            unit = record.get("eps_unit_range")
            whole = None if unit is None else round(unit * 255)
            eps_info.setdefault(key, {"key": key, "eps": float(record["eps"]), "unit_255": (
                whole if whole and abs(unit * 255 - whole) < 1e-3 else None)})
            n = int(record.get("num_examples") or count)
            slot = (columns[record["model"]]["run"], key, label)
            if n > chosen.get(slot, {}).get("num_examples", -1):
                chosen[slot] = {"accuracy": record["accuracy"], "label": label,
                                "stage": stage["name"], "num_examples": n}
    cells, compared = {}, {}
    for (run, key, _), cell in chosen.items():
        compared[run, key] = compared.get((run, key), 0) + 1
        best = cells.setdefault(run, {}).get(key)
        if best is None or cell["accuracy"]["mean"] < best["accuracy"]["mean"]:
            cells[run][key] = cell
    for run, by_eps in cells.items():
        for key, cell in by_eps.items():
            by_eps[key] = {**cell, "compared": compared[run, key]}
    return {"eps": sorted(eps_info.values(), key=lambda e: e["eps"]),
            "rows": [{"model": info["model"], "run": run, "defense": info["defense"],
                      "loss": info.get("loss"), "adversarial": info["adversarial"],
                      "clean": clean.get(run), "cells": cells[run]}
                     for run, info in runs.items() if run in cells]}


def _canonical(value):
    return json.loads(json.dumps(value))


def _of_stage(payload, stage):
    """Whether a shard file is of `stage`'s current definition."""
    config = payload.get("config") or {}
    expected = {
        "shards": (payload.get("shard") or {}).get("count") == stage.num_shards,
        "num_examples": config.get("num_examples") == stage.num_examples,
        "attacks": config.get("attacks") == list(stage.attacks),
        "threat_models": [t.get("name") for t in config.get("threat_models", [])]
                         == list(stage.threat_models),
        "models": sorted(payload.get("models") or {}) == sorted(stage.models),
    }
    preset = config.get("preset") or {}
    for key, value in stage.preset_overrides.items():
        expected[f"preset.{key}"] = _canonical(preset.get(key)) == _canonical(value)
    for key, value in stage.options.items():
        if key == "preset":
            expected[key] = preset.get("name") == value
        elif key in config:
            expected[key] = _canonical(config[key]) == _canonical(value)
    return all(expected.values())


def partial_results(suite, output_dir, stage):
    """The merged shards of an evaluation stage still running (None: nothing to show).

    A stage of several shards spans several runs (and machines); until its last
    shard is written, the report shows the shards it has (`merge_shards` with
    ``allow_missing``), marked partial with their images. Only shards of the
    stage's current definition count: every shard's attacks, threat models,
    images, shard count, models, preset overrides and options must be the
    stage's, and the weights the stage recorded (``models.json``) those of the
    current training records. Otherwise the report says the stage is missing,
    as before any shard.

    Returns:
        The results dict (`rls_tf.evaluation.shard_merge.merge_shards`), or
        None.
    """
    # pylint: disable=import-outside-toplevel
    from rls_tf.evaluation import shard_files, shard_merge

    folder = os.path.join(output_dir, "eval", stage.name)
    if stage.num_shards < 2 or not os.path.isdir(folder):
        return None
    try:
        payloads = shard_files.load_shards(folder)
    except ValueError:  # no shard file yet
        return None
    weights = os.path.join(folder, "models.json")
    if not os.path.isfile(weights):
        return None
    with open(weights, encoding="utf-8") as f:
        used = json.load(f)
    by_name = {s.name: s for s in suite.train}
    for key, ref in stage.models.items():
        train = runner.Stage("train", ref, by_name[ref], by_name[ref].estimate_s)
        state, record = runner.record_state(suite, output_dir, train)
        if state != "current" or used.get(key) != record.get("fingerprint"):
            return None
    if not all(_of_stage(p, stage) for p in payloads):
        return None
    return shard_merge.merge_shards(payloads, allow_missing=True)


def collect(suite, output_dir):
    """The report's data: per evaluation stage of its current spec, its numbers; per
    dataset, the paper's Tables 3, 4 and 6 and the worst cases (`worst_cases`); the
    stages' completion records."""
    stages = []
    for stage in suite.evaluate:
        path = os.path.join(output_dir, "eval", stage.name, "results.json")
        state, _ = runner.record_state(
            suite, output_dir, runner.Stage("evaluate", stage.name, stage, stage.estimate_s))
        if state == "current" and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                results = json.load(f)
        else:
            # Never finished: the shards it has, when they are of its current version.
            results = partial_results(suite, output_dir, stage) if state == "none" else None
            if results is None:
                stages.append({"name": stage.name, "missing": path, "state": state})
                continue
        dataset = suite.dataset_of(stage)
        columns = _columns(suite, stage)
        weights = os.path.join(output_dir, "eval", stage.name, "models.json")
        if os.path.isfile(weights):
            with open(weights, encoding="utf-8") as f:
                for key, value in json.load(f).items():
                    if key in columns:
                        columns[key]["weights"] = value
        stages.append({
            "name": stage.name, "dataset": dataset, "columns": columns,
            "num_examples": results.get("data", {}).get("num_examples"),
            "clean": {m: v["accuracy"] for m, v in results.get("clean", {}).items()},
            "paper_protocol": _paper_rows(dataset, columns, results),
            "interrater": _interrater_rows(dataset, columns, results),
            "headline": _headline(results),
            "masking_checks": results.get("masking_checks"),
            "results": os.path.relpath(path, output_dir),
            "_results": results,
        })
        if state != "current":  # merged here from its shards: no results.json yet
            merged = results["merged"]
            stages[-1]["results"] = None
            stages[-1]["partial"] = {
                "shards": merged["num_shards"],
                "of_shards": merged.get("of_shards", merged["num_shards"]),
                "missing": merged.get("missing", []),
                "planned_examples": merged.get("planned_examples",
                                               results.get("data", {}).get("num_examples"))}
    datasets = []
    for stage in stages:
        if stage.get("dataset") and stage["dataset"] not in datasets:
            datasets.append(stage["dataset"])
    tables = {dataset: paper_tables(dataset, stages) for dataset in datasets}
    worst = {dataset: worst_cases([s for s in stages if s.get("dataset") == dataset])
             for dataset in datasets}
    for stage in stages:
        stage.pop("_results", None)
    records, orphans = {}, []
    known = {f"train-{s.name}": runner.Stage("train", s.name, s, s.estimate_s)
             for s in suite.train}
    known.update({f"evaluate-{s.name}": runner.Stage("evaluate", s.name, s, s.estimate_s)
                  for s in suite.evaluate})
    folder = os.path.join(output_dir, "stages")
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if not name.endswith(".json") or not os.path.isfile(os.path.join(folder, name)):
            continue  # stages/superseded/: records of earlier versions, moved aside
        key = name[:-5]
        if key not in known:
            orphans.append(key)
            continue
        state, record = runner.record_state(suite, output_dir, known[key])
        records[key] = {**record, "state": state}
    return {"suite": suite.to_json(), "paper_tables": {k: v for k, v in tables.items() if v},
            "worst_cases": {k: v for k, v in worst.items() if v["rows"]},
            "stages": stages, "stage_records": records, "other_records": orphans}


def write_report(suite, output_dir):
    """Writes ``REPORT.md``, ``report.json`` and the plots; returns the REPORT path."""
    data = collect(suite, output_dir)
    data["output_dir"] = output_dir
    for stage in data["stages"]:
        if "missing" in stage:
            continue
        for plot in ("robustness.png", "convergence.png"):
            src = os.path.join(output_dir, "eval", stage["name"], plot)
            if os.path.isfile(src):
                shutil.copyfile(src, os.path.join(output_dir, f"{stage['name']}_{plot}"))
    path = os.path.join(output_dir, "REPORT.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(_render(data))
    payload = {k: v for k, v in data.items() if k != "output_dir"}
    with open(os.path.join(output_dir, "report.json"), "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1, default=str)
    return path
