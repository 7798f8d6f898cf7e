"""Threat models: what the attacker sees of a randomised classifier.

Every threat model is one `ThreatModelSpec` in `THREAT_MODEL_REGISTRY`: its
label and JSON form, how its attacker is built (from `attackers`, which
speaks only `rls_tf.interface.StochasticClassifier`), the attack budget it
runs attacks under, which attacks it admits and with which recipe. Nothing
else in the harness tests a threat model's name. The text below says
"sampled model" for one draw, as for RLS.

Every robust accuracy the harness reports carries the label of the threat
model that produced it. The *defender* is the same in all of them: the
model's own inference, the mean softmax of N fresh sampled models
(`defender_outputs`). What changes is the ``model_fn`` handed to the attack:

* ``paper`` (Lee et al., Section 4.2): the attacker gets ONE sampled model,
  a random path pinned for the whole attack (every RLS layer fixed to one
  copy), and crafts its examples on it. For an undefended model (M=1) this
  is the ordinary white-box attack.
* ``multi_sample`` (Lee et al., Table 4): the attacker attacks the ensemble
  of S pinned sampled models, ``log(mean_s softmax_s)`` (S = 1, 5, 10, 15).
* ``eot`` (adaptive white box, Athalye et al. 2018): every call of the
  ``model_fn`` returns the log-probabilities of E fresh, independent draws
  of the full stochastic model, ``[E, B, K]``, in one network call on the
  batch tiled E times with per-example sampling (every row of the tiled batch
  draws its own path). The loss-based attacks average their loss over the E
  draws (the EOT gradient); the minimum-norm attacks use
  ``log(mean_e softmax_e)``.
* ``apgd_rand``: AutoAttack's version for randomised defenses (Croce & Hein
  2020): APGD-CE then APGD-DLR on the same EOT ``model_fn`` (E=20), the worst
  case over both per example. Its ``model_fn`` is the ``eot`` one; the
  runner decides the attack recipe.
* ``transfer`` (a gradient-masking check, Carlini et al. 2019): the attacker
  crafts on a *surrogate* (by default the undefended ``plain`` model trained
  on the same data; or an independently trained copy of the defense; or the
  ensemble of both) and the defender is evaluated on the result. A
  stochastic surrogate is attacked with its E-draw EOT mean. The label names
  the surrogate(s), e.g. ``transfer[plain]``, and the record carries each
  surrogate's weight fingerprint.
* ``arc`` (Dbouk & Shanbhag 2022): the attacker sees the randomised
  classifier as a randomised ensemble of P *fixed* members, ``[P, B, K]``
  per-member logits (not averaged): an ensemble's members, or P pinned draws
  of a stochastic model (RLS: P of its M^L paths, uniform weights); the ARC
  attack (`rls_tf.attacks.arc`) works on that member set.

For a deterministic model (``is_stochastic`` False, M=1) every threat model's
``model_fn`` is the plain white-box one: ``log`` of the network's softmax,
``[B, K]`` (an EOT of E identical draws would only cost E times more).

Adding a threat model is one entry in `THREAT_MODEL_REGISTRY` (or one
`register_threat_model` call).
"""


import dataclasses
from typing import Callable, Optional, Tuple

import numpy as np

from rls_tf.attacks import registry as attack_registry
from rls_tf.evaluation.attackers import TINY  # noqa: F401 (re-exported)
from rls_tf.evaluation.attackers import Attacker  # noqa: F401
from rls_tf.evaluation.attackers import EotDraws  # noqa: F401
from rls_tf.evaluation.attackers import defender_outputs  # noqa: F401
from rls_tf.evaluation.attackers import eot_model_fn  # noqa: F401
from rls_tf.evaluation.attackers import eot_tied_fn  # noqa: F401
from rls_tf.evaluation.attackers import log_probabilities  # noqa: F401
from rls_tf.evaluation.attackers import make_arc_attacker
from rls_tf.evaluation.attackers import make_sampled_attacker
from rls_tf.evaluation.attackers import make_transfer_attacker  # noqa: F401
from rls_tf.evaluation.attackers import member_model_fn  # noqa: F401
from rls_tf.evaluation.attackers import members_model_fn  # noqa: F401
from rls_tf.evaluation.attackers import pinned_model_fn  # noqa: F401
from rls_tf.evaluation.attackers import plain_model_fn  # noqa: F401
from rls_tf.evaluation.attackers import surrogate_model_fn  # noqa: F401

