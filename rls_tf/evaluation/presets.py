"""Attack parameters: the paper's per-dataset settings (Lee et al., Tables 1-2).

A `Preset` holds every attack parameter the runner uses: a name, a dataset,
the eps units and one value per declared parameter. Each attack declares its
own parameters (`rls_tf.attacks.registry.AttackSpec.params`: default, check,
help, title); the settings that are no attack's own are declared once here
(`EVALUATION_PARAMS`). The three paper presets are data (`PAPER_PRESETS`:
the values that differ from the defaults); they copy the perturbation sizes
of the RLS paper's Tables 1 and 2:

| preset | FGSM eps | PGD eps | C&W c | EAD c |
|---|---|---|---|---|
| ``paper_mnist`` | 0.1, 0.2 | 0.05, 0.1 | 0.1, 1 | 0.1, 1 |
| ``paper_cifar10`` | 0.01, 0.02 | 0.01, 0.02 | 0.01, 0.1 | 0.01, 0.1 |
| ``paper_svhn`` | 0.05, 0.1 | 0.01, 0.02 | 0.01, 0.1 | 0.01, 0.1 |

and the paper's attack settings: PGD 10 steps of eps/10 without random
start; C&W-L2 with a constant c (no binary search), 1000 Adam steps at
learning rate 0.01, zero confidence; EAD likewise with beta 0.01 and the
elastic-net decision rule; DeepFool with overshoot 0.02 and at most 50
iterations.

**Units of eps.** The paper trains on pixels scaled to [-1, 1] but does not
say in which units its eps are. ``eps_units="model"`` (the default, and what
the presets mean) applies each eps as printed to the [-1, 1] pixels the
model sees: eps=0.1 there is 0.05 of the full [0, 1] range, 12.75/255.
``eps_units="unit"`` reads the printed eps as fractions of the [0, 1] range
and doubles them before the attack (eps=0.1 -> 0.2 in model units, 25.5/255).
Every result records the eps in both units. C&W/EAD constants are unitless;
L2/L1 sizes are reported in model units (halve them for [0, 1] units).

Settings beyond the paper (the adaptive threat models):

* ``eot``: every gradient averages E=20 fresh draws; PGD with 100 steps of
  2.5 eps / 100 and 3 random restarts (per example, the restart the
  attacker's own EOT estimate finds worst is kept); APGD-CE 100 steps.
  Optionally DeepFool, C&W and EAD on the EOT mean (``eot_min_norm``, 100
  steps), each also with a confidence margin ``eot_kappa`` (C&W/EAD, in
  log-probability units: the attacked class's mean probability must exceed
  the true class's by a factor e**kappa) and DeepFool with overshoot
  ``eot_deepfool_overshoot``.
* ``apgd_rand``: APGD-CE then APGD-DLR, 100 steps, 1 restart, EOT 20
  (AutoAttack's ``rand`` version).

The gradient-masking checks (Carlini et al. 2019):

* ``transfer``: FGSM, PGD (``transfer_steps`` of 2.5 eps / steps, random
  start) and MI-FGSM (momentum ``mifgsm_decay``, ``transfer_steps`` steps),
  all on the ``transfer_loss`` (default the high-confidence margin loss),
  crafted on the surrogate.
* Square (``square_queries`` queries, ``p_init`` ``square_p_init``:
  AutoAttack's 5000 and 0.8) and SPSA (``spsa_iters`` iterations of
  ``spsa_samples`` samples, perturbation ``spsa_delta``, Adam at
  ``spsa_lr``) run under ``eot`` (every query averages E fresh draws) on
  the first ``score_num_examples`` images.
* ``arc``: ARC with ``arc_steps`` iterations on ``arc_paths`` pinned draws
  (an ensemble: all its members).
* Convergence sweeps (``--convergence``): EOT PGD at ``convergence_eps``
  (0: the largest ``pgd_eps``) against the number of steps
  (``convergence_steps``, E fixed) and of draws (``convergence_draws``,
  steps fixed), and against eps (``sweep_eps``).
"""

import dataclasses
from typing import Any, Mapping

from rls_tf.attacks import registry as attack_registry
from rls_tf.attacks.params import Param

__all__ = ["EPS_UNITS", "EPS_UNITS_PARAM", "EVALUATION_PARAMS", "PAPER_PRESETS", "PRESETS",
           "Preset", "default_preset_name", "get_preset", "override_params", "preset_fields",
           "preset_params"]

EPS_UNITS = ("model", "unit")

# The preset's own field that is also an override flag.
EPS_UNITS_PARAM = Param(
    "eps_units", "model", str, '"model" (eps applied to [-1, 1] pixels as given) or "unit" '
    "(eps given for [0, 1] pixels, doubled).", choices=EPS_UNITS)

