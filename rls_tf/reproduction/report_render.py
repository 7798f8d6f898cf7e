"""``REPORT.md`` as Markdown from the report's data (`rls_tf.reproduction.report.collect`).

`_render` writes the document: the paper's tables per dataset (from
`rls_tf.reproduction.paper_layout`) and the worst case per defense, then per
evaluation stage its clean accuracy, the paper-protocol cells beside the
paper's, interrater agreement, the headline worst cases, the gradient-masking
checks and "what holds up" (`_holds_up`, sentences computed from the
numbers), then the stage records.
"""

import json
import os

from rls_tf.evaluation.report import percent as _pct
from rls_tf.reproduction import paper_numbers
from rls_tf.reproduction.paper_layout import _WEAK_SUCCESS_RATE

_TITLES = {"fgsm": "FGSM", "pgd": "PGD", "deepfool": "DeepFool", "cw": "C&W", "ead": "EAD",
           "apgd": "APGD"}


_WEAK = "‡"
_DASH = "—"


def _worst(cells):
    return min(cells.items(), key=lambda kv: kv[1]["mean"]) if cells else (None, None)


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
    letters, sizes, partial = {}, {}, set()
    for row in table["rows"]:
        for cell in row["cells"].values():
            if cell:
                if cell.get("partial"):
                    partial.add(cell["stage"])
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
        text = "/".join(str(n) for n in sorted(n for n in sizes[stage] if n)) or "?"
        return text + (" images, a partial stage" if stage in partial else " images")

    if tagged:
        out.append("Ours from: " + "; ".join(f"[{letter}] `{stage}` ({images(stage)})"
                                             for stage, letter in letters.items()) + ".")
    elif letters:
        stage = next(iter(letters))
        out.append(f"Ours from stage `{stage}` ({images(stage)}).")
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


def _render_worst_cases(dataset, worst):
    title = _DATASET_TITLES.get(dataset, dataset)
    out = [f"## {title}: the worst case per defense", "",
           "Per model and eps: the lowest robust accuracy (%) over every loss-based attack "
           "and threat model of every stage of the dataset, each attack and threat model "
           "taken from the stage with the most images that ran it; the cell names the "
           "attack@threat model, the stage, its images and how many attack@threat model "
           "results it is the lowest of (few: a weak worst case). Clean: from the stage "
           "with the most images. eps in the models' [-1, 1] units (in brackets: /255 "
           "of the [0, 1] range).", ""]
    heads = [_eps_label(e) for e in worst["eps"]]
    out += ["| Model | adversarially trained | clean | " + " | ".join(heads) + " |",
            "|" + "---|" * (3 + len(heads))]
    for row in worst["rows"]:
        clean = row["clean"]
        line = (f"| {row['model']} | {'yes' if row['adversarial'] else 'no'} | "
                + (_DASH if clean is None else
                   f"{_pct(clean['accuracy'])} ({clean['num_examples']})") + " |")
        for e in worst["eps"]:
            cell = row["cells"].get(e["key"])
            line += (f" {_DASH} |" if cell is None else
                     f" {_pct(cell['accuracy'])} ({cell['label']}, {cell['stage']}, "
                     f"{cell['num_examples']}; of {cell['compared']}) |")
        out.append(line)
    out.append("")
    lines = _worst_holds_up(worst)
    if lines:
        out += ["### What holds up (worst cases)", ""] + [f"- {l}" for l in lines] + [""]
    return out


def _eps_label(e):
    return e["key"] + (f" ({e['unit_255']}/255)" if e["unit_255"] else "")


def _eps_text(e):
    return f"eps {_eps_label(e)}"


def _worst_holds_up(worst):
    """Sentences from the worst-case table: the ranking at each eps, and RLS's two objectives."""
    lines = []
    for e in worst["eps"]:
        ranked = sorted(((row["cells"][e["key"]]["accuracy"]["mean"], row["model"])
                         for row in worst["rows"] if e["key"] in row["cells"]), reverse=True)
        if len(ranked) > 1:
            lines.append(f"Worst case at {_eps_text(e)}, highest first: "
                         + ", ".join(f"{m} {100 * v:.1f}%" for v, m in ranked) + ".")
    rls = {row["loss"]: row for row in worst["rows"]
           if row["defense"] == "rls" and not row["adversarial"]}
    if "mse" in rls and "crossentropy" in rls:
        mse, ce = rls["mse"], rls["crossentropy"]
        gap = {e["key"]: (mse["cells"][e["key"]]["accuracy"]["mean"]
                          - ce["cells"][e["key"]]["accuracy"]["mean"])
               for e in worst["eps"] if e["key"] in mse["cells"] and e["key"] in ce["cells"]}
        common = [e for e in worst["eps"] if e["key"] in gap]
        above = [e for e in common if gap[e["key"]] > 0]
        below = [e for e in common if gap[e["key"]] < 0]
        lines.append(
            f"RLS with the paper's MSE objective ({mse['model']}) against cross-entropy "
            f"({ce['model']}), worst case over every threat model: higher at {len(above)} of "
            f"{len(common)} eps" + (f" ({', '.join(_eps_text(e) for e in above)})" if above
                                    else "")
            + f", lower at {len(below)}" + (
                f" ({', '.join(_eps_text(e) for e in below)})" if below else "") + ".")
    return lines


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
    for dataset, worst in data.get("worst_cases", {}).items():
        out += _render_worst_cases(dataset, worst)
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
        partial = stage.get("partial")
        if partial and partial["missing"]:
            out.append(f"**Partial: not finished.** Dataset {stage['dataset']}, "
                       f"{stage['num_examples']} of its {partial['planned_examples']} test "
                       f"images: {partial['shards']} of its {partial['of_shards']} shards "
                       f"(missing: {', '.join(map(str, partial['missing']))}), merged as they "
                       "are; its results.json is written when the last one is.")
        elif partial:
            out.append(f"Dataset {stage['dataset']}, {stage['num_examples']} test images: "
                       f"all {partial['shards']} shards, merged here; the run that records "
                       "the stage writes its results.json.")
        else:
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
