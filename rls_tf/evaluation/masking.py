"""Automatic gradient-masking checks from an evaluation's results dict.

The sanity checks of Carlini et al. 2019 ("On Evaluating Adversarial
Robustness", arXiv 1902.06705, Sections 5.2-5.4 and the checklist) and of
Athalye et al. 2018 ("Obfuscated Gradients Give a False Sense of Security"),
computed from what ``attack_eval.py`` writes (``results["models"]``,
``results["robust"]``, ``results["convergence"]``): nothing is attacked
again, every check only compares numbers already in the results.

`CHECKS` lists the checks once, in order (id, title, what a failure means);
`masking_checks` gives one `MaskingCheck` per (check, model), with status
``"pass"``, ``"fail"`` or ``"n/a"`` (the data a check needs is missing, or
it does not apply to the model) and a one-sentence reason carrying the
numbers. Every comparison allows the slack of `tolerance`.

The eps of a robust record is its ``value`` (preset units); records whose
``value`` is None (the minimum-norm attacks) are not eps-bounded and take
no part. A record's accuracy is the defender's robust accuracy
``accuracy["mean"]``; records whose mean is None (NaN) are skipped.

Example:

>>> checks = masking_checks(results)            # reference: "plain" / "baseline"
>>> print(render_masking_table(checks))
>>> results["masking"] = summarize(checks)

This module imports nothing from TensorFlow or Keras itself; attack titles
and what a record's attack and threat model are (white-box, score-based,
a challenger) come from the attack and threat-model registries.
"""

import dataclasses
import math
import re
from typing import Any, Dict

import numpy as np

from rls_tf.attacks.registry import REGISTRY as _ATTACKS
from rls_tf.attacks.registry import attack_titles
from rls_tf.evaluation.formatting import clean_json
from rls_tf.evaluation.formatting import rate
from rls_tf.evaluation.threat_models import THREAT_MODEL_REGISTRY

__all__ = ["BLACK_BOX_ATTACKS", "CHECKS", "CheckSpec", "MaskingCheck", "WHITE_BOX_ATTACKS",
           "WHITE_BOX_THREAT_MODELS", "masking_checks", "pinned_references",
           "render_masking_table", "resolve_reference", "summarize", "tolerance"]

PASS, FAIL, NA = "pass", "fail", "n/a"
STATUSES = (PASS, FAIL, NA)

# Views of the registries (built-in entries). A white-box adaptive record:
# a gradient loss attack through E fresh draws per step.
WHITE_BOX_THREAT_MODELS = tuple(n for n, s in THREAT_MODEL_REGISTRY.items() if s.uses_eot)
WHITE_BOX_ATTACKS = tuple(n for n, s in _ATTACKS.items()
                          if s.access == "gradient" and s.kind == "loss")
# Score-based attacks (run under "eot": E fresh draws per query).
BLACK_BOX_ATTACKS = tuple(n for n, s in _ATTACKS.items() if s.access == "scores")


def _threat_model_spec(record):
    """The record's `ThreatModelSpec`, or None (a name no longer registered)."""
    return THREAT_MODEL_REGISTRY.get(record.get("threat_model_name"))


def _attack_spec(record):
    """The record's `AttackSpec`, or None (a name no longer registered)."""
    return _ATTACKS.get(record.get("attack"))


@dataclasses.dataclass(frozen=True)
class CheckSpec:
    """One check of the registry: its id, a short title and what a failure means."""

    id: str
    title: str
    meaning: str


