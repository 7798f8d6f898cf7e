"""What the harness knows about one attack: `AttackSpec`, `AttackSetting` and their vocabularies.

`AttackSpec` is the registry entry (`rls_tf.attacks.registry` lists one per
attack); `AttackSetting` one row of a results table; `KINDS`, `ACCESS`,
`BUDGETS` and `RECIPES` the values their fields take. This module imports
nothing of ``rls_tf`` outside the attacks package.
"""

import dataclasses
from typing import Callable, Optional, Tuple

from rls_tf.attacks.params import Param

__all__ = ["ACCESS", "AttackSetting", "AttackSpec", "BUDGETS", "KINDS", "RECIPES"]

KINDS = ("loss", "min_norm")
# What an attack needs of the model: gradients of its ``model_fn``; only its
# scores (queries); a set of fixed members, one at a time (ARC).
ACCESS = ("gradient", "scores", "members")
# The parameter sets a setting is built with: "standard" (the preset's own
# fields, the paper protocol), "adaptive" (the stronger ``eot_*`` fields, for
# an attacker that averages fresh draws), "transfer" (``transfer_*``: crafted
# on a surrogate).
BUDGETS = ("standard", "adaptive", "transfer")
# How a setting is run on a batch: one call; the best of several random
# restarts; the attack with each of its `AttackSpec.loss_stages` in turn, the
# later ones on what the earlier did not fool (APGD: "ce+dlr").
RECIPES = ("single", "restarts", "ce+dlr")


@dataclasses.dataclass(frozen=True)
class AttackSetting:
    """One row of the results table: an attack with one parameter value.

    Attributes:
        attack: registry name of the attack.
        param: the row label, e.g. ``"eps=0.05"``, ``"c=0.1, kappa=1"``.
        kwargs: keyword arguments of the attack function.
        recipe: one of `RECIPES` (a staged one: ``"+".join(loss_stages)``).
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


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """Everything the harness knows about one attack.

    Attributes:
        name: registry / CLI / results name.
        function: ``fn(model_fn, x, y, **kwargs) -> x_adv``.
        title: printed in tables, plots and the masking checks.
        kind: "loss" or "min_norm" (success rate and L2/L1 sizes reported).
        seeded: whether the function takes ``seed`` (random starts).
        settings: ``(preset, budget) -> [AttackSetting]``, `budget` one of
            `BUDGETS`; it reads the preset's values of `params` and `reads`
            as attributes (``preset.pgd_steps``).
        params: its own parameters (`rls_tf.attacks.params.Param`): their
            defaults, checks and help become preset keys and
            ``attack_eval.py`` flags. A name may be declared by several
            attacks only as the same `Param` object.
        reads: the preset keys of others it also reads (another attack's,
            e.g. APGD's ``pgd_eps``, or the evaluation's, e.g.
            ``eot_pgd_steps``).
        budgets: the budgets it has settings for (None: all of them).
        access: one of `ACCESS`: what the attack needs of the model.
        transfers: a gradient attack whose examples are worth carrying over
            from a surrogate (the transfer check runs these).
        optional_when_adaptive: under the "adaptive" budget it runs only when
            the preset's ``eot_min_norm`` is set (the costly minimum-norm
            attacks).
        subset: a preset field naming how many of the first images the
            attack runs on (the expensive score-based and optimisation
            attacks; a value of 0 there: all images), or None.
        reports_queries: the function takes ``return_info`` and reports
            per-example ``queries`` (score-based attacks).
        attacker_fns: keyword arguments the function takes from the
            attacker when it has them (attributes of the harness's
            ``Attacker`` of the same name): ``tied_fn`` (common draws for the
            points a score-based attack compares, `_common.tied_logits`),
            ``member_fn`` (one member of ARC's set alone).
        requires: those of `attacker_fns` it cannot run without.
        loss_stages: the values of its ``loss`` argument a staged recipe
            runs in turn (APGD: ``("ce", "dlr")``), the later ones on what
            the earlier did not fool; empty: the attack has no staged recipe.
        restarts_kwarg: the keyword argument of its own restarts (set to 1
            in a staged recipe, whose stages are the restarts).
    """

    name: str
    function: Callable
    title: str
    kind: str
    seeded: bool
    settings: Callable
    params: Tuple[Param, ...] = ()
    reads: Tuple[str, ...] = ()
    budgets: Optional[Tuple[str, ...]] = None
    access: str = "gradient"
    transfers: bool = False
    optional_when_adaptive: bool = False
    subset: Optional[str] = None
    reports_queries: bool = False
    attacker_fns: Tuple[str, ...] = ()
    requires: Tuple[str, ...] = ()
    loss_stages: Tuple[str, ...] = ()
    restarts_kwarg: Optional[str] = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"`kind` must be one of {KINDS}. Received: kind={self.kind!r}")
        if self.access not in ACCESS:
            raise ValueError(f"`access` must be one of {ACCESS}. Received: access={self.access!r}")
        for budget in self.budgets or ():
            if budget not in BUDGETS:
                raise ValueError(f"`budgets` must be a subset of {BUDGETS}. "
                                 f"Received: budgets={self.budgets!r}")
        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(self, "reads", tuple(self.reads))
        for param in self.params:
            if not isinstance(param, Param):
                raise ValueError("`params` must be Param objects (rls_tf.attacks.params). "
                                 f"Received: params={self.params!r}")
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"`params` must have distinct names. Received: names={names!r}")
        if not set(self.requires) <= set(self.attacker_fns):
            raise ValueError("`requires` must be a subset of `attacker_fns`. "
                             f"Received: requires={self.requires!r}")

    @property
    def preset_fields(self):
        """Every preset key its settings read: its own `params`, then `reads`."""
        return tuple(p.name for p in self.params) + tuple(
            n for n in self.reads if n not in {p.name for p in self.params})

    @property
    def min_norm(self):
        return self.kind == "min_norm"

    @property
    def staged_recipe(self):
        """The recipe name of its staged run (``"ce+dlr"``), or None."""
        return "+".join(self.loss_stages) if self.loss_stages else None

    def has_budget(self, budget):
        return self.budgets is None or budget in self.budgets

    def build_settings(self, preset, budget):
        """The `AttackSetting`s of this attack under a budget (one of `BUDGETS`)."""
        if budget not in BUDGETS:
            raise ValueError(f"Unknown budget. Received: budget={budget!r}. "
                             f"Expected one of {BUDGETS}.")
        return self.settings(preset, budget)

    def staged(self, setting):
        """`setting` run as the staged recipe: one own restart, the loss stages in turn."""
        if not self.loss_stages:
            raise ValueError(f"{self.name} has no loss stages. Received: attack={self.name!r}")
        kwargs = dict(setting.kwargs)
        if self.restarts_kwarg is not None:
            kwargs[self.restarts_kwarg] = 1
        kwargs["loss"] = self.loss_stages[0]
        return dataclasses.replace(setting, kwargs=kwargs, recipe=self.staged_recipe)