__all__ = [
    "THREAT_MODELS",
    "THREAT_MODEL_REGISTRY",
    "TINY",
    "Attacker",
    "ThreatModel",
    "ThreatModelSpec",
    "defender_outputs",
    "EotDraws",
    "eot_model_fn",
    "eot_tied_fn",
    "get_threat_model",
    "log_probabilities",
    "make_arc_attacker",
    "make_attacker",
    "make_transfer_attacker",
    "member_model_fn",
    "members_model_fn",
    "pinned_model_fn",
    "plain_model_fn",
    "register_threat_model",
    "threat_model_grid",
    "unregister_threat_model",
]

# The size fields of a `ThreatModel`, in JSON order.
_SIZE_FIELDS = ("num_paths", "surrogate", "eot_samples")


@dataclasses.dataclass(frozen=True)
class ThreatModelSpec:
    """Everything the harness knows about one threat model.

    Attributes:
        name: registry / CLI / results name (``threat_model_name``).
        budget: the attack budget its settings are built with (one of
            `rls_tf.attacks.registry.BUDGETS`).
        build: ``(model, threat_model, seed) -> Attacker``; None when the
            attacker is built from surrogates (`crafted_on_surrogate`).
        size: the `ThreatModel` field printed in the label, or None.
        size_symbol: its symbol in the label (``"S"`` in
            ``multi_sample[S=5]``; empty: the value alone).
        uses_eot: the attacker averages E fresh draws per call (its
            ``eot_samples`` is recorded).
        single_path: the attacker pins exactly one path (``num_paths`` 1).
        admits: ``AttackSpec -> bool``: the only attacks it runs (None: all
            those with settings under `budget` and what they require).
        staged: runs the attacks with `AttackSpec.loss_stages` as their
            staged recipe (APGD-CE then APGD-DLR).
        provides: the attacker functions (`AttackSpec.attacker_fns`) its
            `Attacker` carries.
        crafted_on_surrogate: the examples are crafted on surrogates, not on
            the evaluated model (needs ``EvalConfig.surrogates``).
        challenger: a masking check's challenger (``transfer``, ``arc``):
            its records only test the white-box numbers.
        expand: ``options -> [dict of ThreatModel fields]``: the threat
            models one name stands for (see `threat_model_grid`).
        pins_draws: its attacker attacks fixed draws of a random model
            (sampled models, members): it cannot run on a random model whose
            randomness cannot be pinned (see `refuses`).
    """

    name: str
    budget: str
    build: Optional[Callable]
    size: Optional[str] = None
    size_symbol: str = ""
    uses_eot: bool = False
    single_path: bool = False
    admits: Optional[Callable] = None
    staged: bool = False
    provides: Tuple[str, ...] = ()
    crafted_on_surrogate: bool = False
    challenger: bool = False
    expand: Callable = lambda options: [{}]
    pins_draws: bool = False

    def __post_init__(self):
        if self.budget not in attack_registry.BUDGETS:
            raise ValueError(f"`budget` must be one of {attack_registry.BUDGETS}. "
                             f"Received: budget={self.budget!r}")
        if self.size is not None and self.size not in _SIZE_FIELDS:
            raise ValueError(f"`size` must be one of {_SIZE_FIELDS}. Received: size={self.size!r}")

    def label(self, threat_model):
        """The label printed next to every number `threat_model` produced."""
        if self.size is None:
            return self.name
        value = getattr(threat_model, self.size)
        return (f"{self.name}[{self.size_symbol}={value}]" if self.size_symbol
                else f"{self.name}[{value}]")

    def refuses(self, model):
        """Why this threat model cannot attack `model`, or None when it can.

        A random classifier whose draws do not fix its randomness (a model
        from elsewhere, `rls_tf.models.external.ExternalClassifier`) has no
        sampled model to pin: the threat models that attack pinned draws
        would attack a different random model at every step, so they refuse
        it; the EOT, transfer and score-based threat models run.
        """
        if self.pins_draws and model.is_stochastic and not model.pinnable:
            return (f"{self.name} attacks pinned draws; this model is random and its "
                    "randomness cannot be pinned (run eot or apgd_rand)")
        return None

    def json_fields(self):
        """The size fields of its JSON form."""
        return tuple(f for f in _SIZE_FIELDS
                     if f == self.size or (f == "eot_samples" and self.uses_eot))

    def _runs(self, attack):
        """Whether `attack` has settings here and gets what it requires."""
        return (attack.has_budget(self.budget)
                and set(attack.requires) <= set(self.provides)
                and (not self.staged or bool(attack.loss_stages)))

    def _admits(self, attack):
        return self.admits is None or self.admits(attack)

    def applicable(self, attack, preset):
        """``(applicable, reason)`` of an `AttackSpec` (or its name) here."""
        attack = _attack_spec(attack)
        if not self._admits(attack):
            names = [a.name for a in attack_registry.REGISTRY.values() if self._admits(a)]
            return False, f"{self.name} runs {', '.join(names)} only"
        if not self._runs(attack):
            under = [t.name for t in THREAT_MODEL_REGISTRY.values()
                     if t._runs(attack) and t._admits(attack)]
            return False, f"{attack.name} runs under {', '.join(under)} only"
        if (self.budget == "adaptive" and attack.optional_when_adaptive
                and not preset.eot_min_norm):
            return False, (f"minimum-norm attacks under {self.name} are optional "
                           "(--eot_min_norm)")
        return True, ""

    def settings(self, attack, preset):
        """The `AttackSetting`s of an `AttackSpec` (or its name) here."""
        attack = _attack_spec(attack)
        out = attack.build_settings(preset, self.budget)
        if self.staged and attack.loss_stages:
            out = [attack.staged(s) for s in out]
        return out