CHECKS = (
    CheckSpec(
        "iterative_vs_single_step", "PGD ≤ FGSM",
        "An iterative attack doing worse than a single gradient step means the gradient "
        "steps are misled (masked or noisy gradients, or a broken attack), so the PGD "
        "numbers do not bound the robustness from above."),
    CheckSpec(
        "whitebox_vs_blackbox", "White-box ≤ black-box",
        "A transfer, score-based (Square, SPSA) or ARC attack beating the adaptive "
        "white-box attack means the white-box gradients are masked or obfuscated: the "
        "white-box numbers overstate the robustness."),
    CheckSpec(
        "eps_sweep_to_chance", "Eps sweep reaches chance",
        "If the largest perturbation does not bring the accuracy down to chance (or to the "
        "undefended model's level), the attack is failing (masked gradients, too few steps, "
        "or a sweep that stops too early), not the model being robust."),
    CheckSpec(
        "converged_steps", "Steps converged",
        "Accuracy still changing between the last two step counts means the attack has not "
        "converged: more iterations would move the number further."),
    CheckSpec(
        "converged_draws", "EOT draws converged",
        "Accuracy still changing between the last two EOT sample counts means the gradient "
        "estimate of the randomised model is too noisy: more draws would move the number "
        "further."),
    CheckSpec(
        "fixed_randomness_reaches_undefended", "Fixed randomness ≈ undefended",
        "With its randomness fixed the model is an ordinary network; if the attack cannot "
        "bring that pinned model down to the undefended model's accuracy, the attack (not "
        "the randomness) is what is weak, and the numbers under randomness are not "
        "trustworthy (Carlini et al.: attacks must succeed when randomness is fixed)."),
)
_SPECS = {spec.id: spec for spec in CHECKS}


@dataclasses.dataclass
class MaskingCheck:
    """The outcome of one check on one model.

    Attributes:
        check: the `CheckSpec` id.
        model: the model key of ``results["models"]``.
        status: ``"pass"``, ``"fail"`` or ``"n/a"``.
        reason: one sentence with the numbers the status was decided on.
        details: JSON-able dict of every comparison made.
    """

    check: str
    model: str
    status: str
    reason: str
    details: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self):
        return {"check": self.check, "model": self.model, "status": self.status,
                "reason": self.reason, "details": clean_json(self.details)}

    @classmethod
    def from_json(cls, data):
        return cls(check=data["check"], model=data["model"], status=data["status"],
                   reason=data["reason"], details=dict(data.get("details") or {}))


# ---------------------------------------------------------------------------
# Numbers.


def _mean(summary):
    """The mean of an accuracy summary (or a plain number); None if missing/NaN."""
    if summary is None:
        return None
    value = summary.get("mean") if isinstance(summary, dict) else summary
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _std(summary):
    """The std of an accuracy summary; 0 for a plain number or a missing std."""
    if not isinstance(summary, dict):
        return 0.0
    value = summary.get("std")
    if value is None:
        return 0.0
    value = float(value)
    return value if math.isfinite(value) else 0.0


def tolerance(a, b, n):
    """The slack of every comparison of two accuracies: ``std_a + std_b + 1/n``.

    Each accuracy is a mean over R repeats of the defender's random draw, so two
    numbers measured on differently random defenders differ by about their spreads
    without either attack being stronger: both stds are allowed (summed, not added
    in quadrature, to stay on the side of no false alarm). ``1/n`` is one example of
    the n evaluated: accuracies move in steps of 1/n, and two attacks on the same
    images can differ by a single image from floating-point or tie effects; for
    deterministic models (std 0) it is the whole slack.

    Args:
        a, b: accuracy summaries (dicts with ``std``; a missing std counts 0) or
            plain numbers (std 0, e.g. an attacker accuracy of one pinned model).
        n: the number of examples (callers pass the smaller of the two records').
    """
    n = int(n)
    if n <= 0:
        raise ValueError(f"tolerance needs n >= 1 examples, got {n}")
    return _std(a) + _std(b) + 1.0 / n


_pct = rate


def _eps_text(values):
    return ", ".join(f"{v:g}" for v in values)


def _key(value):
    """A float made into a dict key (eps/steps/E printed from different places)."""
    return None if value is None else round(float(value), 10)


def _n(*records):
    counts = [int(r["num_examples"]) for r in records if r.get("num_examples")]
    if not counts:
        raise ValueError("a record without num_examples")
    return min(counts)


def _attack_title(attack):
    return attack_titles().get(attack, attack)


def _describe(record):
    return f"{_attack_title(record['attack'])} ({record['threat_model']})"


# ---------------------------------------------------------------------------
# Results access.


def resolve_reference(results, reference=None):
    """The undefended model's key: `reference`, else "plain", else "baseline", else None.

    Raises:
        ValueError: `reference` is given but is not a model of the results.
    """
    models = _models(results)
    if reference is not None:
        if reference not in models:
            raise ValueError(f"reference model {reference!r} is not in the results "
                             f"(models: {sorted(models)})")
        return reference
    for key in ("plain", "baseline"):
        if key in models:
            return key
    return None


