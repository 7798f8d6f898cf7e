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
* the headline: per model, the accuracy at each eps under every threat model
  (the paper's, then the adaptive, transfer and black-box ones) and the
  worst of them;
* the gradient-masking checks of the stage;
* "what holds up": sentences computed from those numbers.

Adversarially trained runs are never set beside the paper's (clean-trained)
numbers. Only stages whose completion record is of their current spec
(`runner.record_state`) are reported: the results of an earlier version of
a stage (another backbone, recipe or attack list under the same name) are
not shown as the new one's.
"""

import json
import os
import re
import shutil

from rls_tf.evaluation.report import percent as _pct
from rls_tf.reproduction import paper_numbers
from rls_tf.reproduction import runner

__all__ = ["collect", "first_params", "paper_tables", "write_report"]

_PAPER_ATTACKS = ("fgsm", "pgd", "deepfool", "cw", "ead")
# The columns of the paper's Tables 3, 4 and 6; under the adaptive threat
# models APGD joins them (the attack apgd_rand runs; APGD-CE under eot).
_TABLE_ATTACKS = {3: _PAPER_ATTACKS, 4: ("fgsm", "pgd", "cw"), 6: ("fgsm", "pgd", "cw")}
_ADAPTIVE = ("eot", "apgd_rand")
_ADAPTIVE_EXTRA = ("apgd",)
_TITLES = {"fgsm": "FGSM", "pgd": "PGD", "deepfool": "DeepFool", "cw": "C&W", "ead": "EAD",
           "apgd": "APGD"}
_TABLE_SAMPLES = {4: (1, 5, 10, 15), 6: (5, 10, 15)}
_MULTI_LABEL = re.compile(r"^multi_sample\[S=(\d+)\]$")
# The harness's weak-attack flag (rls_tf.evaluation.report): a minimum-norm
# attack that fools fewer than this share of the images a deterministic model
# gets right measures the attack, not robustness.
_WEAK_SUCCESS_RATE = 0.05
_WEAK = "‡"
_DASH = "—"


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
                    "adversarial": adversarial}
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


def _headline(results):
    """``{model: {eps: {label: summary}}}`` of the eps-parametrised loss attacks."""
    out = {}
    for record in results.get("robust", []):
        eps = record.get("eps")
        if eps is None or record.get("min_norm"):
            continue
        label = f"{record['attack']}@{record['threat_model']}"
        out.setdefault(record["model"], {}).setdefault(f"{eps:g}", {})[label] = \
            record["accuracy"]
    return out


def _worst(cells):
    return min(cells.items(), key=lambda kv: kv[1]["mean"]) if cells else (None, None)


def first_params(dataset):
    """The paper's first parameter of each attack on `dataset` (Table 1, ResNet-50).

    Table 3 prints no parameters; its plain and rls rows are Table 1's CIFAR-10
    cells at these ("same as section 4.2"), and so are Table 4's 1-model and
    Table 6's 15-sample rows. ``{}`` for a dataset the paper does not have.

    >>> first_params("cifar10")["cw"], first_params("cifar10")["deepfool"]
    ('c=0.01', '')
    """
    out = {}
    for cell in paper_numbers.paper_cells(table=1, dataset=dataset):
        if cell.backbone == "resnet50" and cell.attack != "clean":
            out.setdefault(cell.attack, cell.param)
    if "pgd" in out:
        out.setdefault("apgd", out["pgd"])
    return out


def _matches(attack, wanted, param):
    """Whether a record's parameter is the column's (any of its settings)."""
    if attack == "deepfool":
        return True  # its one parameter (overshoot) is not printed by the paper
    param = (param or "").replace(" ", "")
    return param == wanted or param.startswith(wanted + ",")


def _paper_value(table, dataset, defense, attack, samples=None):
    cells = [c for c in paper_numbers.paper_cells(table=table, dataset=dataset,
                                                  defense=defense, attack=attack)
             if c.samples == samples]
    return cells[0].value if len(cells) == 1 else None


def _index(stages):
    """Rows (one per trained run and weights) and their records, over the stages."""
    rows, by_id, records = [], {}, {}
    for order, stage in enumerate(stages):
        results = stage["_results"]
        stochastic = {k: bool(v.get("stochastic")) for k, v in
                      (results.get("models") or {}).items()}
        ids = {}
        for key, info in stage["columns"].items():
            row_id = (info["run"], info.get("weights"))
            ids[key] = row_id
            if row_id not in by_id:
                by_id[row_id] = {"model": key, "run": info["run"], "defense": info["defense"],
                                 "adversarial": info["adversarial"],
                                 "weights": info.get("weights")}
                if "ensemble_size" in info:
                    by_id[row_id]["ensemble_size"] = info["ensemble_size"]
                rows.append(by_id[row_id])
        for record in results.get("robust", []):
            row_id = ids.get(record["model"])
            if row_id is None:
                continue
            records.setdefault((row_id, record["attack"]), []).append({
                "stage": stage["name"], "order": order, "record": record,
                "n": record.get("num_examples") or stage.get("num_examples"),
                "stochastic": stochastic.get(record["model"], False)})
    runs = {}
    for row in rows:
        runs.setdefault(row["run"], []).append(row)
    for same in runs.values():
        if len(same) > 1:  # one run evaluated with different weights in different stages
            for row in same:
                row["model"] = f"{row['model']} [{(row['weights'] or 'unknown')[:8]}]"
    return rows, records


def _cell(records, row, attack, wanted, threat, value):
    """Our cell: the stage with the most images holding it, its lowest setting."""
    found = [e for e in records.get(((row["run"], row["weights"]), attack), [])
             if threat(e["record"]) and _matches(attack, wanted, e["record"].get("param"))]
    if not found:
        return None
    best = max(found, key=lambda e: (e["n"] or 0, -e["order"]))["stage"]
    chosen = []
    for entry in found:
        if entry["stage"] == best:
            summary = value(entry["record"])
            if summary and summary.get("mean") is not None:
                chosen.append((summary, entry))
    if not chosen:
        return None
    summary, entry = min(chosen, key=lambda pair: pair[0]["mean"])
    record = entry["record"]
    rate = record.get("success_rate")
    return {"ours": summary, "param": record.get("param"),
            "threat_model": record.get("threat_model"), "stage": entry["stage"],
            "num_examples": entry["n"], "settings": len(chosen),
            "weak": bool(rate is not None and rate < _WEAK_SUCCESS_RATE
                         and not entry["stochastic"])}


def _by_name(name):
    return lambda record: record.get("threat_model_name") == name


def _by_label(label):
    return lambda record: record.get("threat_model") == label


def _accuracy(record):
    return record.get("accuracy")


def _at_samples(n):
    return lambda record: (record.get("accuracy_vs_samples") or {}).get(str(n))


def _table(number, protocol, columns, params, rows, label_header=None):
    """The table, without the columns where no row has a number (ours or the
    paper's); None when no cell of ours is left."""
    keep = [a for a in columns if any(row["cells"].get(a) is not None
                                      or row["paper"].get(a) is not None for row in rows)]
    for row in rows:
        row["cells"] = {a: row["cells"].get(a) for a in keep}
        row["paper"] = {a: row["paper"].get(a) for a in keep}
    if not any(cell is not None for row in rows for cell in row["cells"].values()):
        return None
    return {"table": number, "protocol": protocol,
            "columns": [{"attack": a, "param": params.get(a, "")} for a in keep],
            "omitted": [{"attack": a, "param": params.get(a, "")} for a in columns
                        if a not in keep],
            "label_header": label_header, "rows": rows}


def _row(base, label, cells, paper):
    return {"model": base["model"], "run": base["run"], "defense": base["defense"],
            "adversarial": base["adversarial"], "label": label, "cells": cells,
            "paper": paper}


def paper_tables(dataset, stages):
    """Tables 3, 4 and 6 of `dataset` from the collected `stages` (report order).

    Returns:
        list of tables, each ``{"table", "protocol" ("paper", "eot",
        "apgd_rand"), "columns": [{"attack", "param"}], "label_header",
        "rows": [{"model", "run", "defense", "adversarial", "label", "cells":
        {attack: cell or None}, "paper": {attack: value or None}}]}``; a
        cell is ``{"ours" (accuracy summary), "param", "threat_model",
        "stage", "num_examples", "settings", "weak"}``. Tables without any
        cell of ours are left out.
    """
    params = first_params(dataset)
    stages = [s for s in stages if s.get("dataset") == dataset and "_results" in s]
    if not params or not stages:
        return []
    rows, records = _index(stages)
    tables = []

    def paper(table, row, attack, samples=None, defense=None):
        if row["adversarial"] or attack not in _TABLE_ATTACKS[table]:
            return None
        return _paper_value(table, dataset, defense or row["defense"], attack, samples)

    # Table 3: every defense x the five attacks, then under eot / apgd_rand.
    for protocol in ("paper",) + _ADAPTIVE:
        columns = _PAPER_ATTACKS + (_ADAPTIVE_EXTRA if protocol != "paper" else ())
        out = [_row(row, "", {a: _cell(records, row, a, params.get(a, ""), _by_name(protocol),
                                       _accuracy) for a in columns},
                    {a: paper(3, row, a) for a in columns}) for row in rows]
        tables.append(_table(3, protocol, columns, params, out))

    # Table 4: the attacker attacks S pinned sampled models (multi_sample).
    multi = {}
    for (row_id, _), entries in records.items():
        for entry in entries:
            match = _MULTI_LABEL.match(entry["record"].get("threat_model") or "")
            if match:
                multi.setdefault(row_id, set()).add(int(match.group(1)))
    multi_rows = [row for row in rows if (row["run"], row["weights"]) in multi]
    out = []
    for row in multi_rows:
        for count in sorted(set(_TABLE_SAMPLES[4]) | multi[(row["run"], row["weights"])]):
            threat = _by_label(f"multi_sample[S={count}]")
            out.append(_row(row, f"S={count}", {
                a: _cell(records, row, a, params.get(a, ""), threat, _accuracy)
                for a in _TABLE_ATTACKS[4]}, {a: paper(4, row, a, count)
                                              for a in _TABLE_ATTACKS[4]}))
    tables.append(_table(4, "paper", _TABLE_ATTACKS[4], params, out, "attacked models"))
    columns = _TABLE_ATTACKS[4] + _ADAPTIVE_EXTRA
    for protocol in _ADAPTIVE:
        out = []
        for row in multi_rows:
            lowest = {}
            for a in columns:
                values = [paper(4, row, a, count) for count in _TABLE_SAMPLES[4]]
                values = [v for v in values if v is not None]
                lowest[a] = min(values) if values else None
            out.append(_row(row, protocol, {a: _cell(records, row, a, params.get(a, ""),
                                                     _by_name(protocol), _accuracy)
                                            for a in columns}, lowest))
        tables.append(_table(4, protocol, columns, params, out, "attacker"))

    # Table 6: the base ensembles of 3 and 5; RLS against the defender's N.
    for protocol in ("paper",) + _ADAPTIVE:
        columns = _TABLE_ATTACKS[6] + (_ADAPTIVE_EXTRA if protocol != "paper" else ())
        threat = _by_name(protocol)
        out = []
        for row in rows:
            if row["defense"] == "ensemble":
                size = row.get("ensemble_size", 3)
                out.append(_row(row, f"base ensemble of {size}", {
                    a: _cell(records, row, a, params.get(a, ""), threat, _accuracy)
                    for a in columns}, {a: paper(6, row, a, size) for a in columns}))
        for row in rows:
            if row["defense"] == "rls":
                for count in _TABLE_SAMPLES[6]:
                    out.append(_row(row, f"N={count}", {
                        a: _cell(records, row, a, params.get(a, ""), threat,
                                 _at_samples(count)) for a in columns},
                        {a: paper(6, row, a, count) for a in columns}))
        tables.append(_table(6, protocol, columns, params, out, "ensemble / samples"))
    return [t for t in tables if t is not None]


def collect(suite, output_dir):
    """The report's data: per evaluation stage of its current spec, its numbers; per
    dataset, the paper's Tables 3, 4 and 6; the stages' completion records."""
    stages = []
    for stage in suite.evaluate:
        path = os.path.join(output_dir, "eval", stage.name, "results.json")
        state, _ = runner.record_state(
            suite, output_dir, runner.Stage("evaluate", stage.name, stage, stage.estimate_s))
        if state != "current" or not os.path.isfile(path):
            stages.append({"name": stage.name, "missing": path, "state": state})
            continue
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
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
    datasets = []
    for stage in stages:
        if stage.get("dataset") and stage["dataset"] not in datasets:
            datasets.append(stage["dataset"])
    tables = {dataset: paper_tables(dataset, stages) for dataset in datasets}
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
            "stages": stages, "stage_records": records, "other_records": orphans}


def _holds_up(stage):
    """Sentences computed from one stage's numbers."""
    lines = []
    rows = [r for r in stage["paper_protocol"] if r["attack"] != "clean"]
    by_model = {}
    for r in rows:
        by_model.setdefault(r["model"], {})[(r["table"], r["attack"], r["param"])] = r
    models = stage["columns"]
    plain = next((m for m, i in models.items() if i["defense"] == "plain"
                  and not i["adversarial"]), None)
    rls = next((m for m, i in models.items() if i["defense"] == "rls"
                and not i["adversarial"]), None)
    if plain and rls and plain in by_model and rls in by_model:
        common = [k for k in by_model[rls] if k in by_model[plain] and k[0] == 1]
        better = [k for k in common
                  if by_model[rls][k]["ours"]["mean"] > by_model[plain][k]["ours"]["mean"]]
        lines.append(f"Paper protocol (Table 1 cells): RLS is above the undefended model at "
                     f"{len(better)} of {len(common)} cells; the paper reports it above at "
                     f"all of them.")
    headline = stage["headline"]
    if headline:
        largest = max((float(e) for m in headline.values() for e in m), default=None)
        if largest is not None:
            parts = []
            for model, by_eps in headline.items():
                label, summary = _worst(by_eps.get(f"{largest:g}", {}))
                if label:
                    parts.append((summary["mean"], f"{model} {100 * summary['mean']:.1f}% "
                                                   f"({label})"))
            parts.sort(reverse=True)
            lines.append(f"Worst case over every attack and threat model at eps {largest:g}: "
                         + ", ".join(p for _, p in parts) + ".")
    checks = stage.get("masking_checks") or {}
    failed = sorted({(c["model"], c["check"]) for c in checks.get("checks", [])
                     if c.get("status") == "fail"})
    if checks:
        lines.append("Gradient-masking checks failed: " + (
            ", ".join(f"{m} `{c}`" for m, c in failed) if failed else "none") + ".")
    return lines


def _kappa_text(ours):
    """One interrater cell: mean ± std over the repeats, or why there is none."""
    if ours is None:
        return "— (deterministic: all samples identical)"
    if not isinstance(ours, dict) or "mean" not in ours:
        return json.dumps(ours)[:40]
    if ours["mean"] is None:
        # Kuncheva & Whitaker's kappa is 0/0 when the draws' mean accuracy is 0 or 1.
        return "undefined (every draw right on every image, or wrong on every one)"
    return f"{ours['mean']:.3f} ± {(ours.get('std') or 0.0):.3f}"


_TABLE_TITLES = {
    3: "Table 3: every defense, the paper's five attacks",
    4: "Table 4: the attacker attacks S sampled models (`multi_sample`)",
    6: "Table 6: accuracy against the number of samples",
}
_DATASET_TITLES = {"mnist": "MNIST", "cifar10": "CIFAR-10", "svhn": "SVHN"}


def _protocol_text(table):
    labels = sorted({cell["threat_model"] for row in table["rows"]
                     for cell in row["cells"].values() if cell})
    if table["protocol"] == "paper":
        return "the paper's protocol"
    return f"`{table['protocol']}`" + (f" ({', '.join(labels)})" if labels else "")


def _render_table(table):
    """One table of `paper_tables` as Markdown lines."""
    columns = [c["attack"] for c in table["columns"]]
    letters, sizes = {}, {}
    for row in table["rows"]:
        for cell in row["cells"].values():
            if cell:
                letters.setdefault(cell["stage"], chr(ord("a") + len(letters)))
                sizes.setdefault(cell["stage"], set()).add(cell["num_examples"])
    tagged = len(letters) > 1
    paper_head = "paper" if table["protocol"] == "paper" else "paper (its protocol)"
    if table["table"] == 4 and table["protocol"] != "paper":
        paper_head = "paper (lowest over S)"
    label = table["label_header"]
    head = "| Model |" + (f" {label} |" if label else "") + "".join(
        f" {_TITLES[a]} {paper_head} | {_TITLES[a]} ours |" for a in columns)
    out = [head, "|" + "---|" * (1 + bool(label) + 2 * len(columns))]
    weak = multiple = False
    for row in table["rows"]:
        line = f"| {row['model']} |" + (f" {row['label']} |" if label else "")
        for attack in columns:
            paper = row["paper"].get(attack)
            cell = row["cells"].get(attack)
            text = _DASH if cell is None else _pct(cell["ours"])
            if cell is not None:
                if tagged:
                    text += f" [{letters[cell['stage']]}]"
                if cell["weak"]:
                    text += f" {_WEAK}"
                    weak = True
                multiple = multiple or cell["settings"] > 1
            line += f" {_DASH if paper is None else f'{paper:.1f}'} | {text} |"
        out.append(line)
    out.append("")

    def images(stage):
        return "/".join(str(n) for n in sorted(n for n in sizes[stage] if n)) or "?"

    if tagged:
        out.append("Ours from: " + "; ".join(f"[{letter}] `{stage}` ({images(stage)} images)"
                                             for stage, letter in letters.items()) + ".")
    elif letters:
        stage = next(iter(letters))
        out.append(f"Ours from stage `{stage}` ({images(stage)} images).")
    if multiple:
        out.append("Where a column ran with several settings under this threat model (C&W and "
                   "EAD with confidence 0 and kappa, DeepFool with two overshoots), the cell "
                   "is the lowest of them.")
    if weak:
        out.append(f"{_WEAK} The harness's weak-attack flag: the attack found adversarial "
                   f"examples for fewer than {100 * _WEAK_SUCCESS_RATE:.0f}% of the images this "
                   "deterministic model gets right, so the cell measures the attack, not "
                   "robustness.")
    return out + [""]


def _table_params_text(table):
    parts = []
    for column in table["columns"]:
        attack, param = column["attack"], column["param"]
        if attack == "deepfool":
            parts.append("DeepFool: the paper prints no parameter (ours: the preset's "
                         "overshoot)")
        elif param:
            parts.append(f"{_TITLES[attack]} {param}")
    return "; ".join(parts)


def _tables_holds_up(tables):
    """Sentences comparing the first clean-trained rls row with plain, per table."""
    lines = []
    for table in tables:
        if table["table"] != 3:
            continue
        rows = [r for r in table["rows"] if not r["adversarial"]]
        plain = next((r for r in rows if r["defense"] == "plain"), None)
        rls = next((r for r in rows if r["defense"] == "rls"), None)
        if not plain or not rls:
            continue
        common = [a for a in (c["attack"] for c in table["columns"])
                  if plain["cells"].get(a) and rls["cells"].get(a)]
        if not common:
            continue
        above = [a for a in common if rls["cells"][a]["ours"]["mean"]
                 > plain["cells"][a]["ours"]["mean"]]
        papers = [a for a in common if rls["paper"].get(a) is not None
                  and plain["paper"].get(a) is not None]
        paper_above = [a for a in papers if rls["paper"][a] > plain["paper"][a]]
        lines.append(
            f"Table 3 under {_protocol_text(table)}: {rls['model']} is above {plain['model']} "
            f"in {len(above)} of {len(common)} columns ("
            + (", ".join(_TITLES[a] for a in above) or "none") + ")"
            + (f"; the paper reports RLS above at {len(paper_above)} of {len(papers)} of them"
               if papers and table["protocol"] == "paper" else "") + ".")
    return lines


def _render_paper_tables(dataset, tables):
    title = _DATASET_TITLES.get(dataset, dataset)
    out = [f"## {title}: the paper's tables", ""]
    if not any(paper_numbers.paper_cells(table=t, dataset=dataset) for t in (3, 4, 6)):
        out += [f"The paper prints Tables 3, 4 and 6 for CIFAR-10 only: the paper columns "
                f"here are empty; ours use Table 1's first {title} parameters.", ""]
    out += ["Ours beside the paper's printed numbers (robust accuracy in %, mean ± std over "
            "the defender's repeats), each cell from the evaluation stage with the most "
            "images that computed it; \"—\": no stage computed it (or the paper prints "
            "none: adversarially trained runs are never set beside the paper's numbers). "
            "Under the adaptive threat models the paper column repeats its own protocol's "
            "numbers, for contrast.", ""]
    for table in tables:
        heading = (f"### {_TABLE_TITLES[table['table']]}, under {_protocol_text(table)}")
        out += [heading, ""]
        params = _table_params_text(table)
        if params:
            out += [f"Parameters: {params}.", ""]
        if table.get("omitted"):
            out += ["Left out, no number there (ours or the paper's): " + ", ".join(
                f"{_TITLES[c['attack']]}" + (f" {c['param']}" if c["param"] else "")
                for c in table["omitted"]) + ".", ""]
        if table["table"] == 6:
            out += ["Base ensembles: the ensemble's accuracy (all members); RLS: the "
                    "defender's mean over its first N sampled models, on the same "
                    "adversarial images.", ""]
        out += _render_table(table)
    lines = _tables_holds_up(tables)
    if lines:
        out += ["### What holds up (the paper's tables)", ""] + [f"- {l}" for l in lines] + [""]
    return out


def _render(data):
    suite = data["suite"]
    out = [f"# Reproduction report: suite `{suite['name']}`", "", suite["description"], ""]
    if suite.get("caveats"):
        out += ["**Caveats of scale.** " + " ".join(suite["caveats"]), ""]
    out += ["Lee et al. (arXiv 2005.10757) trained ResNet-50 / VGG-16; the paper's numbers "
            "below are its printed ones (`rls_tf/reproduction/paper_numbers.py`), ours "
            "come from this suite's runs. Robust accuracy in %, mean ± std over the "
            "defender's repeats; eps in the models' [-1, 1] pixel units.", ""]
    for dataset, tables in data.get("paper_tables", {}).items():
        out += _render_paper_tables(dataset, tables)
    for stage in data["stages"]:
        out.append(f"## {stage['name']}")
        out.append("")
        if "missing" in stage:
            if stage.get("state") == "changed":
                out += [f"Not evaluated yet in its current version: the stage's record is of "
                        f"an earlier version of it (another definition or other training "
                        f"runs), whose results are not shown; the next run moves them "
                        f"aside and redoes the stage.", ""]
            else:
                out += [f"Not evaluated yet (`{stage['missing']}` is missing).", ""]
            continue
        out.append(f"Dataset {stage['dataset']}, {stage['num_examples']} test images; all "
                   f"tables of this stage: [`{stage['results'][:-5]}.md`]"
                   f"({stage['results'][:-5]}.md).")
        out.append("")
        out += ["| Model | run | defense | adversarially trained | clean | weights |",
                "|---|---|---|---|---|---|"]
        for model, info in stage["columns"].items():
            out.append(f"| {model} | `{info['run']}` | {info['defense']} | "
                       f"{'yes' if info['adversarial'] else 'no'} | "
                       f"{_pct(stage['clean'].get(model))} | "
                       f"{'`' + info['weights'] + '`' if info.get('weights') else '—'} |")
        out.append("")
        if stage["paper_protocol"]:
            out += ["### The paper's protocol beside the paper's numbers", "",
                    "| Table | Model | Attack | Param | Paper | Ours |", "|---|---|---|---|---|---|"]
            for r in stage["paper_protocol"]:
                out.append(f"| {r['table']} | {r['model']} | {r['attack']} | {r['param'] or '—'} "
                           f"| {r['paper']:.1f} | {_pct(r['ours'])} |")
            out.append("")
        if stage["interrater"]:
            out += ["### Interrater agreement (Table 5; lower = more diverse)", "",
                    "| Model | Paper | Ours |", "|---|---|---|"]
            for r in stage["interrater"]:
                paper = "—" if r["paper"] is None else (
                    f"{r['paper']:.2f}" + (f" ± {r['paper_std']:.3f}" if r["paper_std"] else ""))
                out.append(f"| {r['model']} | {paper} | {_kappa_text(r['ours'])} |")
            out.append("")
        if stage["headline"]:
            out += ["### Every threat model (loss-based attacks)", ""]
            labels = sorted({label for by_eps in stage["headline"].values()
                             for cells in by_eps.values() for label in cells})
            out += ["| Model | eps | " + " | ".join(labels) + " | worst |",
                    "|" + "---|" * (len(labels) + 3)]
            for model, by_eps in stage["headline"].items():
                for eps in sorted(by_eps, key=float):
                    cells = by_eps[eps]
                    worst_label, worst = _worst(cells)
                    out.append(f"| {model} | {eps} | "
                               + " | ".join(_pct(cells.get(label)) for label in labels)
                               + f" | {_pct(worst)} ({worst_label}) |")
            out.append("")
        lines = _holds_up(stage)
        if lines:
            out += ["### What holds up", ""] + [f"- {line}" for line in lines] + [""]
        for plot in ("robustness.png", "convergence.png"):
            if os.path.isfile(os.path.join(data["output_dir"], "eval", stage["name"], plot)):
                out += [f"![{stage['name']} {plot}]({stage['name']}_{plot})", ""]
    if data["stage_records"]:
        out += ["## Stages", "", "Weights: the first 16 hex digits of the SHA-256 of the "
                "weights in the trained `model.keras` (`runner.fingerprint`); an evaluation "
                "stage's model table names the weights it evaluated. Seconds are this "
                "stage's last run (a training resumed from a checkpoint counts only the "
                "resumed part). A record of an earlier version of its stage (another "
                "definition under the same name) is marked; its stage runs again.", "",
                "| Stage | seconds | estimate | test accuracy (training run) | weights |",
                "|---|---|---|---|---|"]
        for key, record in sorted(data["stage_records"].items()):
            accuracy = record.get("test_accuracy")
            earlier = " (earlier version)" if record.get("state") == "changed" else ""
            out.append(f"| {key}{earlier} | {record['seconds']:.0f} | "
                       f"{record['estimate_s']:.0f} | "
                       + (f"{100 * accuracy:.2f}% ({record.get('test_examples')} images)"
                          if accuracy is not None else "—") + " | "
                       + (f"`{record['fingerprint']}`" if record.get("fingerprint") else "—")
                       + " |")
        out.append("")
    if data.get("other_records"):
        out += ["Records of stages no longer in the suite (kept, not shown): "
                + ", ".join(f"`{key}`" for key in data["other_records"]) + ".", ""]
    return "\n".join(out)


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
