"""The attack registry: every attack the harness runs, listed once.

An `AttackSpec` says everything the evaluation needs to know about an
attack: its CLI/results name, the function, the title printed in tables, its
kind (``"loss"``: maximises a loss within an eps-ball; ``"min_norm"``: looks
for the smallest perturbation that fools), whether it takes a ``seed``
(random starts), its own parameters (`rls_tf.attacks.params.Param`: default,
check, help and title of each) and the others' it reads, and how its table rows
(`AttackSetting`) are built from a preset under a *budget* (`BUDGETS`:
the preset's standard parameters, the stronger adaptive ones, or those of
attacks crafted on a surrogate). Adding an attack is one entry in `REGISTRY`
(or one `register` call); the runner, the report, the masking checks, the
CLI flags and the tests all read it.

This package knows nothing of threat models: a threat model
(`rls_tf.evaluation.threat_models`) names the budget it runs attacks under,
which attacks it admits (by their properties here) and the recipe it runs
them with.

A *preset* here is any object with the values of the parameters the spec
names as attributes and a ``model_eps(eps)`` method
(`rls_tf.evaluation.presets.Preset`, whose keys, defaults and checks come
from these `Param`s); this module imports nothing of ``rls_tf`` outside the
attacks package.

Example:

>>> from rls_tf.attacks.registry import REGISTRY
>>> spec = REGISTRY["pgd"]
>>> spec.title, spec.kind, spec.seeded
('PGD', 'loss', True)
"""

from rls_tf.attacks.arc import arc
from rls_tf.attacks.auto_pgd import apgd
from rls_tf.attacks.carlini_wagner import cw_l2
from rls_tf.attacks.deep_fool import deepfool
from rls_tf.attacks.elastic_net import ead
from rls_tf.attacks.fast_gradient import fgsm
from rls_tf.attacks.momentum import mi_fgsm
from rls_tf.attacks.params import Param
from rls_tf.attacks.projected_gradient import pgd
from rls_tf.attacks.spec import ACCESS
from rls_tf.attacks.spec import BUDGETS
from rls_tf.attacks.spec import KINDS
from rls_tf.attacks.spec import RECIPES
from rls_tf.attacks.spec import AttackSetting
from rls_tf.attacks.spec import AttackSpec
from rls_tf.attacks.spsa import spsa
from rls_tf.attacks.square import square

__all__ = ["ACCESS", "AttackSetting", "AttackSpec", "ATTACK_NAMES", "BUDGETS", "KINDS",
           "Param", "REGISTRY", "RECIPES", "attack_params", "attack_titles", "get_attack",
           "register", "unregister"]

def _fmt(value):
    return f"{value:g}"


def _fgsm_settings(preset, budget):
    del budget  # one step under every budget
    return [AttackSetting("fgsm", f"eps={_fmt(eps)}", {"eps": preset.model_eps(eps)}, value=eps)
            for eps in preset.fgsm_eps]


def _pgd_settings(preset, budget):
    out = []
    for eps in preset.pgd_eps:
        meps = preset.model_eps(eps)
        if budget == "transfer":
            steps = preset.transfer_steps
            kwargs = {"eps": meps, "eps_iter": min(meps, 2.5 * meps / steps), "nb_iter": steps,
                      "rand_init": True, "loss": preset.transfer_loss}
            out.append(AttackSetting("pgd", f"eps={_fmt(eps)}", kwargs, value=eps))
        elif budget == "adaptive":
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


def _mifgsm_settings(preset, budget):
    del budget  # transfer only
    steps = preset.transfer_steps
    return [AttackSetting("mifgsm", f"eps={_fmt(eps)}",
                          {"eps": preset.model_eps(eps), "eps_iter": preset.model_eps(eps) / steps,
                           "nb_iter": steps, "decay": preset.mifgsm_decay,
                           "loss": preset.transfer_loss}, value=eps)
            for eps in preset.pgd_eps]