def _recipe(entry):
    """A model's adversarial-training recipe, ``(method, eps)``, or None (clean-trained)."""
    config = (entry or {}).get("train_config") or {}
    recipe = config.get("adversarial_training")
    if not recipe:
        return None
    return (recipe.get("method"), recipe.get("eps"))


def _is_undefended(entry):
    # plain is RLS with one copy (train.py records defense "rls", num_submodels 1).
    config = entry.get("train_config") or {}
    return (not entry.get("stochastic", False) and config.get("defense") in ("plain", "rls")
            and entry.get("num_submodels", config.get("num_submodels")) == 1)


def pinned_references(results, reference=None):
    """Per model, the undefended model its pinned draw is compared with.

    An explicit `reference` serves every model. Otherwise each model gets the
    undefended (plain, deterministic) model trained with the same recipe: a
    clean-trained model the default reference (`resolve_reference`), an
    adversarially trained one the plain model adversarially trained with the
    same method and eps, or None when the results hold none (a clean plain
    network is no yardstick for an adversarially trained one: the attack that
    brings the clean one to 0% says nothing about the other's pinned draw).

    Returns:
        ``{model: reference key or None}``.
    """
    default = resolve_reference(results, reference)
    entries = results.get("models") or {}
    if reference is not None or not entries:
        return {model: default for model in _models(results)}
    out = {}
    for model in _models(results):
        recipe = _recipe(entries.get(model))
        if (default is not None and _recipe(entries.get(default)) == recipe) or \
                "train_config" not in (entries.get(model) or {}):
            out[model] = default  # results without training records: the default
            continue
        matches = [key for key, entry in entries.items()
                   if "train_config" in entry and _is_undefended(entry)
                   and _recipe(entry) == recipe]
        out[model] = matches[0] if matches else None
    return out


def _models(results):
    """``{key: stochastic}`` in results order (models of the records if no "models")."""
    models = {key: bool(entry.get("stochastic", False))
              for key, entry in (results.get("models") or {}).items()}
    if not models:
        for record in list(results.get("robust") or []) + list(results.get("convergence") or []):
            models.setdefault(record["model"], False)
    return models


def _robust(results, model):
    """The model's eps-bounded robust records with a defined accuracy."""
    return [r for r in results.get("robust") or []
            if r.get("model") == model and r.get("value") is not None
            and _mean(r.get("accuracy")) is not None]


def _is_white_box(record):
    threat_model, attack = _threat_model_spec(record), _attack_spec(record)
    return (threat_model is not None and threat_model.uses_eot and attack is not None
            and attack.access == "gradient" and attack.kind == "loss")


def _is_challenger(record):
    """A transfer, score-based black-box or ARC record."""
    threat_model, attack = _threat_model_spec(record), _attack_spec(record)
    return ((threat_model is not None and threat_model.challenger)
            or (attack is not None and attack.access != "gradient"))


def _white_box_best(records):
    """``{eps: record}``: the white-box record with the lowest accuracy at each eps."""
    best = {}
    for record in records:
        if _is_white_box(record):
            eps = _key(record["value"])
            if eps not in best or _mean(record["accuracy"]) < _mean(best[eps]["accuracy"]):
                best[eps] = record
    return best


def _sweep(results, model, sweep):
    return [c for c in results.get("convergence") or []
            if c.get("model") == model and c.get("sweep") == sweep
            and c.get("value") is not None and _mean(c.get("accuracy")) is not None]


def _family(label):
    """The threat model family of a label: "eot[E=10]" -> "eot"."""
    return re.sub(r"\[.*\]$", "", str(label))


# ---------------------------------------------------------------------------
# The checks: each returns (status, reason, details).


