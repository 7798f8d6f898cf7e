"""The paper's layout of a dataset's results: Tables 3, 4 and 6, ours beside the paper's.

`paper_tables` builds, from the evaluation stages of one dataset, the paper's
Table 3 (every defense x FGSM, PGD, DeepFool, C&W, EAD at the paper's first
parameter, `first_params`), Table 4 (``multi_sample``: the attacker attacks S
sampled models) and Table 6 (accuracy against the defender's N samples), each
again under the adaptive threat models where those ran. A cell is the lowest
setting of the stages with the most images that hold it. The tables are data
(dicts); `rls_tf.reproduction.report_render` writes them as Markdown.
"""

import re

from rls_tf.reproduction import paper_numbers

__all__ = ["first_params", "paper_tables"]

_PAPER_ATTACKS = ("fgsm", "pgd", "deepfool", "cw", "ead")
# The columns of the paper's Tables 3, 4 and 6; under the adaptive threat
# models APGD joins them (the attack apgd_rand runs; APGD-CE under eot).
_TABLE_ATTACKS = {3: _PAPER_ATTACKS, 4: ("fgsm", "pgd", "cw"), 6: ("fgsm", "pgd", "cw")}
_ADAPTIVE = ("eot", "apgd_rand")
_ADAPTIVE_EXTRA = ("apgd",)


_TABLE_SAMPLES = {4: (1, 5, 10, 15), 6: (5, 10, 15)}
_MULTI_LABEL = re.compile(r"^multi_sample\[S=(\d+)\]$")
# The harness's weak-attack flag (rls_tf.evaluation.report): a minimum-norm
# attack that fools fewer than this share of the images a deterministic model
# gets right measures the attack, not robustness.
_WEAK_SUCCESS_RATE = 0.05


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
                "partial": bool((stage.get("partial") or {}).get("missing")),
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
    """Our cell: the lowest setting among the stages with the most images holding it.

    Two stages of as many images (e.g. EAD at the paper's constant c and
    searched from it) both count: the cell is the strongest reading.
    """
    found = [e for e in records.get(((row["run"], row["weights"]), attack), [])
             if threat(e["record"]) and _matches(attack, wanted, e["record"].get("param"))]
    if not found:
        return None
    most = max(e["n"] or 0 for e in found)
    chosen = []
    for entry in found:
        if (entry["n"] or 0) == most:
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
            "num_examples": entry["n"], "settings": len(chosen), "partial": entry["partial"],
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
