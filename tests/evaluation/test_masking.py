"""Gradient-masking checks: pass and fail cases of every check on hand-made results."""

import ast
import dataclasses
import json
import os

import pytest

from rls_tf.evaluation import masking
from rls_tf.evaluation import masking_results
from rls_tf.evaluation import masking_rules

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MNIST = os.path.join(ROOT, "docs", "results", "mnist_defenses", "results.json")


# ---------------------------------------------------------------------------
# A small builder of results dicts.


def rec(model, threat_model, attack, eps, acc, std=0.0, attacker=None, n=100, name=None):
    """One robust record; the threat model name is the label's family unless given."""
    if name is None:
        name = threat_model.split("[")[0]
    return {"model": model, "threat_model": threat_model, "threat_model_name": name,
            "attack": attack, "param": f"eps={eps}", "value": eps,
            "accuracy": {"mean": acc, "std": std},
            "attacker_accuracy": acc if attacker is None else attacker, "num_examples": n}


def point(model, sweep, value, acc, std=0.0, eps=0.3, steps=20, draws=10, n=100):
    """One convergence entry (EOT PGD with one parameter varied)."""
    if sweep == "steps":
        steps = value
    elif sweep == "draws":
        draws = value
    else:
        eps = value
    return {"model": model, "sweep": sweep, "value": value, "attack": "pgd",
            "threat_model": f"eot[E={draws}]", "eps": eps, "steps": steps,
            "eot_samples": draws, "accuracy": {"mean": acc, "std": std}, "num_examples": n}


def results(robust=(), convergence=None, models=None):
    models = {"plain": False, "rls": True} if models is None else models
    out = {"models": {k: {"stochastic": v} for k, v in models.items()}, "robust": list(robust)}
    if convergence is not None:
        out["convergence"] = list(convergence)
    return out


def get(checks, check, model):
    (found,) = [c for c in checks if c.check == check and c.model == model]
    return found


# ---------------------------------------------------------------------------
# Registry, tolerance, reference.


def test_registry_lists_each_check_once_in_order():
    ids = [spec.id for spec in masking.CHECKS]
    assert ids == ["iterative_vs_single_step", "whitebox_vs_blackbox", "eps_sweep_to_chance",
                   "converged_steps", "converged_draws", "fixed_randomness_reaches_undefended"]
    assert all(spec.title and spec.meaning.endswith(".") for spec in masking.CHECKS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        masking.CHECKS[0].id = "x"
    checks = masking.masking_checks(results())
    assert [(c.model, c.check) for c in checks] == [(m, i) for m in ("plain", "rls") for i in ids]


def test_tolerance_is_both_stds_plus_one_example():
    assert masking.tolerance({"mean": 0.5, "std": 0.25}, {"mean": 0.1, "std": 0.125}, 8) == 0.5
    # Plain numbers (one pinned model) and a missing std count as std 0.
    assert masking.tolerance(0.7, {"mean": 0.5, "std": None}, 4) == 0.25
    assert masking.tolerance({"mean": 0.5}, 0.5, 2) == 0.5
    with pytest.raises(ValueError):
        masking.tolerance(0.1, 0.2, 0)


def test_reference_defaults_and_unknown_reference():
    assert masking.resolve_reference(results()) == "plain"
    assert masking.resolve_reference(results(models={"baseline": False, "rls": True})) == "baseline"
    assert masking.resolve_reference(results(models={"rls": True})) is None
    with pytest.raises(ValueError, match="'undefended'"):
        masking.masking_checks(results(), reference="undefended")


def test_module_imports_no_tensorflow_or_keras():
    with open(masking.__file__) as f:
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[0])
    assert names <= {"dataclasses", "math", "re", "typing", "numpy", "rls_tf"}
    assert not names & {"tensorflow", "keras"}


@pytest.mark.parametrize("module", [masking_results, masking_rules])
def test_split_modules_import_no_tensorflow_or_keras(module):
    # masking.py's inputs and rules moved into two modules; they stay TF-free too.
    with open(module.__file__) as f:
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[0])
    assert names <= {"dataclasses", "math", "re", "typing", "numpy", "rls_tf"}


# ---------------------------------------------------------------------------
# 1. PGD vs FGSM.