def _check_iterative_vs_single_step(results, model, ctx):
    records = _robust(results, model)
    fgsm = {(r["threat_model"], _key(r["value"])): r for r in records if r["attack"] == "fgsm"}
    pgd = {(r["threat_model"], _key(r["value"])): r for r in records if r["attack"] == "pgd"}
    pairs = [k for k in pgd if k in fgsm]
    if not pairs:
        return NA, "no threat model and eps with both an FGSM and a PGD record", {}
    comparisons = []
    for label, eps in pairs:
        p, f = pgd[(label, eps)], fgsm[(label, eps)]
        tol = tolerance(p["accuracy"], f["accuracy"], _n(p, f))
        acc_p, acc_f = _mean(p["accuracy"]), _mean(f["accuracy"])
        comparisons.append({"threat_model": label, "eps": eps, "pgd": acc_p, "fgsm": acc_f,
                            "tol": tol, "margin": acc_p - acc_f - tol,
                            "pass": acc_p <= acc_f + tol})
    worst = max(comparisons, key=lambda c: c["margin"])
    eps_list = sorted({c["eps"] for c in comparisons})
    details = {"comparisons": comparisons}
    if all(c["pass"] for c in comparisons):
        return PASS, (f"PGD {_pct(worst['pgd'])} <= FGSM {_pct(worst['fgsm'])} + tol "
                      f"{_pct(worst['tol'])} at the closest pair (eps {worst['eps']:g}, "
                      f"{worst['threat_model']}), and so at every eps {_eps_text(eps_list)}"), details
    failed = [c for c in comparisons if not c["pass"]]
    where = ", ".join(f"{c['eps']:g} ({c['threat_model']})" for c in failed)
    return FAIL, (f"PGD {_pct(worst['pgd'])} > FGSM {_pct(worst['fgsm'])} + tol "
                  f"{_pct(worst['tol'])} at eps {worst['eps']:g} ({worst['threat_model']}); "
                  f"PGD is weaker than FGSM at eps {where}"), details


def _check_whitebox_vs_blackbox(results, model, ctx):
    records = _robust(results, model)
    challengers = [r for r in records if _is_challenger(r)]
    if not challengers:
        return NA, "no transfer, Square, SPSA or ARC record", {}
    white = _white_box_best(records)
    comparisons = []
    for record in challengers:
        wb = white.get(_key(record["value"]))
        if wb is None:
            continue
        tol = tolerance(wb["accuracy"], record["accuracy"], _n(wb, record))
        acc_w, acc_c = _mean(wb["accuracy"]), _mean(record["accuracy"])
        comparisons.append({"eps": _key(record["value"]), "attack": record["attack"],
                            "threat_model": record["threat_model"], "accuracy": acc_c,
                            "white_box": acc_w, "white_box_attack": wb["attack"],
                            "white_box_threat_model": wb["threat_model"], "tol": tol,
                            "margin": acc_w - acc_c - tol, "pass": acc_w <= acc_c + tol})
    if not comparisons:
        eps = sorted({_key(r["value"]) for r in challengers})
        return NA, (f"no white-box EOT/APGD-rand record at the eps of the transfer, Square, "
                    f"SPSA or ARC records ({_eps_text(eps)})"), {}
    details = {"comparisons": comparisons}
    eps_list = sorted({c["eps"] for c in comparisons})
    worst = max(comparisons, key=lambda c: c["margin"])
    wb_name = f"{_attack_title(worst['white_box_attack'])} ({worst['white_box_threat_model']})"
    if all(c["pass"] for c in comparisons):
        return PASS, (f"white-box {wb_name} {_pct(worst['white_box'])} <= "
                      f"{_attack_title(worst['attack'])} ({worst['threat_model']}) "
                      f"{_pct(worst['accuracy'])} + tol {_pct(worst['tol'])} at the closest "
                      f"pair (eps {worst['eps']:g}), and no transfer/black-box/ARC attack "
                      f"beats the white-box one at eps {_eps_text(eps_list)}"), details
    failed = sorted((c for c in comparisons if not c["pass"]), key=lambda c: -c["margin"])
    beaten = ", ".join(f"{_attack_title(c['attack'])} ({c['threat_model']}) "
                       f"{_pct(c['accuracy'])} at eps {c['eps']:g}" for c in failed)
    details["beaten_by"] = sorted({c["attack"] for c in failed})
    return FAIL, (f"{_attack_title(worst['attack'])} ({worst['threat_model']}) "
                  f"{_pct(worst['accuracy'])} + tol {_pct(worst['tol'])} < white-box "
                  f"{wb_name} {_pct(worst['white_box'])} at eps {worst['eps']:g}: gradients "
                  f"are masked (beaten by {beaten})"), details


