"""The sections of ``results.md`` that say how to read and trust the numbers.

The settings and notes (attack settings, weak-attack warnings, skipped runs,
versions, merge and combine provenance), the convergence sweeps of the adaptive
attack and the gradient-masking checks (`rls_tf.evaluation.masking`). Each
renderer takes the context of `rls_tf.evaluation.report_tables` and returns its
lines.
"""

from rls_tf.evaluation.report_tables import _ATTACK_TITLES, _DASH, _pct, _title


def _c_search(steps):
    return "constant c" if steps == 1 else f"binary search of c over {steps} steps from each c"


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
        f"- C&W-L2: {_c_search(preset['cw_binary_search_steps'])}, {preset['cw_steps']} "
        f"Adam steps at lr {preset['cw_lr']:g}, "
        f"confidence {preset['cw_confidence']:g}. EAD: "
        f"{_c_search(preset['ead_binary_search_steps'])}, beta {preset['ead_beta']:g}, "
        f"{preset['ead_steps']} steps at lr {preset['ead_lr']:g}, rule "
        f"{preset['ead_decision_rule']}. DeepFool: "
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
        entry = skipped.setdefault((skip["threat_model"], skip["reason"]), ({}, {}))
        entry[0][skip["attack"]] = None
        if "model" in skip:  # refused for some models only
            entry[1][_title(skip["model"])] = None
    for (label, reason), (names, models) in skipped.items():
        on = f" on {', '.join(models)}" if models else ""
        out.append(f"- Not run under {label}: {', '.join(names)}{on} ({reason}).")
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
        if merged.get("missing"):
            out.append(
                f"- **Partial**: shard(s) {', '.join(map(str, merged['missing']))} of "
                f"{merged['of_shards']} not computed yet; these numbers are of the "
                f"{merged['num_examples']} images the other shards "
                f"cover, of the evaluation's {merged['planned_examples']}."
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


def _render_indicators(ctx):
    """The attack-failure indicators, where the evaluation ran them."""
    section = ctx.results.get("indicators")
    if not section:
        return []
    from rls_tf.evaluation import indicators  # pylint: disable=import-outside-toplevel
    found = [indicators.Indicator.from_json(e) for e in section["entries"]]
    return ["## Attack-failure indicators", "",
            f"Probes of their own (EOT-PGD, {section['steps']} steps, E={section['eot_samples']}, "
            f"eps={section['eps']:g}, on the first {section['num_examples']} images); see "
            "`rls_tf.evaluation.indicators`.", "",
            indicators.render_indicator_table(found), ""]