def test_pgd_stronger_than_fgsm_passes():
    res = results([rec("plain", "paper", "fgsm", 0.1, 0.4), rec("plain", "paper", "pgd", 0.1, 0.12),
                   rec("plain", "paper", "fgsm", 0.2, 0.3), rec("plain", "paper", "pgd", 0.2, 0.05),
                   rec("plain", "paper", "pgd", 0.3, 0.0)])  # no FGSM at 0.3: not compared
    check = get(masking.masking_checks(res), "iterative_vs_single_step", "plain")
    assert check.status == "pass"
    assert "PGD 5.0% <= FGSM 30.0% + tol 1.0% at the closest pair (eps 0.2, paper)" in check.reason
    assert "0.1, 0.2" in check.reason
    assert [c["eps"] for c in check.details["comparisons"]] == [0.1, 0.2]


def test_pgd_weaker_than_fgsm_fails():
    res = results([rec("rls", "eot[E=10]", "fgsm", 0.1, 0.4, std=0.01),
                   rec("rls", "eot[E=10]", "pgd", 0.1, 0.6, std=0.01),
                   rec("rls", "paper", "fgsm", 0.1, 0.4), rec("rls", "paper", "pgd", 0.1, 0.3)])
    check = get(masking.masking_checks(res), "iterative_vs_single_step", "rls")
    assert check.status == "fail"
    assert "PGD 60.0% > FGSM 40.0% + tol 3.0% at eps 0.1 (eot[E=10])" in check.reason
    assert [c["pass"] for c in check.details["comparisons"]] == [False, True]


def test_pgd_vs_fgsm_boundary_is_inclusive():
    # n = 8: the tolerance is exactly 1/8.
    ok = results([rec("plain", "paper", "fgsm", 0.1, 0.5, n=8), rec("plain", "paper", "pgd", 0.1, 0.625, n=8)])
    bad = results([rec("plain", "paper", "fgsm", 0.1, 0.5, n=8), rec("plain", "paper", "pgd", 0.1, 0.75, n=8)])
    assert get(masking.masking_checks(ok), "iterative_vs_single_step", "plain").status == "pass"
    assert get(masking.masking_checks(bad), "iterative_vs_single_step", "plain").status == "fail"


def test_pgd_vs_fgsm_needs_both_at_one_eps_and_label():
    res = results([rec("plain", "paper", "fgsm", 0.1, 0.4), rec("plain", "eot[E=10]", "pgd", 0.1, 0.5),
                   rec("plain", "paper", "pgd", 0.2, 0.5)])
    check = get(masking.masking_checks(res), "iterative_vs_single_step", "plain")
    assert check.status == "n/a" and "FGSM" in check.reason


# ---------------------------------------------------------------------------
# 2. White-box vs transfer / black-box / ARC.


def test_square_beating_eot_fails_naming_square():
    res = results([rec("rls", "eot[E=10]", "pgd", 0.3, 0.45, std=0.01),
                   rec("rls", "eot[E=10]", "square", 0.3, 0.30, std=0.02),
                   rec("rls", "transfer[plain]", "pgd", 0.3, 0.8)])
    check = get(masking.masking_checks(res), "whitebox_vs_blackbox", "rls")
    assert check.status == "fail"
    assert "Square (eot[E=10]) 30.0%" in check.reason and "gradients are masked" in check.reason
    assert "white-box PGD (eot[E=10]) 45.0%" in check.reason
    assert check.details["beaten_by"] == ["square"]
    assert len(check.details["comparisons"]) == 2


def test_whitebox_uses_the_strongest_whitebox_record_at_each_eps():
    # PGD alone (50%) would lose to SPSA (30%), but APGD-rand reaches 20%.
    res = results([rec("rls", "eot[E=10]", "pgd", 0.3, 0.5),
                   rec("rls", "apgd_rand[E=10]", "apgd", 0.3, 0.2),
                   rec("rls", "paper", "pgd", 0.3, 0.0),  # not white-box adaptive: ignored
                   rec("rls", "eot[E=10]", "spsa", 0.3, 0.3),
                   rec("rls", "arc[P=10]", "arc", 0.3, 0.21),
                   rec("rls", "transfer[plain]", "mifgsm", 0.3, 0.6)])
    check = get(masking.masking_checks(res), "whitebox_vs_blackbox", "rls")
    assert check.status == "pass", check.reason
    assert {c["white_box_attack"] for c in check.details["comparisons"]} == {"apgd"}
    assert "APGD (apgd_rand[E=10]) 20.0% <= ARC (arc[P=10]) 21.0% + tol 1.0%" in check.reason