def _eps_curve(results, model):
    """``(source, {eps: point})``: the "eps" sweep if any, else the white-box minima.

    A point is a dict with ``accuracy`` (summary) and ``num_examples``; at each eps
    the lowest accuracy is kept (the strongest attack).
    """
    sweep = _sweep(results, model, "eps")
    if sweep:
        curve = {}
        for point in sweep:
            eps = _key(point["value"])
            if eps not in curve or _mean(point["accuracy"]) < _mean(curve[eps]["accuracy"]):
                curve[eps] = point
        return "convergence eps sweep", curve
    return "white-box EOT/APGD-rand records", _white_box_best(_robust(results, model))


def _label(point):
    if "sweep" in point:
        return f"EOT {_attack_title(point.get('attack', 'pgd'))} sweep ({point['threat_model']})"
    return _describe(point)


def _check_eps_sweep_to_chance(results, model, ctx):
    source, curve = _eps_curve(results, model)
    if not curve:
        return NA, "no eps sweep and no white-box EOT/APGD-rand record", {}
    chance = 1.0 / ctx["num_classes"]
    eps = max(curve)
    point = curve[eps]
    acc = _mean(point["accuracy"])
    reference = ctx["reference"]
    ref_point = None
    if reference is not None:
        if reference == model:
            ref_point = point
        else:
            ref_source, ref_curve = _eps_curve(results, reference)
            ref_point = ref_curve.get(eps)
            if ref_point is None and ref_source.startswith("convergence"):
                ref_point = _white_box_best(_robust(results, reference)).get(eps)
    ref_acc = _mean(ref_point["accuracy"]) if ref_point is not None else None
    # The reference is bounded by chance only (its own level would be vacuous).
    if ref_point is not None and reference != model:
        bound = max(chance, ref_acc)
        tol = tolerance(point["accuracy"], ref_point["accuracy"], _n(point, ref_point))
        bound_name = (f"max(chance {_pct(chance)}, {reference} {_pct(ref_acc)})")
    else:
        bound = chance
        tol = tolerance(point["accuracy"], None, _n(point))
        bound_name = f"chance {_pct(chance)}"
    reaches_zero = None if ref_point is None else ref_acc <= 1.0 / _n(ref_point)
    passed = acc <= bound + tol
    details = {"source": source, "eps": eps, "accuracy": acc, "attack": _label(point),
               "chance": chance, "reference": reference, "reference_accuracy": ref_acc,
               "bound": bound, "tol": tol, "reference_reaches_zero": reaches_zero,
               "sweep_far_enough": reaches_zero,
               "curve": {f"{e:g}": _mean(p["accuracy"]) for e, p in sorted(curve.items())}}
    reason = (f"{_label(point)} {_pct(acc)} {'<=' if passed else '>'} {bound_name} + tol "
              f"{_pct(tol)} at the largest eps {eps:g} ({source})")
    if reference is None:
        reason += "; no reference model to tell whether the sweep goes far enough"
    elif ref_point is None:
        reason += f"; the reference {reference} has no record at eps {eps:g}"
    elif reaches_zero:
        reason += f"; the reference {reference} reaches 0 there ({_pct(ref_acc)})"
    else:
        reason += (f"; the reference {reference} is still at {_pct(ref_acc)} there, not 0: "
                   f"the sweep does not go far enough")
    return (PASS if passed else FAIL), reason, details


_FIXED = {"steps": ("eps", "eot_samples"), "draws": ("eps", "steps"), "eps": ("steps", "eot_samples")}
_SWEEP_NAMES = {"steps": "steps", "draws": "EOT draws E"}