def _attack_spec(attack):
    return attack if isinstance(attack, attack_registry.AttackSpec) else (
        attack_registry.get_attack(attack))


def _transfers(attack):
    return attack.transfers


def _needs_members(attack):
    return "member_fn" in attack.requires


def _has_loss_stages(attack):
    return bool(attack.loss_stages)


def _eot_grid(options):
    return [{"eot_samples": int(options["eot_samples"])}]


THREAT_MODEL_REGISTRY = {spec.name: spec for spec in (
    ThreatModelSpec("paper", "standard", make_sampled_attacker, single_path=True,
                    pins_draws=True),
    ThreatModelSpec("multi_sample", "standard", make_sampled_attacker, size="num_paths",
                    size_symbol="S", pins_draws=True,
                    expand=lambda o: [{"num_paths": int(s)} for s in o["multi_sample_paths"]]),
    ThreatModelSpec("eot", "adaptive", make_sampled_attacker, size="eot_samples",
                    size_symbol="E", uses_eot=True, provides=("tied_fn",), expand=_eot_grid),
    ThreatModelSpec("apgd_rand", "adaptive", make_sampled_attacker, size="eot_samples",
                    size_symbol="E", uses_eot=True, admits=_has_loss_stages, staged=True,
                    provides=("tied_fn",), expand=_eot_grid),
    ThreatModelSpec("transfer", "transfer", None, size="surrogate", admits=_transfers,
                    crafted_on_surrogate=True, challenger=True,
                    expand=lambda o: [{"eot_samples": int(o["eot_samples"]),
                                       "surrogate": str(s)} for s in o["surrogates"]]),
    ThreatModelSpec("arc", "standard", make_arc_attacker, size="num_paths", size_symbol="P",
                    admits=_needs_members, provides=("member_fn",), challenger=True,
                    pins_draws=True,
                    expand=lambda o: [{"num_paths": int(o["arc_paths"])}]),
)}

# The built-in threat models (CLI order).
THREAT_MODELS = tuple(THREAT_MODEL_REGISTRY)


def get_threat_model(name):
    """The `ThreatModelSpec` called `name`, or a ValueError naming the choices."""
    if name not in THREAT_MODEL_REGISTRY:
        raise ValueError(
            f"Unknown threat model. Received: threat_model={name!r}. "
            f"Expected one of {tuple(THREAT_MODEL_REGISTRY)}."
        )
    return THREAT_MODEL_REGISTRY[name]


