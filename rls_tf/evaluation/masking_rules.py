"""The six gradient-masking checks, one rule each.

Each ``_check_<id>(results, model, ctx)`` returns ``(status, reason, details)``
for one model; `rls_tf.evaluation.masking` maps the `CHECKS` ids to them and
builds the `MaskingCheck` records. What they read from the results (records,
sweeps, references, the tolerance) is in `rls_tf.evaluation.masking_results`.
"""

import math

from rls_tf.evaluation.masking_results import (FAIL, NA, PASS, _attack_title, _describe,
                                               _eps_text, _family, _key, _mean, _n, _pct,
                                               _recipe, _robust, _std, _sweep,
                                               _threat_model_spec, _is_challenger,
                                               _white_box_best, tolerance)

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


# The white-box attacks the fixed-randomness check compares, strongest first.
_PINNED_ATTACKS = ("apgd", "pgd")


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

    # The strongest white-box attack on the pinned draw, compared with the
    # reference under the same attack: APGD (restarts, its step-size schedule)
    # where it ran under the pinned threat model, else PGD.
    def pinned_records(key):
        out = {}
        for r in _robust(results, key):
            if (getattr(_threat_model_spec(r), "single_path", False)
                    and r["attack"] in _PINNED_ATTACKS and r.get("value") is not None):
                out[(r["attack"], _key(r["value"]))] = r
        return out

    mine, ref = pinned_records(model), pinned_records(reference)
    by_eps = {}
    for (attack, eps), m in mine.items():
        r = ref.get((attack, eps))
        if r is None or m.get("attacker_accuracy") is None:
            continue
        current = by_eps.get(eps)
        if current is None or float(m["attacker_accuracy"]) < float(
                current[1]["attacker_accuracy"]):
            by_eps[eps] = (attack, m, r)
    eps_list = sorted(by_eps)
    if not eps_list:
        return NA, (f"no 'paper' PGD or APGD record at an eps where the reference {reference} "
                    f"has one under the same attack"), {}
    comparisons = []
    for eps in eps_list:
        attack, m, r = by_eps[eps]
        pinned = float(m["attacker_accuracy"])
        tol = tolerance(pinned, r["accuracy"], _n(m, r))
        acc_r = _mean(r["accuracy"])
        comparisons.append({"eps": eps, "attack": attack, "attacker_accuracy": pinned,
                            "reference_accuracy": acc_r,
                            "defender_accuracy": _mean(m["accuracy"]), "tol": tol,
                            "margin": pinned - acc_r - tol, "pass": pinned <= acc_r + tol})
    worst = max(comparisons, key=lambda c: c["margin"])
    attacks = sorted({c["attack"] for c in comparisons})
    used = "/".join(_attack_title(a) for a in attacks)
    hint = ("" if "apgd" in attacks else
            "; only PGD ran under paper: add --attacks=apgd for the strongest attack")
    details = {"reference": reference, "comparisons": comparisons, "attacks": attacks}
    if all(c["pass"] for c in comparisons):
        return PASS, (f"pinned sampled model {_pct(worst['attacker_accuracy'])} <= {reference} "
                      f"{_pct(worst['reference_accuracy'])} + tol {_pct(worst['tol'])} at the "
                      f"closest eps {worst['eps']:g}, and so at every eps "
                      f"{_eps_text(eps_list)} (paper {used}, the same attack on both"
                      f"{hint})"), details
    failed = ", ".join(f"{c['eps']:g}" for c in comparisons if not c["pass"])
    return FAIL, (f"pinned sampled model {_pct(worst['attacker_accuracy'])} > {reference} "
                  f"{_pct(worst['reference_accuracy'])} + tol {_pct(worst['tol'])} at eps "
                  f"{worst['eps']:g} (paper {_attack_title(worst['attack'])}, the same attack on "
                  f"both{hint}); the strongest attack on the fixed draw falls short of the "
                  f"undefended model at eps {failed}"), details