# The settings that are no attack's own, declared once: the threat models' sizes, the
# adaptive ("eot_*") and transfer ("transfer_*") budgets the attacks' settings read, the
# score-based attacks' images and eps, and the convergence sweeps. The attacks'
# own parameters are in their `rls_tf.attacks.registry.AttackSpec.params`.
EVALUATION_PARAMS = (
    # The eot and apgd_rand threat models (the "adaptive" budget).
    Param("eot_samples", 20, int, "E, fresh draws per gradient (eot, apgd_rand; a stochastic "
          "surrogate's under transfer).", title="E", minimum=1),
    Param("eot_pgd_steps", 100, int, "PGD iterations under eot (step 2.5 eps/steps).",
          minimum=1),
    Param("eot_pgd_restarts", 3, int, "PGD random restarts under eot (per example, the one "
          "the attacker's own EOT estimate finds worst is kept).", minimum=1),
    Param("eot_min_norm", False, bool, "Also run DeepFool/C&W/EAD under eot."),
    Param("eot_min_norm_steps", 100, int, "C&W/EAD steps under eot.", minimum=1),
    Param("eot_kappa", 1.0, float, "The extra confidence margin (> 0) of C&W/EAD under eot.",
          title="kappa", minimum=0, min_open=True),
    Param("eot_deepfool_overshoot", 1.0, float, "The extra DeepFool overshoot under eot."),
    # The multi_sample and arc threat models' sizes.
    Param("multi_sample_paths", (1, 5, 10, 15), int, "S values of the multi_sample threat "
          "model.", title="S", sequence=True, minimum=1, nonempty=True),
    Param("arc_paths", 10, int, "P, pinned draws ARC attacks as fixed members.", title="P",
          minimum=1),
    # The transfer threat model (the "transfer" budget).
    Param("transfer_steps", 100, int, "PGD / MI-FGSM iterations under transfer.", minimum=1),
    Param("transfer_loss", "margin", str, 'Loss of the transfer attacks, "margin" or "ce".',
          choices=("margin", "ce")),
    # The score-based attacks (Square, SPSA).
    Param("score_num_examples", 100, int, "Square and SPSA run on the first this many images.",
          minimum=1),
    # The optimisation attacks' images (C&W, EAD: 1,000 steps each by the paper).
    Param("min_norm_opt_num_examples", 0, int, "C&W and EAD run on the first this many "
          "images (0: all of them).", minimum=0),
    Param("score_eps", (), float, "The eps of Square and SPSA (empty: pgd_eps).",
          sequence=True, minimum=0),
    # The convergence sweeps (--convergence).
    Param("convergence_eps", 0.0, float, "Eps of the convergence sweeps (0: the largest "
          "pgd_eps).", minimum=0),
    Param("convergence_steps", (10, 50, 100, 200, 400), int, "EOT-PGD step counts of the "
          "convergence sweep.", sequence=True, minimum=1, nonempty=True),
    Param("convergence_draws", (1, 5, 10, 20, 40), int, "EOT draw counts E of the "
          "convergence sweep.", sequence=True, minimum=1, nonempty=True),
    Param("sweep_eps", (0.1, 0.2, 0.3, 0.5, 0.75, 1.0), float, "Eps values of the eps sweep "
          "(EOT PGD).", sequence=True, minimum=0, nonempty=True),
)


def preset_params():
    """``{name: Param}`` of every preset parameter: the registered attacks', then the evaluation's.

    Read at call time, so an attack registered later (`rls_tf.attacks.register`)
    adds its parameters.
    """
    out = {p.name: p for p in attack_registry.attack_params()}
    for param in EVALUATION_PARAMS:
        if param.name in out:
            raise ValueError(f"An attack declares the evaluation's parameter {param.name!r}. "
                             f"Received: {param.name}")
        out[param.name] = param
    return out


def override_params():
    """The `Param`s a caller may override (flags, suites): `EPS_UNITS_PARAM` and `preset_params`."""
    return (EPS_UNITS_PARAM, *preset_params().values())


def preset_fields():
    """The override keys (``eps_units`` and every parameter), e.g. the suites' ``preset field``."""
    return tuple(p.name for p in override_params())


