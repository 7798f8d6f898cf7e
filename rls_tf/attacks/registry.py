"""The attack registry: every attack the harness runs, listed once.

An `AttackSpec` says everything the evaluation needs to know about an
attack: its CLI/results name, the function, the title printed in tables, its
kind (``"loss"``: maximises a loss within an eps-ball; ``"min_norm"``: looks
for the smallest perturbation that fools), whether it takes a ``seed``
(random starts), which preset fields it reads, and how its table rows
(`AttackSetting`) are built from a preset under a threat model. Adding an
attack is one entry in `REGISTRY`; the runner, the report, the CLI flags and
the tests all read it.

A *preset* here is any object with the fields the spec names and a
``model_eps(eps)`` method (`rls_tf.evaluation.presets.Preset`); this module
imports nothing of ``rls_tf`` outside the attacks package.

Example:

>>> from rls_tf.attacks.registry import REGISTRY
>>> spec = REGISTRY["pgd"]
>>> spec.title, spec.kind, spec.seeded
('PGD', 'loss', True)
"""

import dataclasses
from typing import Callable, Optional, Tuple

from rls_tf.attacks.arc import arc
from rls_tf.attacks.auto_pgd import apgd
from rls_tf.attacks.carlini_wagner import cw_l2
from rls_tf.attacks.deep_fool import deepfool
from rls_tf.attacks.elastic_net import ead
from rls_tf.attacks.fast_gradient import fgsm
from rls_tf.attacks.momentum import mi_fgsm
from rls_tf.attacks.projected_gradient import pgd
from rls_tf.attacks.spsa import spsa
from rls_tf.attacks.square import square

__all__ = ["AttackSetting", "AttackSpec", "ATTACK_NAMES", "KINDS", "REGISTRY", "RECIPES",
           "get_attack"]

KINDS = ("loss", "min_norm")
# Threat models that run only some attacks: apgd_rand is the APGD-CE +
# APGD-DLR recipe, arc the ARC attack; transfer crafts on a surrogate with
# the gradient attacks that transfer.
EXCLUSIVE_ATTACKS = {"apgd_rand": ("apgd",), "arc": ("arc",),
                     "transfer": ("fgsm", "pgd", "mifgsm")}
# How a setting is run on a batch: one call; the best of several random
# restarts; APGD-CE then APGD-DLR on what CE did not fool.
RECIPES = ("single", "restarts", "ce+dlr")


@dataclasses.dataclass(frozen=True)
class AttackSetting:
    """One row of the results table: an attack with one parameter value.

    Attributes:
        attack: registry name of the attack.
        param: the row label, e.g. ``"eps=0.05"``, ``"c=0.1, kappa=1"``.
        kwargs: keyword arguments of the attack function.
        recipe: one of `RECIPES`.
        restarts: number of candidates for "restarts".
        value: the parameter as given (eps in preset units, c, ...), for plots.
    """

    attack: str
    param: str
    kwargs: dict
    recipe: str = "single"
    restarts: int = 1
    value: Optional[float] = None

    def to_json(self):
        out = {"attack": self.attack, "param": self.param, "kwargs": dict(self.kwargs),
               "recipe": self.recipe}
        if self.recipe == "restarts":
            out["restarts"] = self.restarts
        return out

    @classmethod
    def from_json(cls, data, value=None):
        return cls(attack=data["attack"], param=data["param"], kwargs=dict(data["kwargs"]),
                   recipe=data.get("recipe", "single"), restarts=data.get("restarts", 1),
                   value=value)


def _fmt(value):
    return f"{value:g}"


def _fgsm_settings(preset, threat_model):
    del threat_model  # one step under every threat model
    return [AttackSetting("fgsm", f"eps={_fmt(eps)}", {"eps": preset.model_eps(eps)}, value=eps)
            for eps in preset.fgsm_eps]


def _pgd_settings(preset, threat_model):
    out = []
    for eps in preset.pgd_eps:
        meps = preset.model_eps(eps)
        if threat_model == "transfer":
            steps = preset.transfer_steps
            kwargs = {"eps": meps, "eps_iter": min(meps, 2.5 * meps / steps), "nb_iter": steps,
                      "rand_init": True, "loss": preset.transfer_loss}
            out.append(AttackSetting("pgd", f"eps={_fmt(eps)}", kwargs, value=eps))
        elif threat_model == "eot":
            steps = preset.eot_pgd_steps
            kwargs = {"eps": meps, "eps_iter": min(meps, 2.5 * meps / steps),
                      "nb_iter": steps, "rand_init": True}
            out.append(AttackSetting("pgd", f"eps={_fmt(eps)}", kwargs, recipe="restarts",
                                     restarts=preset.eot_pgd_restarts, value=eps))
        else:
            kwargs = {"eps": meps, "eps_iter": preset.pgd_step_ratio * meps,
                      "nb_iter": preset.pgd_steps, "rand_init": preset.pgd_rand_init}
            out.append(AttackSetting("pgd", f"eps={_fmt(eps)}", kwargs, value=eps))
    return out