def test_transfer_beating_whitebox_fails():
    res = results([rec("rls", "eot[E=10]", "pgd", 0.1, 0.7), rec("rls", "transfer[plain]", "pgd", 0.1, 0.5)])
    check = get(masking.masking_checks(res), "whitebox_vs_blackbox", "rls")
    assert check.status == "fail" and "PGD (transfer[plain]) 50.0%" in check.reason


def test_whitebox_vs_blackbox_not_available():
    none = results([rec("rls", "eot[E=10]", "pgd", 0.1, 0.7)])
    check = get(masking.masking_checks(none), "whitebox_vs_blackbox", "rls")
    assert check.status == "n/a" and check.reason == "no transfer, Square, SPSA or ARC record"
    other_eps = results([rec("rls", "eot[E=10]", "pgd", 0.1, 0.7), rec("rls", "eot[E=10]", "square", 0.2, 0.5)])
    check = get(masking.masking_checks(other_eps), "whitebox_vs_blackbox", "rls")
    assert check.status == "n/a" and "0.2" in check.reason


# ---------------------------------------------------------------------------
# 3. Eps sweep to chance.


def test_eps_sweep_not_reaching_chance_fails():
    conv = [point("rls", "eps", e, a) for e, a in [(0.1, 0.8), (0.2, 0.7), (0.3, 0.65)]]
    conv += [point("plain", "eps", e, a) for e, a in [(0.1, 0.5), (0.2, 0.1), (0.3, 0.0)]]
    checks = masking.masking_checks(results(convergence=conv))
    check = get(checks, "eps_sweep_to_chance", "rls")
    assert check.status == "fail"
    assert check.details["source"] == "convergence eps sweep"
    assert check.details["eps"] == 0.3 and check.details["bound"] == 0.1
    assert check.details["reference_reaches_zero"] is True
    assert "65.0% > max(chance 10.0%, plain 0.0%) + tol 1.0% at the largest eps 0.3" in check.reason
    assert "reaches 0" in check.reason
    assert get(checks, "eps_sweep_to_chance", "plain").status == "pass"


def test_eps_sweep_reaching_chance_passes_and_says_when_the_sweep_is_short():
    conv = [point("rls", "eps", e, a, std=0.02) for e, a in [(0.1, 0.6), (0.3, 0.12)]]
    robust = [rec("plain", "eot[E=10]", "pgd", 0.3, 0.05)]  # the reference is not at 0 there
    check = get(masking.masking_checks(results(robust, conv)), "eps_sweep_to_chance", "rls")
    assert check.status == "pass"  # 12% <= 10% + 2% + 1%
    assert check.details["tol"] == pytest.approx(0.03)
    assert check.details["reference_reaches_zero"] is False
    assert "the sweep does not go far enough" in check.reason


def test_eps_sweep_bound_is_the_reference_when_above_chance():
    robust = [rec("rls", "eot[E=10]", "pgd", 0.1, 0.9), rec("rls", "apgd_rand[E=10]", "apgd", 0.2, 0.35),
              rec("rls", "eot[E=10]", "pgd", 0.2, 0.4), rec("plain", "eot[E=10]", "pgd", 0.2, 0.3)]
    check = get(masking.masking_checks(results(robust)), "eps_sweep_to_chance", "rls")
    assert check.details["source"] == "white-box EOT/APGD-rand records"
    assert check.details["accuracy"] == 0.35 and check.details["bound"] == 0.3
    assert check.status == "fail"  # 35% > 30% + 1%
    robust[-1] = rec("plain", "eot[E=10]", "pgd", 0.2, 0.345)
    assert get(masking.masking_checks(results(robust)), "eps_sweep_to_chance", "rls").status == "pass"


def test_eps_sweep_without_reference_or_data():
    res = results([rec("rls", "eot[E=10]", "pgd", 0.3, 0.05)], models={"rls": True})
    check = get(masking.masking_checks(res), "eps_sweep_to_chance", "rls")
    assert check.status == "pass" and "no reference model" in check.reason
    assert check.details["reference_reaches_zero"] is None
    res = results([rec("rls", "paper", "pgd", 0.3, 0.05)])
    check = get(masking.masking_checks(res), "eps_sweep_to_chance", "rls")
    assert check.status == "n/a"
    assert get(masking.masking_checks(res, num_classes=100), "eps_sweep_to_chance", "rls").status == "n/a"


