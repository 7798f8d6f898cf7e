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

(Not run as a doctest: it needs an evaluation's results.)

>>> checks = masking_checks(results)            # reference: "plain" / "baseline"  # doctest: +SKIP
>>> print(render_masking_table(checks))  # doctest: +SKIP
>>> results["masking"] = summarize(checks)  # doctest: +SKIP

This module owns the check registry (`CHECKS`), the `MaskingCheck` record,
`masking_checks`, `summarize` and `render_masking_table`. What the checks read
from the results (statuses, numbers, records, references) is in
`rls_tf.evaluation.masking_results`, the six rules in
`rls_tf.evaluation.masking_rules`. None of the three imports TensorFlow or
Keras itself; attack titles and what a record's attack and threat model are
(white-box, score-based, a challenger) come from the attack and threat-model
registries.
"""

import dataclasses
from typing import Any, Dict

from rls_tf.evaluation.formatting import clean_json
# The checks' inputs and rules live in two modules of their own; the public names
# of the inputs are re-exported here, this module's former contents.
from rls_tf.evaluation.masking_results import (BLACK_BOX_ATTACKS, FAIL, NA, PASS, STATUSES,
                                               WHITE_BOX_ATTACKS, WHITE_BOX_THREAT_MODELS,
                                               _models, pinned_references, resolve_reference,
                                               tolerance)
from rls_tf.evaluation.masking_rules import (_check_converged_draws, _check_converged_steps,
                                             _check_eps_sweep_to_chance,
                                             _check_fixed_randomness,
                                             _check_iterative_vs_single_step,
                                             _check_whitebox_vs_blackbox)

__all__ = ["BLACK_BOX_ATTACKS", "CHECKS", "CheckSpec", "MaskingCheck", "WHITE_BOX_ATTACKS",
           "WHITE_BOX_THREAT_MODELS", "masking_checks", "pinned_references",
           "render_masking_table", "resolve_reference", "summarize", "tolerance"]


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