def _square_settings(preset, budget):
    del budget  # adaptive only
    return [AttackSetting("square", f"eps={_fmt(eps)}",
                          {"eps": preset.model_eps(eps), "n_queries": preset.square_queries,
                           "p_init": preset.square_p_init}, value=eps)
            for eps in preset.score_eps or preset.pgd_eps]


def _spsa_settings(preset, budget):
    del budget  # adaptive only
    return [AttackSetting("spsa", f"eps={_fmt(eps)}",
                          {"eps": preset.model_eps(eps), "nb_iter": preset.spsa_iters,
                           "nb_sample": preset.spsa_samples, "delta": preset.spsa_delta,
                           "learning_rate": preset.spsa_lr}, value=eps)
            for eps in preset.score_eps or preset.pgd_eps]


def _arc_settings(preset, budget):
    del budget  # one budget
    return [AttackSetting("arc", f"eps={_fmt(eps)}",
                          {"eps": preset.model_eps(eps), "nb_iter": preset.arc_steps}, value=eps)
            for eps in preset.pgd_eps]


def _apgd_settings(preset, budget):
    del budget  # the same steps and restarts under every budget
    return [AttackSetting("apgd", f"eps={_fmt(eps)}",
                          {"eps": preset.model_eps(eps), "loss": "ce",
                           "nb_iter": preset.apgd_steps, "n_restarts": preset.apgd_restarts},
                          value=eps)
            for eps in preset.pgd_eps]


def _deepfool_settings(preset, budget):
    base = {"max_iter": preset.deepfool_max_iter, "candidates": preset.deepfool_candidates}
    overshoots = [preset.deepfool_overshoot]
    if budget == "adaptive":
        overshoots.append(preset.eot_deepfool_overshoot)
    return [AttackSetting("deepfool", f"overshoot={_fmt(ov)}", {**base, "overshoot": ov})
            for ov in overshoots]


def _optimised_min_norm_settings(name, prefix, extra):
    """Settings of C&W / EAD: one row per c (and per kappa under eot).

    The label is ``c=...``, with ``, search=S`` where a binary search of S > 1
    steps starts from that c.
    """

    def build(preset, budget):
        out = []
        for c in getattr(preset, f"{prefix}_c"):
            base = {"c": float(c), "lr": getattr(preset, f"{prefix}_lr"),
                    "binary_search_steps": getattr(preset, f"{prefix}_binary_search_steps")}
            base.update({key: getattr(preset, field) for key, field in extra})
            confidence = getattr(preset, f"{prefix}_confidence")
            if budget == "adaptive":
                base["steps"] = preset.eot_min_norm_steps
                kappas = [confidence, preset.eot_kappa]
            else:
                base["steps"] = getattr(preset, f"{prefix}_steps")
                kappas = [confidence]
            # A searched c is another attack than the constant c it starts from:
            # its records must not share the constant's key (seeds, resume, report).
            search = base["binary_search_steps"]
            label = f"c={_fmt(c)}" + (f", search={search}" if search > 1 else "")
            for kappa in kappas:
                param = label + (f", kappa={_fmt(kappa)}" if kappa else "")
                out.append(AttackSetting(name, param, {**base, "confidence": float(kappa)},
                                         value=float(c)))
        return out

    return build


def _eps(name, what):
    return Param(name, None, float, f"{what} (one table row each; preset eps units).",
                 title="eps", sequence=True, minimum=0, required=True)


def _constants(name, what):
    return Param(name, None, float, f"{what} constants c, each run as a constant (no search "
                 "unless the binary-search steps are > 1).", title="c", sequence=True,
                 minimum=0, required=True)


def _steps(name, default, what, minimum=1):
    return Param(name, default, int, what, minimum=minimum)


def _rate(name, default, what, **bounds):
    return Param(name, default, float, what, **bounds)