def test_chance_follows_num_classes():
    res = results([rec("rls", "eot[E=10]", "pgd", 0.3, 0.05)], models={"rls": True})
    assert get(masking.masking_checks(res, num_classes=10), "eps_sweep_to_chance", "rls").status == "pass"
    assert get(masking.masking_checks(res, num_classes=100), "eps_sweep_to_chance", "rls").status == "fail"


# ---------------------------------------------------------------------------
# 4. Steps and draws converged.


def test_steps_sweep_flattening_passes():
    conv = [point("rls", "steps", s, a, std=0.02) for s, a in [(10, 0.6), (20, 0.45), (40, 0.44)]]
    check = get(masking.masking_checks(results(convergence=conv)), "converged_steps", "rls")
    assert check.status == "pass"
    assert check.details["last_is_double"] is True
    assert "steps 20 -> 40" in check.reason and "change of 1.0% <= " in check.reason


def test_steps_sweep_not_flattening_fails():
    conv = [point("rls", "steps", s, a, std=0.01) for s, a in [(40, 0.3), (10, 0.6), (20, 0.45)]]
    check = get(masking.masking_checks(results(convergence=conv)), "converged_steps", "rls")
    assert check.status == "fail"
    assert check.details["comparisons"][0]["values"] == [10, 20, 40]
    assert "45.0% -> 30.0%" in check.reason and "not converged" in check.reason


def test_one_example_floor_for_a_deterministic_model():
    # std 0: a change of one image out of 8 is allowed, two are not.
    ok = [point("plain", "steps", 10, 0.5, n=8), point("plain", "steps", 20, 0.375, n=8)]
    bad = [point("plain", "steps", 10, 0.5, n=8), point("plain", "steps", 30, 0.25, n=8)]
    check = get(masking.masking_checks(results(convergence=ok)), "converged_steps", "plain")
    assert check.status == "pass"
    check = get(masking.masking_checks(results(convergence=bad)), "converged_steps", "plain")
    assert check.status == "fail"
    assert check.details["last_is_double"] is False
    assert "not twice the previous one" in check.reason


def test_draws_sweep():
    conv = [point("rls", "draws", e, a, std=0.01) for e, a in [(1, 0.8), (5, 0.6), (10, 0.4)]]
    conv += [point("plain", "draws", e, 0.1) for e in (1, 10)]
    checks = masking.masking_checks(results(convergence=conv))
    check = get(checks, "converged_draws", "rls")
    assert check.status == "fail" and "EOT draws E 5 -> 10" in check.reason
    plain = get(checks, "converged_draws", "plain")
    assert plain.status == "n/a" and "deterministic" in plain.reason
    conv = [point("rls", "draws", e, a, std=0.01) for e, a in [(5, 0.41), (10, 0.4)]]
    assert get(masking.masking_checks(results(convergence=conv)), "converged_draws", "rls").status == "pass"


def test_convergence_not_available():
    checks = masking.masking_checks(results(convergence=[point("rls", "steps", 10, 0.5)]))
    assert get(checks, "converged_steps", "rls").status == "n/a"
    assert "single value" in get(checks, "converged_steps", "rls").reason
    assert get(checks, "converged_draws", "rls").status == "n/a"
    assert "no draws sweep" in get(checks, "converged_draws", "rls").reason


# ---------------------------------------------------------------------------
# 5. Fixed randomness reaches the undefended model.


def test_pinned_attacker_far_above_reference_fails():
    robust = [rec("plain", "paper", "pgd", 0.1, 0.4), rec("plain", "paper", "pgd", 0.3, 0.02),
              rec("rls", "paper", "pgd", 0.1, 0.8, attacker=0.41),
              rec("rls", "paper", "pgd", 0.3, 0.7, attacker=0.30),
              rec("rls", "paper", "pgd", 0.2, 0.7, attacker=0.9)]  # no reference at 0.2
    check = get(masking.masking_checks(results(robust)), "fixed_randomness_reaches_undefended", "rls")
    assert check.status == "fail"
    assert "pinned sampled model 30.0% > plain 2.0% + tol 1.0% at eps 0.3" in check.reason
    assert [c["eps"] for c in check.details["comparisons"]] == [0.1, 0.3]
    assert [c["pass"] for c in check.details["comparisons"]] == [True, False]


