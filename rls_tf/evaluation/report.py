"""Writes an evaluation's results: ``results.json``, ``results.md``, ``robustness.png``.

* ``results.json``: everything `runner.run_evaluation` returned (every
  number, the full configuration, the defender's and attacker's paths,
  library versions, timings), plus the command line; NaN is written as null.
* ``results.md``: one small renderer per section (`SECTIONS`): the paper's layout (attack, parameter, then one column
  block per threat model holding the baseline and the RLS model), robust
  accuracy in % as mean +- std over the R repeats of the defender's draw;
  then the minimum-norm attacks' success rates and sizes, every run in
  detail (with the accuracy of the attacker's own model), interrater
  agreement, accuracy against the number of defender samples, timings and
  the notes needed to read the numbers.
* ``robustness.png``: robust accuracy against eps for PGD, one line per
  threat model and model (baseline dashed, RLS solid), eps = 0 being the
  clean accuracy; for ``apgd_rand``, which runs no PGD, its APGD line.
"""

import dataclasses
import json
import os

import numpy as np

from rls_tf.attacks import registry as attack_registry
from rls_tf.evaluation.formatting import DASH as _DASH
from rls_tf.evaluation.formatting import clean_json
from rls_tf.evaluation.formatting import number
from rls_tf.evaluation.formatting import percent
from rls_tf.evaluation.formatting import rate
from rls_tf.models.defenses import get_defense

__all__ = ["clean_json", "model_title", "percent", "markdown_report", "plot_convergence",
           "plot_robustness", "write_reports"]

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