# The parameters of the adaptive ("eot_*") and transfer ("transfer_*") budgets, the
# threat models' sizes and the score-based subset are no attack's own: they are
# declared once in `rls_tf.evaluation.presets.EVALUATION_PARAMS`; an entry names
# those it reads in `reads`.
_MIN_NORM_EOT = ("eot_min_norm", "eot_min_norm_steps", "eot_kappa")
_MIN_NORM_OPT = (*_MIN_NORM_EOT, "min_norm_opt_num_examples")

REGISTRY = {spec.name: spec for spec in (
    AttackSpec("fgsm", fgsm, "FGSM", "loss", False, _fgsm_settings,
               params=(_eps("fgsm_eps", "FGSM L-inf sizes"),), transfers=True),
    AttackSpec("pgd", pgd, "PGD", "loss", True, _pgd_settings,
               params=(_eps("pgd_eps", "PGD (and APGD, MI-FGSM, Square, SPSA, ARC) L-inf sizes"),
                       _steps("pgd_steps", 10, "PGD iterations (paper threat models)."),
                       _rate("pgd_step_ratio", 0.1, "PGD step size as a fraction of eps "
                             "(paper: 1/10).", minimum=0, maximum=1, min_open=True),
                       Param("pgd_rand_init", False, bool,
                             "Random start of the paper-protocol PGD.")),
               reads=("eot_pgd_steps", "eot_pgd_restarts", "transfer_steps", "transfer_loss"),
               transfers=True),
    AttackSpec("apgd", apgd, "APGD", "loss", True, _apgd_settings,
               params=(_steps("apgd_steps", 100, "APGD iterations (all threat models)."),
                       _steps("apgd_restarts", 1, "APGD restarts (all threat models).")),
               reads=("pgd_eps",), loss_stages=("ce", "dlr"), restarts_kwarg="n_restarts"),
    AttackSpec("deepfool", deepfool, "DeepFool", "min_norm", False, _deepfool_settings,
               params=(_rate("deepfool_overshoot", 0.02, "DeepFool overshoot."),
                       _steps("deepfool_max_iter", 50, "DeepFool iterations at most."),
                       _steps("deepfool_candidates", 10, "DeepFool candidate classes "
                              "(the most likely ones).", minimum=2)),
               reads=("eot_deepfool_overshoot", "eot_min_norm"), optional_when_adaptive=True),
    AttackSpec("cw", cw_l2, "C&W-L2", "min_norm", False,
               _optimised_min_norm_settings("cw", "cw", ()),
               params=(_constants("cw_c", "C&W"),
                       _steps("cw_steps", 1000, "C&W-L2 Adam steps."),
                       _rate("cw_lr", 0.01, "C&W-L2 Adam learning rate."),
                       _rate("cw_confidence", 0.0, "C&W-L2 confidence (kappa)."),
                       _steps("cw_binary_search_steps", 1, "C&W-L2 binary-search steps of c "
                              "(1: the constant c).")),
               reads=_MIN_NORM_OPT, optional_when_adaptive=True,
               subset="min_norm_opt_num_examples"),
    AttackSpec("ead", ead, "EAD", "min_norm", False,
               _optimised_min_norm_settings("ead", "ead", (("beta", "ead_beta"),
                                                           ("decision_rule",
                                                            "ead_decision_rule"))),
               params=(_constants("ead_c", "EAD"),
                       _steps("ead_steps", 1000, "EAD iterations."),
                       _rate("ead_lr", 0.01, "EAD learning rate."),
                       _rate("ead_confidence", 0.0, "EAD confidence (kappa)."),
                       _steps("ead_binary_search_steps", 1, "EAD binary-search steps of c "
                              "(1: the constant c)."),
                       _rate("ead_beta", 0.01, "EAD elastic-net weight beta."),
                       Param("ead_decision_rule", "EN", str,
                             "EAD decision rule, EN (elastic net) or L1.")),
               reads=_MIN_NORM_OPT, optional_when_adaptive=True,
               subset="min_norm_opt_num_examples"),
    AttackSpec("mifgsm", mi_fgsm, "MI-FGSM", "loss", False, _mifgsm_settings,
               params=(_rate("mifgsm_decay", 1.0, "MI-FGSM momentum decay mu.", minimum=0),),
               reads=("pgd_eps", "transfer_steps", "transfer_loss"),
               budgets=("transfer",), transfers=True),
    AttackSpec("square", square, "Square", "loss", True, _square_settings,
               params=(_steps("square_queries", 5000, "Square Attack query budget per image."),
                       _rate("square_p_init", 0.8, "Square Attack initial fraction of pixels "
                             "per square.", minimum=0, maximum=1, min_open=True)),
               reads=("pgd_eps", "score_eps", "score_num_examples"),
               budgets=("adaptive",), access="scores",
               subset="score_num_examples", reports_queries=True, attacker_fns=("tied_fn",)),
    AttackSpec("spsa", spsa, "SPSA", "loss", True, _spsa_settings,
               params=(_steps("spsa_iters", 100, "SPSA iterations."),
                       _steps("spsa_samples", 128, "SPSA finite-difference samples per "
                              "iteration."),
                       _rate("spsa_delta", 0.01, "SPSA perturbation size.", minimum=0,
                             min_open=True),
                       _rate("spsa_lr", 0.05, "SPSA Adam learning rate (CleverHans' 0.01 is "
                             "for [0, 1] pixels; 0.05 on our [-1, 1] pixels is what breaks an "
                             "undefended MNIST CNN within 50 iterations in the strength test).",
                             minimum=0, min_open=True)),
               reads=("pgd_eps", "score_eps", "score_num_examples"),
               budgets=("adaptive",), access="scores",
               subset="score_num_examples", reports_queries=True, attacker_fns=("tied_fn",)),
    AttackSpec("arc", arc, "ARC", "loss", False, _arc_settings,
               params=(_steps("arc_steps", 20, "ARC iterations."),),
               reads=("pgd_eps", "arc_paths"), access="members", attacker_fns=("member_fn",),
               requires=("member_fn",)),
)}