def test_fixed_randomness_uses_the_strongest_attack_on_both():
    # Under paper PGD the pinned draw stays far above plain (the weak 10-step
    # attack); APGD brings both down: the check compares APGD with APGD.
    robust = [rec("plain", "paper", "pgd", 0.3, 0.20), rec("plain", "paper", "apgd", 0.3, 0.05),
              rec("rls", "paper", "pgd", 0.3, 0.6, attacker=0.33),
              rec("rls", "paper", "apgd", 0.3, 0.5, attacker=0.05)]
    check = get(masking.masking_checks(results(robust)), "fixed_randomness_reaches_undefended", "rls")
    assert check.status == "pass"
    assert check.details["comparisons"][0]["attack"] == "apgd"
    assert check.details["comparisons"][0]["reference_accuracy"] == 0.05
    assert "the same attack on both" in check.reason and "add --attacks=apgd" not in check.reason
    # PGD only: the check says how to make it stronger.
    pgd_only = [r for r in robust if r["attack"] == "pgd"]
    check = get(masking.masking_checks(results(pgd_only)), "fixed_randomness_reaches_undefended",
                "rls")
    assert check.status == "fail" and "add --attacks=apgd" in check.reason


def test_pinned_attacker_at_reference_level_passes():
    robust = [rec("plain", "paper", "pgd", 0.3, 0.02, std=0.0),
              rec("rls", "paper", "pgd", 0.3, 0.7, std=0.05, attacker=0.03)]
    check = get(masking.masking_checks(results(robust)), "fixed_randomness_reaches_undefended", "rls")
    assert check.status == "pass"
    assert check.details["comparisons"][0]["tol"] == pytest.approx(0.01)  # the defender std is not used


def test_fixed_randomness_not_applicable():
    robust = [rec("plain", "paper", "pgd", 0.3, 0.02), rec("ens", "paper", "pgd", 0.3, 0.5),
              rec("rls", "eot[E=10]", "pgd", 0.3, 0.5)]
    checks = masking.masking_checks(results(robust, models={"plain": False, "ens": False, "rls": True}))
    assert get(checks, "fixed_randomness_reaches_undefended", "ens").reason.startswith("deterministic")
    assert get(checks, "fixed_randomness_reaches_undefended", "plain").reason.startswith("deterministic")
    assert get(checks, "fixed_randomness_reaches_undefended", "rls").status == "n/a"
    # A stochastic reference is the reference itself.
    checks = masking.masking_checks(results(robust, models={"plain": False, "rls": True}), reference="rls")
    assert "reference itself" in get(checks, "fixed_randomness_reaches_undefended", "rls").reason
    # No reference at all.
    checks = masking.masking_checks(results([rec("rls", "paper", "pgd", 0.3, 0.5)], models={"rls": True}))
    check = get(checks, "fixed_randomness_reaches_undefended", "rls")
    assert check.status == "n/a" and "no reference" in check.reason


# ---------------------------------------------------------------------------
# Output.


def failing_results():
    return results([rec("plain", "paper", "fgsm", 0.1, 0.4), rec("plain", "paper", "pgd", 0.1, 0.1),
                    rec("rls", "paper", "fgsm", 0.1, 0.4), rec("rls", "paper", "pgd", 0.1, 0.6)])


def test_render_has_the_fail_cell_the_reason_and_the_meanings():
    checks = masking.masking_checks(failing_results())
    text = masking.render_masking_table(checks)
    rows = [line for line in text.splitlines() if line.startswith("| rls |")]
    assert rows and rows[0].split(" | ")[1] == "**FAIL**"
    assert "| plain | pass |" in text
    failed = get(checks, "iterative_vs_single_step", "rls")
    assert failed.reason in text
    for spec in masking.CHECKS:
        assert spec.meaning in text and spec.title in text
    assert "n/a" in text


def test_render_without_failures():
    checks = masking.masking_checks(results([rec("plain", "paper", "fgsm", 0.1, 0.4),
                                             rec("plain", "paper", "pgd", 0.1, 0.1)]))
    assert "No check failed." in masking.render_masking_table(checks)


def test_json_round_trip_and_summary():
    checks = masking.masking_checks(failing_results())
    for check in checks:
        data = json.loads(json.dumps(check.to_json()))
        assert masking.MaskingCheck.from_json(data) == check
    summary = json.loads(json.dumps(masking.summarize(checks)))
    assert summary["status"]["rls"]["iterative_vs_single_step"] == "fail"
    assert summary["status"]["plain"]["iterative_vs_single_step"] == "pass"
    assert set(summary["status"]["rls"]) == {spec.id for spec in masking.CHECKS}
    assert [masking.MaskingCheck.from_json(c) for c in summary["checks"]] == checks


