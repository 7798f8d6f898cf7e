"""The tables of ``results.md`` and what every section renderer reads.

The shared pieces (`model_title`, the attack titles and order, the ``_Context``
every renderer receives, the row and record indexes) and the table sections:
the header, the paper-layout main table, the per-defense tables, the
minimum-norm attacks, every run in detail, interrater agreement, accuracy
against the number of defender samples and the timings. Each renderer takes the
context and returns its lines; `rls_tf.evaluation.report` puts them in order
(`SECTIONS`).
"""

import dataclasses

from rls_tf.attacks import registry as attack_registry
from rls_tf.evaluation.formatting import DASH as _DASH
from rls_tf.evaluation.formatting import clean_json
from rls_tf.evaluation.formatting import number
from rls_tf.evaluation.formatting import percent
from rls_tf.evaluation.formatting import rate
from rls_tf.models.defenses import get_defense

__all__ = ["model_title"]

class _AttackTitles:
    """``{name: title}`` read from the attack registry at every lookup."""

    def __getitem__(self, name):
        return attack_registry.attack_titles().get(name, name)


# The table order and titles are the attack registry's.
_ATTACK_TITLES = _AttackTitles()


def _attack_order():
    return tuple(attack_registry.REGISTRY)


def model_title(key):
    """A results column's title: its defense's (`rls_tf.models.defenses`), else the key.

    ``"baseline"`` (the undefended network of earlier runs) is "Baseline".
    """
    if key == "baseline":
        return "Baseline"
    try:
        return get_defense(key).title
    except ValueError:
        return key


_title = model_title


_clean_json = clean_json
_pct = percent
_rate = rate
_num = number


def _threat_model_labels(results):
    labels = [t["label"] for t in results["config"]["threat_models"]]
    seen = {r["threat_model"] for r in results["robust"]}
    return [label for label in labels if label in seen] or labels


def _rows(results):
    """(attack, param) rows in table order."""
    rows = []
    for attack in _attack_order():
        for record in results["robust"]:
            row = (attack, record["param"])
            if record["attack"] == attack and row not in rows:
                rows.append(row)
    return rows


def _index(results):
    return {(r["threat_model"], r["attack"], r["param"], r["model"]): r for r in results["robust"]}


@dataclasses.dataclass(frozen=True)
class _Context:
    """What every section renderer reads."""

    results: dict
    config: dict
    preset: dict
    models: list
    labels: list
    index: dict
    command: object


def _render_header(ctx):
    """Title, the command and what the numbers are."""
    results = ctx.results
    config = ctx.config
    preset = ctx.preset
    command = ctx.command
    out = ["# Robustness evaluation", ""]
    if command:
        out += ["Command:", "", "```", command, "```", ""]
    dataset = results.get("data", {}).get("dataset", preset.get("dataset"))
    out.append(
        f"Dataset **{dataset}**, {config['num_examples']} test images; defender: "
        f"N={config['eval_samples']} fresh sampled models, robust accuracies in % as "
        f"mean ± std over R={config['repeats']} repeats of the defender's draw "
        f"(deterministic models are evaluated once). Preset `{preset['name']}`, "
        f"eps units `{preset['eps_units']}`, seed {config['seed']}."
    )
    out.append("")
    return out


def _layout_rows(ctx, models, cell):
    """The main table's layout (attack, parameter, a column per threat model x model).

    Args:
        ctx: the `_Context`.
        models: the columns' models.
        cell: ``entry -> text`` of a clean entry or a robust record.
    """
    results, labels, index = ctx.results, ctx.labels, ctx.index
    header = ["Attack", "Parameter"]
    for label in labels:
        header += [f"{label}: {_title(m)}" for m in models]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    clean = ["Clean", _DASH]
    for _ in labels:
        clean += [cell(results["clean"][m]) for m in models]
    out.append("| " + " | ".join(clean) + " |")
    for attack, param in _rows(results):
        cells = [_ATTACK_TITLES[attack], param]
        for label in labels:
            for m in models:
                record = index.get((label, attack, param, m))
                cells.append(cell(record) if record else _DASH)
        out.append("| " + " | ".join(cells) + " |")
    return out