@dataclasses.dataclass(frozen=True, init=False)
class Preset:
    """Every attack parameter of an evaluation: a name, a dataset, eps units and values.

    The keys, defaults and checks of `values` come from the declared `Param`s
    (`preset_params`: each registered attack's own, then `EVALUATION_PARAMS`);
    a value is read as an attribute (``preset.pgd_steps``).

    Attributes:
        name: preset name (recorded in the results).
        dataset: the dataset it was made for.
        eps_units: "model" (eps applied to [-1, 1] pixels as given) or
            "unit" (eps given for [0, 1] pixels, doubled).
        values: ``{parameter: value}``, every declared parameter (sequences
            as tuples).
    """

    name: str
    dataset: str
    eps_units: str
    values: Mapping[str, Any]

    def __init__(self, name, dataset, eps_units="model", values=None, **params):
        """Checks the values, fills the defaults.

        Args:
            name, dataset, eps_units: see the attributes.
            values: ``{parameter: value}``.
            **params: more values (``pgd_eps=(0.1,)``); they win over `values`.

        Raises:
            ValueError: an unknown parameter, a missing required one (the
                eps and c of the paper presets) or a value its check refuses.
        """
        declared = preset_params()
        given = {**dict(values or {}), **params}
        unknown = [key for key in given if key not in declared]
        if unknown:
            raise ValueError(f"Unknown preset parameter. Received: {unknown[0]}="
                             f"{given[unknown[0]]!r}. Expected one of {tuple(declared)}.")
        out = {}
        for key, param in declared.items():
            if key in given:
                out[key] = param.check(given[key])
            elif param.required:
                raise ValueError(f"`{key}` must be set (a preset has no default for it). "
                                 f"Received: {key}=None")
            else:
                out[key] = param.default
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dataset", dataset)
        object.__setattr__(self, "eps_units", EPS_UNITS_PARAM.check(eps_units))
        object.__setattr__(self, "values", out)

    def __getattr__(self, key):
        # Only called when normal lookup fails: the values, then the default of a
        # parameter declared after this preset was made (a later-registered attack).
        if key.startswith("__") or key == "values":
            raise AttributeError(key)
        values = self.__dict__.get("values", {})
        if key in values:
            return values[key]
        param = preset_params().get(key)
        if param is not None and not param.required:
            return param.default
        raise AttributeError(f"A preset has no parameter {key!r}. Received: {key}")

    def __hash__(self):
        return hash((self.name, self.dataset, self.eps_units, tuple(self.values.items())))

    @property
    def sweep_eps_value(self):
        """The eps of the convergence sweeps (preset units)."""
        return self.convergence_eps or max(self.pgd_eps)

    @property
    def eps_scale(self):
        """Factor from the printed eps to model ([-1, 1]) units."""
        return 2.0 if self.eps_units == "unit" else 1.0

    def model_eps(self, eps):
        """The eps the attack uses, in [-1, 1] pixel units."""
        return float(eps) * self.eps_scale

    def replace(self, **changes):
        """A copy with some values (or `name`, `dataset`, `eps_units`) changed; None values are ignored."""
        changes = {k: v for k, v in changes.items() if v is not None}
        fields = {key: changes.pop(key, getattr(self, key))
                  for key in ("name", "dataset", "eps_units")}
        return Preset(**fields, values={**self.values, **changes})

    with_overrides = replace

    def to_json(self):
        """The flat form every results file holds: name, dataset, eps_units, then the values."""
        values = {key: self.values.get(key, param.default)
                  for key, param in preset_params().items()}
        values.update(self.values)
        return {"name": self.name, "dataset": self.dataset, "eps_units": self.eps_units,
                **{key: list(v) if isinstance(v, tuple) else v for key, v in values.items()}}

    @classmethod
    def from_json(cls, data):
        """The `Preset` of a flat dict (`to_json`, or any earlier results file's ``preset``)."""
        data = dict(data)
        return cls(data.pop("name"), data.pop("dataset"), data.pop("eps_units", "model"),
                   values=data)


# The paper's presets (Lee et al., Tables 1-2), as the values that differ from the
# parameters' defaults.
PAPER_PRESETS = {
    "paper_mnist": {"dataset": "mnist", "fgsm_eps": (0.1, 0.2), "pgd_eps": (0.05, 0.1),
                    "cw_c": (0.1, 1.0), "ead_c": (0.1, 1.0)},
    "paper_cifar10": {"dataset": "cifar10", "fgsm_eps": (0.01, 0.02), "pgd_eps": (0.01, 0.02),
                      "cw_c": (0.01, 0.1), "ead_c": (0.01, 0.1)},
    "paper_svhn": {"dataset": "svhn", "fgsm_eps": (0.05, 0.1), "pgd_eps": (0.01, 0.02),
                   "cw_c": (0.01, 0.1), "ead_c": (0.01, 0.1)},
}

PRESETS = {name: Preset(name, **values) for name, values in PAPER_PRESETS.items()}


def get_preset(name):
    """Returns the preset called `name` (one of `PRESETS`)."""
    if name not in PRESETS:
        raise ValueError(
            f"Unknown preset. Received: preset={name!r}. Expected one of {tuple(PRESETS)}."
        )
    return PRESETS[name]


def default_preset_name(dataset):
    """``paper_<dataset>`` if the paper has one, else None."""
    name = f"paper_{dataset}"
    return name if name in PRESETS else None