def _converged(results, model, sweep):
    points = _sweep(results, model, sweep)
    if not points:
        return NA, f"no {sweep} sweep in results['convergence']", {}
    groups = {}
    for point in points:
        group = (point.get("attack", "pgd"),
                 _family(point.get("threat_model", ""))) + tuple(
                     _key(point.get(k)) for k in _FIXED[sweep])
        groups.setdefault(group, {})[_key(point["value"])] = point  # later entries win
    comparisons = []
    for group, by_value in groups.items():
        values = sorted(by_value)
        if len(values) < 2:
            continue
        last, prev = by_value[values[-1]], by_value[values[-2]]
        acc_last, acc_prev = _mean(last["accuracy"]), _mean(prev["accuracy"])
        allowed = max(_std(last["accuracy"]), 1.0 / _n(last))
        change = abs(acc_last - acc_prev)
        comparisons.append({
            "attack": group[0], "threat_model": last.get("threat_model"),
            **{k: group[2 + i] for i, k in enumerate(_FIXED[sweep])},
            "values": values, "accuracies": [_mean(by_value[v]["accuracy"]) for v in values],
            "last": values[-1], "previous": values[-2], "accuracy_last": acc_last,
            "accuracy_previous": acc_prev, "change": change, "allowed": allowed,
            "last_is_double": math.isclose(values[-1], 2 * values[-2], rel_tol=1e-9),
            "pass": change <= allowed})
    if not comparisons:
        return NA, f"the {sweep} sweep has a single value", {}
    details = {"comparisons": comparisons,
               "last_is_double": all(c["last_is_double"] for c in comparisons)}
    worst = max(comparisons, key=lambda c: c["change"] - c["allowed"])
    name = _SWEEP_NAMES[sweep]
    doubling = ("" if worst["last_is_double"] else
                f" (the last value is not twice the previous one)")
    passed = all(c["pass"] for c in comparisons)
    reason = (f"{name} {worst['previous']:g} -> {worst['last']:g}{doubling}: accuracy "
              f"{_pct(worst['accuracy_previous'])} -> {_pct(worst['accuracy_last'])}, a change "
              f"of {_pct(worst['change'])} {'<=' if passed else '>'} max(std at the last point, "
              f"one example) {_pct(worst['allowed'])}")
    if not passed:
        reason += ": not converged"
    return (PASS if passed else FAIL), reason, details


def _check_converged_steps(results, model, ctx):
    return _converged(results, model, "steps")


def _check_converged_draws(results, model, ctx):
    if not ctx["stochastic"][model]:
        return NA, "deterministic model: its E draws are identical, so there is no EOT to converge", {}
    return _converged(results, model, "draws")


def _check_fixed_randomness(results, model, ctx):
    reference = ctx["pinned_references"][model]
    if not ctx["stochastic"][model]:
        return NA, "deterministic model: there is no randomness to fix", {}
    recipe = _recipe((results.get("models") or {}).get(model))
    if reference is None and recipe is not None:
        return NA, (f"adversarially trained ({recipe[0]}, eps {recipe[1]:g}) and the results "
                    f"hold no undefended model trained the same way to compare its pinned "
                    f"draw with"), {}
    if reference is None:
        return NA, "no reference (undefended) model in the results", {}
    if reference == model:
        return NA, "the model is the reference itself", {}

    def paper_pgd(key):
        return {_key(r["value"]): r for r in _robust(results, key)
                if getattr(_threat_model_spec(r), "single_path", False) and r["attack"] == "pgd"}

    mine, ref = paper_pgd(model), paper_pgd(reference)
    eps_list = sorted(e for e in mine if e in ref and mine[e].get("attacker_accuracy") is not None)
    if not eps_list:
        return NA, (f"no 'paper' PGD record at an eps where the reference {reference} "
                    f"has one too"), {}
    comparisons = []
    for eps in eps_list:
        m, r = mine[eps], ref[eps]
        pinned = float(m["attacker_accuracy"])
        tol = tolerance(pinned, r["accuracy"], _n(m, r))
        acc_r = _mean(r["accuracy"])
        comparisons.append({"eps": eps, "attacker_accuracy": pinned, "reference_accuracy": acc_r,
                            "defender_accuracy": _mean(m["accuracy"]), "tol": tol,
                            "margin": pinned - acc_r - tol, "pass": pinned <= acc_r + tol})
    worst = max(comparisons, key=lambda c: c["margin"])
    details = {"reference": reference, "comparisons": comparisons}
    if all(c["pass"] for c in comparisons):
        return PASS, (f"pinned sampled model {_pct(worst['attacker_accuracy'])} <= {reference} "
                      f"{_pct(worst['reference_accuracy'])} + tol {_pct(worst['tol'])} at the "
                      f"closest eps {worst['eps']:g}, and so at every eps "
                      f"{_eps_text(eps_list)} (paper PGD)"), details
    failed = ", ".join(f"{c['eps']:g}" for c in comparisons if not c["pass"])
    return FAIL, (f"pinned sampled model {_pct(worst['attacker_accuracy'])} > {reference} "
                  f"{_pct(worst['reference_accuracy'])} + tol {_pct(worst['tol'])} at eps "
                  f"{worst['eps']:g} (paper PGD); the attack on the fixed draw falls short of "
                  f"the undefended model at eps {failed}"), details