def register_threat_model(spec):
    """Adds a `ThreatModelSpec` to `THREAT_MODEL_REGISTRY`; returns it."""
    if not isinstance(spec, ThreatModelSpec):
        raise ValueError(f"`spec` must be a ThreatModelSpec. Received: spec={spec!r}")
    if spec.name in THREAT_MODEL_REGISTRY:
        raise ValueError(f"A threat model of this name is registered. "
                         f"Received: name={spec.name!r}")
    THREAT_MODEL_REGISTRY[spec.name] = spec
    return spec


def unregister_threat_model(name):
    """Removes a registered threat model (the inverse of `register_threat_model`)."""
    get_threat_model(name)
    del THREAT_MODEL_REGISTRY[name]


@dataclasses.dataclass(frozen=True)
class ThreatModel:
    """A threat model and its size parameter.

    Attributes:
        name: a `THREAT_MODEL_REGISTRY` name.
        num_paths: S, pinned sampled models attacked together
            (``multi_sample``; 1 for ``paper``; P members under ``arc``).
        eot_samples: E, draws per gradient (``eot``, ``apgd_rand``; a
            stochastic surrogate's under ``transfer``).
        surrogate: the surrogate names of ``transfer``, joined by ``+``
            (an ensemble of surrogates), e.g. ``"plain"``.
    """

    name: str
    num_paths: int = 1
    eot_samples: int = 20
    surrogate: Optional[str] = None

    def __post_init__(self):
        spec = get_threat_model(self.name)
        for field in ("num_paths", "eot_samples"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"`{field}` must be an int >= 1. Received: {field}={value!r}")
        if spec.size == "surrogate" and not self.surrogate:
            raise ValueError(f"The `{self.name}` threat model needs a surrogate. "
                             f"Received: surrogate={self.surrogate!r}")
        if spec.single_path and self.num_paths != 1:
            raise ValueError(
                f"The `{self.name}` threat model attacks one sampled model "
                f"(num_paths=1). Received: num_paths={self.num_paths}"
            )

    @property
    def spec(self):
        """Its `ThreatModelSpec`."""
        return get_threat_model(self.name)

    @property
    def uses_eot(self):
        return self.spec.uses_eot

    @property
    def label(self):
        """The label printed next to every number it produced."""
        return self.spec.label(self)

    def to_json(self):
        out = {"name": self.name, "label": self.label}
        out.update({field: getattr(self, field) for field in self.spec.json_fields()})
        return out

    @classmethod
    def from_json(cls, data):
        """The `ThreatModel` of its `to_json` form (the label is derived)."""
        return cls(**{k: v for k, v in data.items() if k in ("name", *_SIZE_FIELDS)})

    def applicable(self, attack, preset):
        """``(applicable, reason)`` of an attack (spec or name) under this threat model."""
        return self.spec.applicable(attack, preset)

    def settings(self, attack, preset):
        """The `AttackSetting`s of an attack (spec or name) under this threat model."""
        return self.spec.settings(attack, preset)


def make_attacker(model, threat_model, seed=None):
    """Builds the attacker's view of `model` under `threat_model`.

    Args:
        model: a `StochasticClassifier` (deterministic ones included).
        threat_model: a `ThreatModel` (or its name, with default sizes).
        seed: seed of the pinned paths (``paper``, ``multi_sample``, ``arc``)
            or of the first EOT draws (``eot``, ``apgd_rand``; see
            `Attacker.reseed`).

    Returns:
        An `Attacker`.
    """
    if isinstance(threat_model, str):
        threat_model = ThreatModel(threat_model)
    if threat_model.spec.build is None:
        raise ValueError(f"The {threat_model.name} attacker is built from its surrogates: use "
                         "make_transfer_attacker.")
    return threat_model.spec.build(model, threat_model, seed=seed)


def threat_model_grid(names, multi_sample_paths=(1, 5, 10, 15), eot_samples=20,
                      surrogates=("plain",), arc_paths=10):
    """Expands threat-model names into `ThreatModel`s.

    One per S for multi_sample, one per surrogate spec for transfer (each
    spec's ``expand``).

    Returns:
        tuple of `ThreatModel`.
    """
    options = {"multi_sample_paths": multi_sample_paths, "eot_samples": eot_samples,
               "surrogates": surrogates, "arc_paths": arc_paths}
    out = []
    for name in names:
        spec = get_threat_model(name)
        out.extend(ThreatModel(name, **fields) for fields in spec.expand(options))
    return tuple(out)