def _render_main_table(ctx):
    """The paper's layout: one column block per threat model."""
    out = ["## Accuracy under attack (%), by threat model", ""]
    out += _layout_rows(ctx, ctx.models, lambda entry: _pct(entry["accuracy"]))
    out.append("")
    out.append(
        f"{_DASH}: not run under that threat model. Threat models: `paper` = attacker "
        "crafts on one random sampled model (a pinned path), `multi_sample[S]` = on the "
        "mean of S pinned sampled models, `eot[E]` = every gradient averaged over E fresh "
        "draws, `apgd_rand[E]` = APGD-CE then APGD-DLR with EOT E (AutoAttack's rand "
        "version). For the M=1 baseline every threat model is the plain white-box attack."
    )
    out.append("")
    return out


def _interval_text(record):
    interval = record.get("interval")
    if not interval:
        return _DASH
    return f"{100 * interval['low']:.1f}–{100 * interval['high']:.1f}"


def _worst_text(record):
    interval = record.get("interval")
    return f"{100 * interval['worst_of_r']:.1f}" if interval else _DASH


def _render_worst_of_r(ctx):
    """Worst-of-R accuracy and the 95% interval, in the main table's layout.

    Present only for results that carry intervals (format 3) and a defender
    with R > 1 repeats (a deterministic model's worst-of-R is its accuracy).
    """
    results, models = ctx.results, ctx.models
    with_repeats = [m for m in models
                    if (results["clean"][m].get("interval") or {}).get("repeats", 1) > 1]
    if not with_repeats:
        return []
    out = ["## Worst case over the defender's repeats (%), by threat model", ""]
    out += _layout_rows(ctx, with_repeats,
                        lambda entry: f"{_worst_text(entry)} ({_interval_text(entry)})")
    out.append("")
    out.append(
        "Each cell: worst-of-R accuracy, an image counting only if all R of the defender's "
        "repeats classify the adversarial image correctly (Lucas et al. 2023: a persistent "
        "attacker who may query R times), then in brackets the 95% Wilson interval of the "
        "expected accuracy over the images (each image scored by its mean over the R "
        "repeats, so the interval covers the draws as well as the choice of images).")
    out.append("")
    return out


def _render_defense_tables(ctx):
    """Table 3 layout: rows are the defenses, columns the attacks, per threat model."""
    results = ctx.results
    labels = ctx.labels
    models = ctx.models
    index = ctx.index
    out = []
    if len(models) < 3:
        return out
    out.append("## Defenses side by side (%), one table per threat model (paper Table 3 layout)")
    out.append("")
    for label in labels:
        columns = [(a, p) for a, p in _rows(results)
                   if any((label, a, p, m) in index for m in models)]
        if not columns:
            continue
        out.append(f"**{label}**")
        out.append("")
        header = ["Defense", "Clean"] + [f"{_ATTACK_TITLES[a]} {p}" for a, p in columns]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        for m in models:
            cells = [_title(m), _pct(results["clean"][m]["accuracy"])]
            for a, p in columns:
                record = index.get((label, a, p, m))
                cells.append(_pct(record["accuracy"]) if record else _DASH)
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return out


def _render_min_norm(ctx):
    """Success rates and perturbation sizes of DeepFool, C&W and EAD."""
    results = ctx.results
    labels = ctx.labels
    out = []
    min_norm = [r for r in results["robust"] if "success_rate" in r]
    if min_norm:
        out.append("## Minimum-norm attacks: success rate and perturbation size")
        out.append("")
        out.append(
            "Success rate: among the images the attacked model (the attacker's model, not "
            "the defender) classifies correctly, the fraction the attack turned into "
            "misclassified ones for that model. L2 / L1: mean (median) over those images, "
            "in [-1, 1] pixel units (halve for [0, 1] units)."
        )
        out.append("")
        out.append("| Threat model | Attack | Parameter | Model | Success rate | Mean L2 (median) "
                   "| Mean L1 (median) | Defender accuracy (%) |")
        out.append("|---|---|---|---|---|---|---|---|")
        for r in sorted(min_norm, key=lambda r: (labels.index(r["threat_model"])
                                                 if r["threat_model"] in labels else 99,
                                                 _attack_order().index(r["attack"]))):
            out.append(
                f"| {r['threat_model']} | {_ATTACK_TITLES[r['attack']]} | {r['param']} | "
                f"{_title(r['model'])} | {_rate(r['success_rate'])} | "
                f"{_num(r['l2']['mean'])} ({_num(r['l2']['median'])}) | "
                f"{_num(r['l1']['mean'], 2)} ({_num(r['l1']['median'], 2)}) | "
                f"{_pct(r['accuracy'])} |"
            )
        out.append("")
    return out