def _mifgsm_settings(preset, threat_model):
    del threat_model  # transfer only
    steps = preset.transfer_steps
    return [AttackSetting("mifgsm", f"eps={_fmt(eps)}",
                          {"eps": preset.model_eps(eps), "eps_iter": preset.model_eps(eps) / steps,
                           "nb_iter": steps, "decay": preset.mifgsm_decay,
                           "loss": preset.transfer_loss}, value=eps)
            for eps in preset.pgd_eps]


def _square_settings(preset, threat_model):
    del threat_model  # eot only
    return [AttackSetting("square", f"eps={_fmt(eps)}",
                          {"eps": preset.model_eps(eps), "n_queries": preset.square_queries,
                           "p_init": preset.square_p_init}, value=eps)
            for eps in preset.score_eps or preset.pgd_eps]


def _spsa_settings(preset, threat_model):
    del threat_model  # eot only
    return [AttackSetting("spsa", f"eps={_fmt(eps)}",
                          {"eps": preset.model_eps(eps), "nb_iter": preset.spsa_iters,
                           "nb_sample": preset.spsa_samples, "delta": preset.spsa_delta,
                           "learning_rate": preset.spsa_lr}, value=eps)
            for eps in preset.score_eps or preset.pgd_eps]


def _arc_settings(preset, threat_model):
    del threat_model  # arc only
    return [AttackSetting("arc", f"eps={_fmt(eps)}",
                          {"eps": preset.model_eps(eps), "nb_iter": preset.arc_steps}, value=eps)
            for eps in preset.pgd_eps]


def _apgd_settings(preset, threat_model):
    out = []
    for eps in preset.pgd_eps:
        kwargs = {"eps": preset.model_eps(eps), "loss": "ce", "nb_iter": preset.apgd_steps}
        if threat_model == "apgd_rand":
            kwargs["n_restarts"] = 1
            out.append(AttackSetting("apgd", f"eps={_fmt(eps)}", kwargs, recipe="ce+dlr",
                                     value=eps))
        else:
            kwargs["n_restarts"] = preset.apgd_restarts
            out.append(AttackSetting("apgd", f"eps={_fmt(eps)}", kwargs, value=eps))
    return out


def _deepfool_settings(preset, threat_model):
    base = {"max_iter": preset.deepfool_max_iter, "candidates": preset.deepfool_candidates}
    overshoots = [preset.deepfool_overshoot]
    if threat_model == "eot":
        overshoots.append(preset.eot_deepfool_overshoot)
    return [AttackSetting("deepfool", f"overshoot={_fmt(ov)}", {**base, "overshoot": ov})
            for ov in overshoots]


def _optimised_min_norm_settings(name, prefix, extra):
    """Settings of C&W / EAD: one row per c (and per kappa under eot)."""

    def build(preset, threat_model):
        out = []
        for c in getattr(preset, f"{prefix}_c"):
            base = {"c": float(c), "lr": getattr(preset, f"{prefix}_lr"),
                    "binary_search_steps": getattr(preset, f"{prefix}_binary_search_steps")}
            base.update({key: getattr(preset, field) for key, field in extra})
            confidence = getattr(preset, f"{prefix}_confidence")
            if threat_model == "eot":
                base["steps"] = preset.eot_min_norm_steps
                kappas = [confidence, preset.eot_kappa]
            else:
                base["steps"] = getattr(preset, f"{prefix}_steps")
                kappas = [confidence]
            for kappa in kappas:
                param = f"c={_fmt(c)}" + (f", kappa={_fmt(kappa)}" if kappa else "")
                out.append(AttackSetting(name, param, {**base, "confidence": float(kappa)},
                                         value=float(c)))
        return out

    return build


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """Everything the harness knows about one attack.

    Attributes:
        name: registry / CLI / results name.
        function: ``fn(model_fn, x, y, **kwargs) -> x_adv``.
        title: printed in tables and plots.
        kind: "loss" or "min_norm" (success rate and L2/L1 sizes reported).
        seeded: whether the function takes ``seed`` (random starts).
        preset_fields: the preset fields the settings read (also the CLI
            overrides of the attack).
        settings: ``(preset, threat_model_name) -> [AttackSetting]``.
        threat_models: the threat models it runs under (None: all but the
            attack-specific ones, see `applicable`).
        optional_under_eot: minimum-norm attacks run under eot only when the
            preset's ``eot_min_norm`` is set.
        subset: a preset field naming how many of the first images the
            attack runs on (the expensive score-based attacks), or None.
        reports_queries: the function takes ``return_info`` and reports
            per-example ``queries`` (score-based attacks).
        attacker_fns: keyword arguments the function takes from the
            attacker when it has them (attributes of the harness's
            ``Attacker`` of the same name): ``tied_fn`` (common draws for the
            points a score-based attack compares, `_common.tied_logits`),
            ``member_fn`` (one member of ARC's set alone).
    """

    name: str
    function: Callable
    title: str
    kind: str
    seeded: bool
    preset_fields: Tuple[str, ...]
    settings: Callable
    threat_models: Optional[Tuple[str, ...]] = None
    optional_under_eot: bool = False
    subset: Optional[str] = None
    reports_queries: bool = False
    attacker_fns: Tuple[str, ...] = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"`kind` must be one of {KINDS}. Received: kind={self.kind!r}")

    @property
    def min_norm(self):
        return self.kind == "min_norm"

    def applicable(self, threat_model, preset):
        """``(applicable, reason)`` of this attack under a threat model name."""
        exclusive = EXCLUSIVE_ATTACKS.get(threat_model)
        if exclusive is not None and self.name not in exclusive:
            return False, f"{threat_model} runs {', '.join(exclusive)} only"
        if self.threat_models is not None and threat_model not in self.threat_models:
            return False, f"{self.name} runs under {', '.join(self.threat_models)} only"
        if threat_model == "eot" and self.optional_under_eot and not preset.eot_min_norm:
            return False, "minimum-norm attacks under eot are optional (--eot_min_norm)"
        return True, ""

    def build_settings(self, preset, threat_model):
        """The `AttackSetting`s of this attack under a threat model name."""
        return self.settings(preset, threat_model)