# ---------------------------------------------------------------------------
# The real MNIST results (no transfer, black-box or convergence data).


@pytest.mark.skipif(not os.path.exists(MNIST), reason="docs/results/mnist_defenses/results.json missing")
def test_real_mnist_results():
    with open(MNIST) as f:
        real = json.load(f)
    checks = masking.masking_checks(real)
    models = list(real["models"])
    assert len(checks) == len(models) * len(masking.CHECKS)
    assert all(c.status in masking.STATUSES for c in checks)
    for model in models:
        assert get(checks, "whitebox_vs_blackbox", model).status == "n/a"
        assert get(checks, "converged_steps", model).status == "n/a"
        assert get(checks, "converged_draws", model).status == "n/a"
        assert get(checks, "eps_sweep_to_chance", model).status in ("pass", "fail")
        assert get(checks, "iterative_vs_single_step", model).status in ("pass", "fail")
        stochastic = real["models"][model]["stochastic"]
        fixed = get(checks, "fixed_randomness_reaches_undefended", model)
        assert (fixed.status in ("pass", "fail")) == (stochastic and model != "plain")
    status = masking.summarize(checks)["status"]
    assert {m: status[m]["iterative_vs_single_step"] for m in models} == {m: "pass" for m in models}
    assert {m: status[m]["fixed_randomness_reaches_undefended"] for m in models} == {
        "plain": "n/a", "rls": "fail", "ensemble": "n/a", "adp": "n/a", "rse": "fail"}
    # The reference itself gets to 2% at eps 0.3 (<= chance, but not 0).
    plain = get(checks, "eps_sweep_to_chance", "plain")
    assert plain.status == "pass" and plain.details["reference_reaches_zero"] is False
    assert "**FAIL**" in masking.render_masking_table(checks)
    json.dumps(masking.summarize(checks))


# ---------------------------------------------------------------------------
# The pinned draw's yardstick: the undefended model trained the same way.


def _trained(stochastic, defense, adv=None):
    recipe = None if adv is None else {"method": "pgd", "eps": adv}
    # As train.py records them: plain is defense "rls" with one copy.
    return {"stochastic": stochastic, "num_submodels": 2 if defense == "rls" else 1,
            "train_config": {"defense": "rls" if defense in ("plain", "rls") else defense,
                             "adversarial_training": recipe}}


def _at_results(models):
    robust = [rec("plain", "paper", "pgd", 0.6, 0.0),
              rec("plain_at", "paper", "pgd", 0.6, 0.90),
              rec("rls", "paper", "pgd", 0.6, 0.15, attacker=0.01),
              rec("rls_at", "paper", "pgd", 0.6, 0.86, attacker=0.88)]
    return {"models": models, "robust": [r for r in robust if r["model"] in models]}


def test_adversarially_trained_models_are_compared_with_the_plain_model_trained_the_same_way():
    models = {"plain": _trained(False, "plain"), "rls": _trained(True, "rls"),
              "ens_at": _trained(False, "ensemble", 0.6),  # deterministic, not undefended
              "plain_at": _trained(False, "plain", 0.6), "rls_at": _trained(True, "rls", 0.6)}
    results = _at_results(models)
    assert masking.pinned_references(results) == {
        "plain": "plain", "rls": "plain", "ens_at": "plain_at", "plain_at": "plain_at",
        "rls_at": "plain_at"}
    check = get(masking.masking_checks(results), "fixed_randomness_reaches_undefended", "rls_at")
    # 88% pinned against plain_at's 90%: passes; against the clean plain (0%) it would fail.
    assert check.status == "pass" and "<= plain_at 90.0%" in check.reason
    assert get(masking.masking_checks(results, reference="plain"),
               "fixed_randomness_reaches_undefended", "rls_at").status == "fail"


def test_an_adversarially_trained_model_without_its_plain_counterpart_is_not_judged():
    models = {"plain": _trained(False, "plain"), "rls_at": _trained(True, "rls", 0.6)}
    check = get(masking.masking_checks(_at_results(models)),
                "fixed_randomness_reaches_undefended", "rls_at")
    assert check.status == "n/a"
    assert "adversarially trained (pgd, eps 0.6)" in check.reason and "same way" in check.reason
    # Another eps is another recipe.
    models["plain_at"] = _trained(False, "plain", 0.3)
    assert masking.pinned_references(_at_results(models))["rls_at"] is None