# Table order (registered attacks follow, in the order registered).
ATTACK_NAMES = tuple(REGISTRY)


def get_attack(name):
    """The `AttackSpec` called `name`, or a ValueError naming the choices."""
    if name not in REGISTRY:
        raise ValueError(f"Unknown attack. Received: attack={name!r}. "
                         f"Expected one of {tuple(REGISTRY)}.")
    return REGISTRY[name]


def attack_titles():
    """``{name: title}`` of every registered attack, in table order."""
    return {name: spec.title for name, spec in REGISTRY.items()}


def attack_params():
    """Every registered attack's own `Param`s, in table order (a shared one once).

    Raises:
        ValueError: two attacks declare one name with different `Param` objects.
    """
    out = {}
    for spec in REGISTRY.values():
        for param in spec.params:
            if out.get(param.name, param) is not param:
                raise ValueError(f"Two attacks declare the parameter {param.name!r} differently; "
                                 f"share one Param object. Received: attack={spec.name!r}")
            out[param.name] = param
    return tuple(out.values())


def register(spec):
    """Adds an `AttackSpec` to `REGISTRY` (e.g. from a test or a plug-in); returns it.

    The harness reads `REGISTRY` at call time, so a registered attack runs
    like a built-in one. `ATTACK_NAMES` keeps the built-in table order.
    """
    if not isinstance(spec, AttackSpec):
        raise ValueError(f"`spec` must be an AttackSpec. Received: spec={spec!r}")
    if spec.name in REGISTRY:
        raise ValueError(f"An attack of this name is registered. Received: name={spec.name!r}")
    REGISTRY[spec.name] = spec
    try:
        attack_params()
    except ValueError:
        del REGISTRY[spec.name]
        raise
    return spec


def unregister(name):
    """Removes a registered attack (the inverse of `register`)."""
    get_attack(name)
    del REGISTRY[name]