_MIN_NORM_EOT = ("eot_min_norm", "eot_min_norm_steps", "eot_kappa")

REGISTRY = {spec.name: spec for spec in (
    AttackSpec("fgsm", fgsm, "FGSM", "loss", False, ("fgsm_eps",), _fgsm_settings),
    AttackSpec("pgd", pgd, "PGD", "loss", True,
               ("pgd_eps", "pgd_steps", "pgd_step_ratio", "pgd_rand_init", "eot_pgd_steps",
                "eot_pgd_restarts"), _pgd_settings),
    AttackSpec("apgd", apgd, "APGD", "loss", True, ("pgd_eps", "apgd_steps", "apgd_restarts"),
               _apgd_settings),
    AttackSpec("deepfool", deepfool, "DeepFool", "min_norm", False,
               ("deepfool_overshoot", "deepfool_max_iter", "deepfool_candidates",
                "eot_deepfool_overshoot", "eot_min_norm"), _deepfool_settings,
               optional_under_eot=True),
    AttackSpec("cw", cw_l2, "C&W-L2", "min_norm", False,
               ("cw_c", "cw_steps", "cw_lr", "cw_confidence", "cw_binary_search_steps",
                *_MIN_NORM_EOT),
               _optimised_min_norm_settings("cw", "cw", ()), optional_under_eot=True),
    AttackSpec("ead", ead, "EAD", "min_norm", False,
               ("ead_c", "ead_steps", "ead_lr", "ead_confidence", "ead_binary_search_steps",
                "ead_beta", "ead_decision_rule", *_MIN_NORM_EOT),
               _optimised_min_norm_settings("ead", "ead", (("beta", "ead_beta"),
                                                           ("decision_rule",
                                                            "ead_decision_rule"))),
               optional_under_eot=True),
    AttackSpec("mifgsm", mi_fgsm, "MI-FGSM", "loss", False,
               ("pgd_eps", "transfer_steps", "mifgsm_decay", "transfer_loss"), _mifgsm_settings,
               threat_models=("transfer",)),
    AttackSpec("square", square, "Square", "loss", True,
               ("pgd_eps", "score_eps", "square_queries", "square_p_init", "score_num_examples"),
               _square_settings, threat_models=("eot",), subset="score_num_examples",
               reports_queries=True, attacker_fns=("tied_fn",)),
    AttackSpec("spsa", spsa, "SPSA", "loss", True,
               ("pgd_eps", "score_eps", "spsa_iters", "spsa_samples", "spsa_delta", "spsa_lr",
                "score_num_examples"),
               _spsa_settings, threat_models=("eot",), subset="score_num_examples",
               reports_queries=True, attacker_fns=("tied_fn",)),
    AttackSpec("arc", arc, "ARC", "loss", False, ("pgd_eps", "arc_steps", "arc_paths"),
               _arc_settings, threat_models=("arc",), attacker_fns=("member_fn",)),
)}

# Table order.
ATTACK_NAMES = tuple(REGISTRY)


def get_attack(name):
    """The `AttackSpec` called `name`, or a ValueError naming the choices."""
    if name not in REGISTRY:
        raise ValueError(f"Unknown attack. Received: attack={name!r}. "
                         f"Expected one of {ATTACK_NAMES}.")
    return REGISTRY[name]
