"""Attack parameters: the paper's per-dataset settings (Lee et al., Tables 1-2).

A `Preset` holds every attack parameter the runner uses. The three paper
presets copy the perturbation sizes of the RLS paper's Tables 1 and 2:

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
from typing import Tuple

__all__ = ["EPS_UNITS", "PRESETS", "Preset", "get_preset", "default_preset_name"]

EPS_UNITS = ("model", "unit")


@dataclasses.dataclass(frozen=True)
class Preset:
    """Every attack parameter of an evaluation.

    Attributes:
        name: preset name (recorded in the results).
        dataset: the dataset it was made for.
        fgsm_eps: FGSM L-inf sizes.
        pgd_eps: PGD (and APGD) L-inf sizes.
        cw_c: C&W constants c (each run with a constant c).
        ead_c: EAD constants c.
        eps_units: "model" (eps applied to [-1, 1] pixels as given) or
            "unit" (eps given for [0, 1] pixels, doubled).
        pgd_steps: PGD iterations (paper threat models).
        pgd_step_ratio: PGD step size as a fraction of eps (paper: 1/10).
        pgd_rand_init: random start of the paper-protocol PGD.
        deepfool_overshoot, deepfool_max_iter, deepfool_candidates: DeepFool.
        cw_steps, cw_lr, cw_confidence, cw_binary_search_steps: C&W-L2.
        ead_beta, ead_steps, ead_lr, ead_confidence,
        ead_binary_search_steps, ead_decision_rule: EAD.
        apgd_steps, apgd_restarts: APGD (all threat models).
        eot_samples: E, fresh draws per gradient (eot, apgd_rand).
        eot_pgd_steps, eot_pgd_restarts: PGD under eot (step 2.5 eps/steps).
        eot_min_norm: also run DeepFool/C&W/EAD under eot.
        eot_min_norm_steps: C&W/EAD steps under eot.
        eot_kappa: the extra confidence margin (> 0) of C&W/EAD under eot.
        eot_deepfool_overshoot: the extra DeepFool overshoot under eot.
        multi_sample_paths: S values of the multi_sample threat model.
        transfer_steps: PGD / MI-FGSM iterations under transfer.
        transfer_loss: loss of the transfer attacks, "margin" or "ce".
        mifgsm_decay: MI-FGSM momentum decay mu.
        square_queries: Square Attack query budget per image.
        square_p_init: Square Attack initial fraction of pixels per square.
        spsa_iters: SPSA iterations.
        spsa_samples: SPSA finite-difference samples per iteration.
        spsa_delta: SPSA perturbation size.
        spsa_lr: SPSA Adam learning rate (CleverHans' 0.01 is for [0, 1]
            pixels; 0.05 on our [-1, 1] pixels is what breaks an undefended
            MNIST CNN within 50 iterations in the strength test).
        score_num_examples: Square and SPSA run on the first this many images.
        score_eps: the eps of Square and SPSA (empty: pgd_eps).
        arc_paths: P, pinned draws ARC attacks as fixed members.
        arc_steps: ARC iterations.
        convergence_eps: eps of the convergence sweeps (0: the largest pgd_eps).
        convergence_steps: EOT-PGD step counts of the convergence sweep.
        convergence_draws: EOT draw counts E of the convergence sweep.
        sweep_eps: eps values of the eps sweep (EOT PGD).
    """

    name: str
    dataset: str
    fgsm_eps: Tuple[float, ...]
    pgd_eps: Tuple[float, ...]
    cw_c: Tuple[float, ...]
    ead_c: Tuple[float, ...]
    eps_units: str = "model"
    pgd_steps: int = 10
    pgd_step_ratio: float = 0.1
    pgd_rand_init: bool = False
    deepfool_overshoot: float = 0.02
    deepfool_max_iter: int = 50
    deepfool_candidates: int = 10
    cw_steps: int = 1000
    cw_lr: float = 0.01
    cw_confidence: float = 0.0
    cw_binary_search_steps: int = 1
    ead_beta: float = 0.01
    ead_steps: int = 1000
    ead_lr: float = 0.01
    ead_confidence: float = 0.0
    ead_binary_search_steps: int = 1
    ead_decision_rule: str = "EN"
    apgd_steps: int = 100
    apgd_restarts: int = 1
    eot_samples: int = 20
    eot_pgd_steps: int = 100
    eot_pgd_restarts: int = 3
    eot_min_norm: bool = False
    eot_min_norm_steps: int = 100
    eot_kappa: float = 1.0
    eot_deepfool_overshoot: float = 1.0
    multi_sample_paths: Tuple[int, ...] = (1, 5, 10, 15)
    transfer_steps: int = 100
    transfer_loss: str = "margin"
    mifgsm_decay: float = 1.0
    square_queries: int = 5000
    square_p_init: float = 0.8
    spsa_iters: int = 100
    spsa_samples: int = 128
    spsa_delta: float = 0.01
    spsa_lr: float = 0.05
    score_num_examples: int = 100
    score_eps: Tuple[float, ...] = ()
    arc_paths: int = 10
    arc_steps: int = 20
    convergence_eps: float = 0.0
    convergence_steps: Tuple[int, ...] = (10, 50, 100, 200, 400)
    convergence_draws: Tuple[int, ...] = (1, 5, 10, 20, 40)
    sweep_eps: Tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0)

    def __post_init__(self):
        if self.eps_units not in EPS_UNITS:
            raise ValueError(
                f"`eps_units` must be one of {EPS_UNITS}. "
                f"Received: eps_units={self.eps_units!r}"
            )
        for field in ("fgsm_eps", "pgd_eps", "cw_c", "ead_c"):
            values = getattr(self, field)
            if not all(_is_number(v) and v >= 0 for v in values):
                raise ValueError(
                    f"`{field}` must be numbers >= 0. Received: {field}={values!r}"
                )
        for field in ("pgd_steps", "deepfool_max_iter", "cw_steps",
                      "cw_binary_search_steps", "ead_steps",
                      "ead_binary_search_steps", "apgd_steps", "apgd_restarts",
                      "eot_samples", "eot_pgd_steps", "eot_pgd_restarts",
                      "eot_min_norm_steps", "transfer_steps", "square_queries",
                      "spsa_iters", "spsa_samples", "score_num_examples", "arc_paths",
                      "arc_steps"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{field}` must be an int >= 1. Received: {field}={value!r}")
        if self.deepfool_candidates < 2:
            raise ValueError(
                "`deepfool_candidates` must be >= 2. "
                f"Received: deepfool_candidates={self.deepfool_candidates!r}"
            )
        if not 0 < self.pgd_step_ratio <= 1:
            raise ValueError(
                "`pgd_step_ratio` must be in (0, 1]. "
                f"Received: pgd_step_ratio={self.pgd_step_ratio!r}"
            )
        if self.transfer_loss not in ("margin", "ce"):
            raise ValueError("`transfer_loss` must be one of ('margin', 'ce'). "
                             f"Received: transfer_loss={self.transfer_loss!r}")
        if not 0 < self.square_p_init <= 1:
            raise ValueError(f"`square_p_init` must be in (0, 1]. "
                             f"Received: square_p_init={self.square_p_init!r}")
        for field in ("spsa_delta", "spsa_lr"):
            if not getattr(self, field) > 0:
                raise ValueError(f"`{field}` must be > 0. Received: {field}={getattr(self, field)!r}")
        if not self.mifgsm_decay >= 0:
            raise ValueError(f"`mifgsm_decay` must be >= 0. Received: mifgsm_decay={self.mifgsm_decay!r}")
        if not self.convergence_eps >= 0:
            raise ValueError(f"`convergence_eps` must be >= 0. "
                             f"Received: convergence_eps={self.convergence_eps!r}")
        for field in ("convergence_steps", "convergence_draws"):
            values = getattr(self, field)
            if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                     for v in values):
                raise ValueError(f"`{field}` must be ints >= 1. Received: {field}={values!r}")
        if not all(_is_number(v) and v >= 0 for v in self.score_eps):
            raise ValueError(f"`score_eps` must be numbers >= 0. Received: score_eps={self.score_eps!r}")
        if not self.sweep_eps or not all(_is_number(v) and v >= 0 for v in self.sweep_eps):
            raise ValueError(f"`sweep_eps` must be numbers >= 0. Received: sweep_eps={self.sweep_eps!r}")
        if not self.eot_kappa > 0:
            raise ValueError(f"`eot_kappa` must be > 0. Received: eot_kappa={self.eot_kappa!r}")
        if not self.multi_sample_paths or not all(
            isinstance(s, int) and s >= 1 for s in self.multi_sample_paths
        ):
            raise ValueError(
                "`multi_sample_paths` must be ints >= 1. "
                f"Received: multi_sample_paths={self.multi_sample_paths!r}"
            )

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
        """A copy with some fields changed (None values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        for key in ("fgsm_eps", "pgd_eps", "cw_c", "ead_c", "multi_sample_paths",
                    "convergence_steps", "convergence_draws", "sweep_eps", "score_eps"):
            if key in changes:
                changes[key] = tuple(changes[key])
        return dataclasses.replace(self, **changes)

    def to_json(self):
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


PRESETS = {
    "paper_mnist": Preset(
        name="paper_mnist", dataset="mnist",
        fgsm_eps=(0.1, 0.2), pgd_eps=(0.05, 0.1), cw_c=(0.1, 1.0), ead_c=(0.1, 1.0),
    ),
    "paper_cifar10": Preset(
        name="paper_cifar10", dataset="cifar10",
        fgsm_eps=(0.01, 0.02), pgd_eps=(0.01, 0.02), cw_c=(0.01, 0.1), ead_c=(0.01, 0.1),
    ),
    "paper_svhn": Preset(
        name="paper_svhn", dataset="svhn",
        fgsm_eps=(0.05, 0.1), pgd_eps=(0.01, 0.02), cw_c=(0.01, 0.1), ead_c=(0.01, 0.1),
    ),
}


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