_RULES = {
    "iterative_vs_single_step": _check_iterative_vs_single_step,
    "whitebox_vs_blackbox": _check_whitebox_vs_blackbox,
    "eps_sweep_to_chance": _check_eps_sweep_to_chance,
    "converged_steps": _check_converged_steps,
    "converged_draws": _check_converged_draws,
    "fixed_randomness_reaches_undefended": _check_fixed_randomness,
}
assert tuple(_RULES) == tuple(spec.id for spec in CHECKS)


def masking_checks(results, reference=None, num_classes=10):
    """Every check of `CHECKS` on every model of the results.

    Args:
        results: the dict ``attack_eval.py`` writes (``models``, ``robust`` and,
            optionally, ``convergence``).
        reference: key of the undefended model (None: "plain" if present, else
            "baseline" if present, else none; checks needing it say so).
        num_classes: the number of classes (chance = 1/num_classes).

    Returns:
        list of `MaskingCheck`, model by model (results order), checks in `CHECKS`
        order.

    Raises:
        ValueError: `reference` is not a model of the results.
    """
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    stochastic = _models(results)
    ctx = {"reference": resolve_reference(results, reference), "stochastic": stochastic,
           "pinned_references": pinned_references(results, reference),
           "num_classes": int(num_classes)}
    out = []
    for model in stochastic:
        for spec in CHECKS:
            status, reason, details = _RULES[spec.id](results, model, ctx)
            out.append(MaskingCheck(spec.id, model, status, reason, clean_json(details)))
    return out


def summarize(checks):
    """For results.json: ``{"status": {model: {check: status}}, "checks": [to_json()]}``."""
    status = {}
    for check in checks:
        status.setdefault(check.model, {})[check.check] = check.status
    return {"status": status, "checks": [check.to_json() for check in checks]}


def render_masking_table(checks):
    """A Markdown section: the status table, the failures' reasons, what each check means."""
    models = list(dict.fromkeys(check.model for check in checks))
    ids = [spec.id for spec in CHECKS if any(c.check == spec.id for c in checks)]
    ids += [i for i in dict.fromkeys(c.check for c in checks) if i not in ids]
    by_key = {(c.model, c.check): c for c in checks}
    cells = {PASS: "pass", FAIL: "**FAIL**", NA: "n/a"}
    titles = [_SPECS[i].title if i in _SPECS else i for i in ids]
    out = ["## Gradient-masking checks", "",
           "Automatic checks of Carlini et al. 2019 (arXiv 1902.06705) and Athalye et al. 2018 "
           "on the numbers above; every comparison allows std_a + std_b + 1/n (the defender "
           "spreads of both numbers plus one example).", "",
           "| Model | " + " | ".join(titles) + " |",
           "|" + "---|" * (len(ids) + 1)]
    for model in models:
        row = [cells.get(by_key[(model, i)].status, by_key[(model, i)].status)
               if (model, i) in by_key else "—" for i in ids]
        out.append(f"| {model} | " + " | ".join(row) + " |")
    out.append("")
    failed = [c for c in checks if c.status == FAIL]
    if failed:
        out += ["Failed checks:", ""]
        for c in failed:
            title = _SPECS[c.check].title if c.check in _SPECS else c.check
            out.append(f"- **{c.model}**, {title} (`{c.check}`): {c.reason}.")
    else:
        out.append("No check failed.")
    out += ["", "What a failure means:", ""]
    for i in ids:
        if i in _SPECS:
            out.append(f"- **{_SPECS[i].title}** (`{i}`): {_SPECS[i].meaning}")
    out.append("")
    return "\n".join(out)