def _render_main_table(ctx):
    """The paper's layout: one column block per threat model."""
    results = ctx.results
    models = ctx.models
    labels = ctx.labels
    index = ctx.index
    out = []
    out.append("## Accuracy under attack (%), by threat model")
    out.append("")
    header = ["Attack", "Parameter"]
    for label in labels:
        header += [f"{label}: {_title(m)}" for m in models]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "---|" * len(header))
    clean = ["Clean", _DASH]
    for _ in labels:
        clean += [_pct(results["clean"][m]["accuracy"]) for m in models]
    out.append("| " + " | ".join(clean) + " |")
    for attack, param in _rows(results):
        cells = [_ATTACK_TITLES[attack], param]
        for label in labels:
            for m in models:
                record = index.get((label, attack, param, m))
                cells.append(_pct(record["accuracy"]) if record else _DASH)
        out.append("| " + " | ".join(cells) + " |")
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
    out.append("| Threat model | Attack | Parameter | Model | Defender accuracy (%) "
               "| Attacker's model accuracy (%), clean → attacked | Max L-inf | Attack s "
               "| Defender s |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for r in results["robust"]:
        out.append(
            f"| {r['threat_model']} | {_ATTACK_TITLES[r['attack']]} | {r['param']} | "
            f"{_title(r['model'])} | {_pct(r['accuracy'])} | "
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


def _render_notes(ctx):
    """Settings, weak-attack warnings, skipped runs, versions."""
    results = ctx.results
    preset = ctx.preset
    out = []
    out.append("## Settings and notes")
    out.append("")
    scale = 2.0 if preset["eps_units"] == "unit" else 1.0
    out.append(
        f"- eps units: `{preset['eps_units']}`. "
        + ("The eps above are applied as given to the model's [-1, 1] pixels (eps=0.1 "
           "is 0.05 of the [0, 1] range, 12.75/255); the paper does not state its units."
           if scale == 1.0 else
           "The eps above are fractions of the [0, 1] range, doubled for the model's "
           "[-1, 1] pixels (eps=0.1 is 0.2 in model units, 25.5/255).")
    )
    out.append(
        f"- PGD ({'paper'} protocol): {preset['pgd_steps']} steps of "
        f"{preset['pgd_step_ratio']:g} eps, random start {preset['pgd_rand_init']}. "
        f"Under eot: {preset['eot_pgd_steps']} steps of 2.5 eps / {preset['eot_pgd_steps']}, "
        f"random start, {preset['eot_pgd_restarts']} restart(s), E={preset['eot_samples']}."
    )
    out.append(
        f"- APGD: {preset['apgd_steps']} steps; APGD-CE ({preset['apgd_restarts']} restart(s)) "
        "under paper/multi_sample/eot, APGD-CE then APGD-DLR (1 restart) under apgd_rand. "
        "With restarts or two losses the attacker keeps, per example, the candidate "
        "its own model (EOT estimate) finds worst; the defender is never consulted."
    )
    out.append(
        f"- C&W-L2: constant c, {preset['cw_steps']} Adam steps at lr {preset['cw_lr']:g}, "
        f"confidence {preset['cw_confidence']:g}, {preset['cw_binary_search_steps']} "
        f"binary-search step(s). EAD: beta {preset['ead_beta']:g}, {preset['ead_steps']} "
        f"steps at lr {preset['ead_lr']:g}, {preset['ead_binary_search_steps']} binary-search "
        f"step(s), rule {preset['ead_decision_rule']}. DeepFool: "
        f"overshoot {preset['deepfool_overshoot']:g}, {preset['deepfool_max_iter']} "
        "iterations at most."
    )
    if preset.get("eot_min_norm"):
        out.append(
            f"- Minimum-norm attacks under eot ({preset['eot_min_norm_steps']} steps) stop on "
            "the averaged model's decision boundary, where a random defender flips a coin: "
            f"they are also run with confidence kappa={preset['eot_kappa']:g} (C&W/EAD, in "
            "log mean probability) and DeepFool with overshoot "
            f"{preset['eot_deepfool_overshoot']:g}."
        )
    weak = {}
    for r in results["robust"]:
        if (r.get("success_rate") is not None and r["success_rate"] < 0.05
                and not results["models"][r["model"]]["stochastic"]):
            key = (_ATTACK_TITLES[r["attack"]], r["param"], _title(r["model"]))
            weak.setdefault(key, []).append((r["threat_model"], r["success_rate"]))
    for (attack, param, model), hits in weak.items():
        where = ", ".join(f"{label}: {100 * rate:.0f}%" for label, rate in hits)
        out.append(
            f"- **{attack} {param} found adversarial examples for almost none of the images "
            f"the undefended {model} gets right ({where})**: at this constant the attack is "
            "too weak for this model, so its rows measure the attack, not robustness (a "
            "binary search over c, --cw_binary_search_steps / --ead_binary_search_steps, "
            "finds more)."
        )
    skipped = {}
    for skip in results.get("skipped", []):
        skipped.setdefault((skip["threat_model"], skip["reason"]), []).append(skip["attack"])
    for (label, reason), names in skipped.items():
        out.append(f"- Not run under {label}: {', '.join(names)} ({reason}).")
    env = results.get("environment", {})
    versions = ", ".join(f"{k} {env[k]}" for k in ("tensorflow-cpu", "tensorflow", "keras",
                                                   "cleverhans", "foolbox", "numpy")
                         if k in env)
    cpu = f" ({env['cpu_model']})" if env.get("cpu_model") else ""
    out.append(f"- Versions: {versions}; {env.get('cpu_count', '?')} CPU core(s){cpu}.")
    merged = results.get("merged")
    if merged:
        out.append(
            f"- Merged from {merged['num_shards']} shards (`attack_eval.py --num_shards="
            f"{merged['num_shards']}`): every number is recomputed from the shards' per-example "
            "data; timings are summed over the shards (device time, not wall time)."
        )
    combined = results.get("combined")
    if combined:
        sources = "; ".join(
            f"`{part.get('source') or i}` ({', '.join(part['contributed']) or 'no new model'})"
            for i, part in enumerate(combined["parts"]))
        out.append(
            f"- Combined from {combined['num_parts']} evaluations of the same protocol "
            f"(`{combined.get('command') or 'attack_eval.py --combine'}`): {sources}. A model's "
            "numbers do not depend on the models evaluated beside it (every draw is seeded by "
            "the seed, the model's name and the batch), so these equal one run of the command "
            "above; models in several parts were checked to have the same numbers in each. "
            "The timings are each part's."
        )
    out.append("")
    return out


_SWEEP_TITLES = {"steps": "EOT-PGD steps", "draws": "EOT draws E", "eps": "eps"}


def _render_convergence(ctx):
    """Accuracy against steps, draws and eps (the convergence sweeps)."""
    records = ctx.results.get("convergence") or []
    if not records:
        return []
    out = ["## Convergence of the adaptive attack (%)", ""]
    first = records[0]
    out.append(
        f"EOT PGD (random start, step 2.5 eps / steps, CE loss) on the defender, "
        f"{first['num_examples']} images; one parameter varied at a time, the others at the "
        "preset's eot defaults (eps of the steps/draws sweeps: "
        f"{ctx.preset.get('convergence_eps') or max(ctx.preset['pgd_eps']):g}). "
        "An attack has converged when doubling the last value no longer lowers the "
        "accuracy by more than the defender's spread.")
    out.append("")
    for sweep in ("steps", "draws", "eps"):
        rows = [r for r in records if r["sweep"] == sweep]
        if not rows:
            continue
        values = sorted({r["value"] for r in rows})
        out.append(f"**{_SWEEP_TITLES[sweep]}**")
        out.append("")
        out.append("| Model | " + " | ".join(f"{v:g}" for v in values) + " |")
        out.append("|---|" + "---|" * len(values))
        for m in ctx.models:
            by_value = {r["value"]: r for r in rows if r["model"] == m}
            if not by_value:
                continue
            out.append(f"| {_title(m)} | " + " | ".join(
                _pct(by_value[v]["accuracy"]) if v in by_value else _DASH for v in values) + " |")
        out.append("")
    return out


def _render_masking(ctx):
    """The gradient-masking checks: pass/fail per defense with reasons."""
    from rls_tf.evaluation import masking  # pylint: disable=import-outside-toplevel

    checks = masking.masking_checks(ctx.results, reference=ctx.config.get("reference"))
    return masking.render_masking_table(checks).splitlines() + [""]


# The sections of results.md, in order: one small renderer each.
SECTIONS = (_render_header, _render_main_table, _render_defense_tables, _render_masking,
            _render_convergence, _render_min_norm, _render_every_run, _render_interrater,
            _render_vs_samples, _render_timings, _render_notes)


def markdown_report(results, command=None):
    """The ``results.md`` text: the `SECTIONS` one after the other."""
    config = results["config"]
    ctx = _Context(results=results, config=config, preset=config["preset"],
                   models=list(results["models"]), labels=_threat_model_labels(results),
                   index=_index(results), command=command)
    out = []
    for section in SECTIONS:
        out += section(ctx)
    return "\n".join(out)


def plot_robustness(results, path):
    """Saves robust accuracy against eps for PGD (one line per threat model x model).

    A threat model without PGD results (``apgd_rand``) gets its APGD line.
    """
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    preset = results["config"]["preset"]
    labels = [t["label"] for t in results["config"]["threat_models"]]
    models = list(results["models"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["--", "-", ":", "-."]
    # A marker per model as well: line styles alone repeat after four models.
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
    plotted = False
    for i, label in enumerate(labels):
        for j, m in enumerate(models):
            # PGD; APGD where the threat model has no PGD (apgd_rand).
            for attack in ("pgd", "apgd"):
                records = sorted(
                    (r for r in results["robust"]
                     if r["attack"] == attack and r["threat_model"] == label and r["model"] == m),
                    key=lambda r: r["eps"],
                )
                if records:
                    break
            if not records:
                continue
            clean = results["clean"][m]["accuracy"]
            eps = [0.0] + [r["eps"] for r in records]
            mean = [clean["mean"]] + [r["accuracy"]["mean"] for r in records]
            std = [clean["std"] or 0.0] + [r["accuracy"]["std"] or 0.0 for r in records]
            ax.errorbar(eps, 100 * np.asarray(mean), yerr=100 * np.asarray(std),
                        color=colors[i % len(colors)], linestyle=styles[j % len(styles)],
                        marker=markers[j % len(markers)], capsize=3,
                        label=f"{_title(m)}, {label}" + (" (APGD)" if attack == "apgd" else ""))
            plotted = True
    if not plotted:
        ax.text(0.5, 0.5, "no PGD results", ha="center", va="center", transform=ax.transAxes)
    unit = "[-1, 1] pixel units" if preset["eps_units"] == "model" else "[0, 1] units (x2 applied)"
    ax.set_xlabel(f"eps (L-inf, {unit})")
    ax.set_ylabel("accuracy under attack (%)")
    ax.set_ylim(0, 100)
    dataset = results.get("data", {}).get("dataset", preset.get("dataset"))
    ax.set_title(f"{dataset}: accuracy under PGD (APGD for apgd_rand) against eps, "
                 f"by threat model (N={results['config']['eval_samples']})", fontsize=10)
    ax.grid(alpha=0.3)
    if plotted:
        entries = len(ax.get_legend_handles_labels()[1])
        if entries > 8:  # beside the axes: inside, it would hide the curves
            columns = (entries - 1) // 24 + 1
            fig.set_size_inches(7 + 2.5 * columns, 4.5)
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=columns)
        else:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_convergence(results, path):
    """Saves accuracy against steps, draws and eps (one line per model)."""
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    records = results.get("convergence") or []
    sweeps = [s for s in ("steps", "draws", "eps") if any(r["sweep"] == s for r in records)]
    fig, axes = plt.subplots(1, max(1, len(sweeps)), figsize=(4.2 * max(1, len(sweeps)), 3.8),
                             squeeze=False)
    for ax, sweep in zip(axes[0], sweeps):
        for m in results["models"]:
            rows = sorted((r for r in records if r["sweep"] == sweep and r["model"] == m),
                          key=lambda r: r["value"])
            if not rows:
                continue
            ax.errorbar([r["value"] for r in rows],
                        [100 * r["accuracy"]["mean"] for r in rows],
                        yerr=[100 * (r["accuracy"]["std"] or 0.0) for r in rows],
                        marker="o", capsize=3, label=_title(m))
        if sweep != "eps":
            ax.set_xscale("log")
        ax.set_xlabel(_SWEEP_TITLES[sweep])
        ax.set_ylabel("accuracy under EOT PGD (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Convergence of the adaptive attack", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_reports(results, output_dir, command=None):
    """Writes results.json, results.md and the plots; returns their paths.

    ``robustness.png`` always; ``convergence.png`` when the results hold
    convergence sweeps. results.json gains ``masking_checks``.
    """
    from rls_tf.evaluation import masking  # pylint: disable=import-outside-toplevel

    os.makedirs(output_dir, exist_ok=True)
    if command is not None:
        results = {**results, "command": command}
    paths = {
        "json": os.path.join(output_dir, "results.json"),
        "markdown": os.path.join(output_dir, "results.md"),
        "plot": os.path.join(output_dir, "robustness.png"),
    }
    if results.get("convergence"):
        paths["convergence_plot"] = os.path.join(output_dir, "convergence.png")
    results = {**results, "masking_checks": masking.summarize(masking.masking_checks(
        results, reference=results["config"].get("reference")))}
    payload = _clean_json(results)
    tmp = paths["json"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1, allow_nan=False)
    os.replace(tmp, paths["json"])
    with open(paths["markdown"], "w", encoding="utf-8") as f:
        f.write(markdown_report(payload, command=command))
    plot_robustness(payload, paths["plot"])
    if "convergence_plot" in paths:
        plot_convergence(payload, paths["convergence_plot"])
    return paths
