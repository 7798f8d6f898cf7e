"""The reproduction report: the paper's tables beside ours, then the honest attacks.

`write_report` reads the merged ``results.json`` of every evaluation stage
of a suite and writes ``REPORT.md`` and ``report.json`` (plus the stages'
plots, copied beside it):

* per evaluation stage, clean accuracy, and the paper protocol's numbers
  beside the paper's printed ones (`rls_tf.reproduction.paper_numbers`) at
  the same dataset, defense, attack and parameter: Table 1 (plain vs rls),
  Table 3 (the defenses, CIFAR-10), Table 5 (interrater agreement);
* the headline: per model, the accuracy at each eps under every threat model
  (the paper's, then the adaptive, transfer and black-box ones) and the
  worst of them;
* the gradient-masking checks of the stage;
* "what holds up": sentences computed from those numbers.

Adversarially trained runs are never set beside the paper's (clean-trained)
numbers.
"""

import json
import os
import shutil

from rls_tf.evaluation.report import percent as _pct
from rls_tf.reproduction import paper_numbers

__all__ = ["write_report", "collect"]

# Table 3 prints no parameters; its plain and rls rows are Table 1's CIFAR-10
# cells at these (see paper_numbers).
_TABLE3_PARAMS = {"fgsm": "eps=0.01", "pgd": "eps=0.01", "cw": "c=0.01", "ead": "c=0.01",
                  "deepfool": ""}
_PAPER_ATTACKS = ("fgsm", "pgd", "deepfool", "cw", "ead")


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
        if dataset == "cifar10":
            for cell in paper_numbers.paper_cells(table=3, dataset="cifar10",
                                                  defense=info["defense"]):
                param = _TABLE3_PARAMS[cell.attack]
                record = ours.get((model, cell.attack, param))
                if record is not None:
                    rows.append({"table": 3, "model": model, "attack": cell.attack,
                                 "param": param, "paper": cell.value,
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


def collect(suite, output_dir):
    """The report's data: one entry per evaluation stage whose results exist."""
    stages = []
    for stage in suite.evaluate:
        path = os.path.join(output_dir, "eval", stage.name, "results.json")
        if not os.path.isfile(path):
            stages.append({"name": stage.name, "missing": path})
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
        })
    records = {}
    for name in os.listdir(os.path.join(output_dir, "stages")) if os.path.isdir(
            os.path.join(output_dir, "stages")) else []:
        with open(os.path.join(output_dir, "stages", name), encoding="utf-8") as f:
            records[name[:-5]] = json.load(f)
    return {"suite": suite.to_json(), "stages": stages, "stage_records": records}


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


def _render(data):
    suite = data["suite"]
    out = [f"# Reproduction report: suite `{suite['name']}`", "", suite["description"], ""]
    if suite.get("caveats"):
        out += ["**Caveats of scale.** " + " ".join(suite["caveats"]), ""]
    out += ["Lee et al. (arXiv 2005.10757) trained ResNet-50 / VGG-16; the paper's numbers "
            "below are its printed ones (`rls_tf/reproduction/paper_numbers.py`), ours "
            "come from this suite's runs. Robust accuracy in %, mean ± std over the "
            "defender's repeats; eps in the models' [-1, 1] pixel units.", ""]
    for stage in data["stages"]:
        out.append(f"## {stage['name']}")
        out.append("")
        if "missing" in stage:
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
                "resumed part).", "",
                "| Stage | seconds | estimate | test accuracy (training run) | weights |",
                "|---|---|---|---|---|"]
        for key, record in sorted(data["stage_records"].items()):
            accuracy = record.get("test_accuracy")
            out.append(f"| {key} | {record['seconds']:.0f} | {record['estimate_s']:.0f} | "
                       + (f"{100 * accuracy:.2f}% ({record.get('test_examples')} images)"
                          if accuracy is not None else "—") + " | "
                       + (f"`{record['fingerprint']}`" if record.get("fingerprint") else "—")
                       + " |")
        out.append("")
    return "\n".join(out)


def write_report(suite, output_dir):
    """Writes ``REPORT.md``, ``report.json`` and the plots; returns the REPORT path."""
    data = collect(suite, output_dir)
    data["output_dir"] = output_dir
    for stage in data["stages"]:
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