def _render_every_run(ctx):
    """Every record with the attacker's own accuracy and timings."""
    results = ctx.results
    out = []
    out.append("## Every run")
    out.append("")
    out.append(
        "Attacker's model: accuracy of the model the attack was run on (the pinned "
        "sampled model(s); under EOT a fresh E-draw estimate) on the adversarial "
        "images; the defender column is what the table above reports."
    )
    out.append("")
    # Results of format 3 carry each record's 95% interval and worst-of-R.
    intervals = any("interval" in r for r in results["robust"])
    extra = " | 95% interval (%) | Worst-of-R (%)" if intervals else ""
    out.append("| Threat model | Attack | Parameter | Model | Defender accuracy (%)" + extra
               + " | Attacker's model accuracy (%), clean → attacked | Max L-inf | Attack s "
               "| Defender s |")
    out.append("|---|---|---|---|---|---|---|---|---|" + ("---|---|" if intervals else ""))
    for r in results["robust"]:
        more = f" | {_interval_text(r)} | {_worst_text(r)}" if intervals else ""
        out.append(
            f"| {r['threat_model']} | {_ATTACK_TITLES[r['attack']]} | {r['param']} | "
            f"{_title(r['model'])} | {_pct(r['accuracy'])}{more} | "
            f"{100 * r['attacker_clean_accuracy']:.1f} → {100 * r['attacker_accuracy']:.1f} | "
            f"{r['linf_max']:.4f} | "
            f"{r['seconds']['attack']:.1f} | {r['seconds']['defender']:.1f} |"
        )
    out.append("")
    return out


def _render_interrater(ctx):
    """Table 5: kappa of the defender's N samples."""
    results = ctx.results
    config = ctx.config
    models = ctx.models
    out = []
    out.append(f"## Interrater agreement of the N={config['eval_samples']} sampled models (clean)")
    out.append("")
    out.append("Kuncheva & Whitaker (2003) kappa (paper Table 5): 1 = the samples are right "
               "on the same images; lower = more diverse.")
    out.append("")
    out.append("| Model | kappa (mean ± std over R) |")
    out.append("|---|---|")
    for m in models:
        kappa = results["interrater"].get(m)
        if kappa is None or kappa.get("mean") is None:
            text = f"{_DASH} (deterministic: all samples identical)" if not results["models"][m][
                "stochastic"] else _DASH
        else:
            text = f"{kappa['mean']:.4f} ± {kappa['std']:.4f} (R={kappa['repeats']})"
        out.append(f"| {_title(m)} | {text} |")
    out.append("")
    return out


def _render_vs_samples(ctx):
    """Table 6: accuracy against the number of defender samples."""
    results = ctx.results
    models = ctx.models
    out = []
    # Stochastic defenses (N fresh draws) and ensembles (their first N members).
    stochastic = [m for m in models if results["models"][m]["stochastic"]
                  or results["models"][m].get("defender", {}).get("fixed_draws")]
    if stochastic:
        counts = sorted({n for m in stochastic
                         for n in results["clean"][m]["accuracy_vs_samples"]}, key=int)
        out.append("## Accuracy (%) against the number of defender samples N")
        out.append("")
        out.append("Each cell: mean ± std over the R repeats (paper Table 6). For an "
                   "ensemble N is the number of members averaged (its first N), evaluated "
                   "once.")
        out.append("")
        out.append("| Model | Threat model | Attack | Parameter | "
                   + " | ".join(f"N={n}" for n in counts) + " |")
        out.append("|---|---|---|---|" + "---|" * len(counts))
        for m in stochastic:
            clean = results["clean"][m]["accuracy_vs_samples"]
            out.append(f"| {_title(m)} | {_DASH} | Clean | {_DASH} | "
                       + " | ".join(_pct(clean.get(n)) for n in counts) + " |")
            for r in results["robust"]:
                if r["model"] != m:
                    continue
                out.append(
                    f"| {_title(m)} | {r['threat_model']} | {_ATTACK_TITLES[r['attack']]} | "
                    f"{r['param']} | "
                    + " | ".join(_pct(r["accuracy_vs_samples"].get(n)) for n in counts) + " |"
                )
        out.append("")
    return out


def _render_timings(ctx):
    """Seconds per part."""
    results = ctx.results
    out = []
    out.append("## Timings")
    out.append("")
    out.append("| Part | Seconds |")
    out.append("|---|---|")
    for part, seconds in results["timings"].items():
        out.append(f"| {part} | {_num(seconds, 1)} |")
    out.append("")
    return out
