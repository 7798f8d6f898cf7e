"""Threat models: what the attacker sees of a randomised classifier.

Everything here speaks only `rls_tf.defense.StochasticClassifier` (draws
and outputs of given draws), so it applies to any defense; the text below
says "sampled model" for one draw, as for RLS.

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

Model outputs are probabilities (the networks end in a softmax); attacks
need logits, so every ``model_fn`` returns ``log(p + TINY)``: valid logits
(their softmax is p up to TINY) with finite gradients where p underflows.
"""

import dataclasses
from typing import Any, Optional

import numpy as np
import tensorflow as tf

from rls_tf.defense import SeedStream

__all__ = [
    "THREAT_MODELS",
    "TINY",
    "Attacker",
    "ThreatModel",
    "defender_outputs",
    "EotDraws",
    "eot_model_fn",
    "eot_tied_fn",
    "log_probabilities",
    "make_arc_attacker",
    "make_attacker",
    "make_transfer_attacker",
    "member_model_fn",
    "members_model_fn",
    "pinned_model_fn",
    "plain_model_fn",
    "threat_model_grid",
]

THREAT_MODELS = ("paper", "multi_sample", "eot", "apgd_rand", "transfer", "arc")
TINY = 1e-12

# Threat models whose attacker uses fresh draws (EOT) rather than pinned paths.
_EOT_THREAT_MODELS = ("eot", "apgd_rand")


def log_probabilities(probs):
    """``log(probs + TINY)``: logits whose softmax is ``probs``."""
    return tf.math.log(tf.convert_to_tensor(probs) + TINY)


def plain_model_fn(model):
    """White-box ``model_fn`` of a deterministic classifier: ``[B, K]`` log-probs.

    The log of its inference (``model.defend``: a plain network's softmax,
    the mean of an ensemble's members). For a stochastic classifier this
    would be a fresh N-draw mean per call; the threat models never use it on
    one.
    """

    def model_fn(x):
        return log_probabilities(model.defend(x))

    return model_fn


def pinned_model_fn(model, paths):
    """``model_fn`` of the ensemble of S pinned draws (sampled models).

    Args:
        model: a `StochasticClassifier`.
        paths: int ``tf.Variable`` (or array) ``[S, *draw_shape]``, one draw
            per row (see ``model.draw``). A variable is read at every call,
            so a traced attack picks up newly assigned draws without
            retracing.

    Returns:
        ``x -> log(mean_s model.outputs(x, paths)[s])``, ``[B, K]``. For S=1
        this is the log-softmax of the one pinned sampled model.
    """

    def model_fn(x):
        probs = model.outputs(x, tf.convert_to_tensor(paths))
        return log_probabilities(tf.reduce_mean(probs, axis=0))

    return model_fn


class EotDraws(SeedStream):
    """Seeded, per-example draws for the E draws of every EOT call.

    Every call of an EOT ``model_fn`` draws one draw per example and per E
    from a stateless key keyed on (seed, number of the call): the draws are
    fresh at every call, as a stochastic classifier's are, yet a run with
    the same seed repeats them exactly, and so does a shard of a run
    (`reseed` at every batch, from the batch's global index).

    Args:
        model: unused (kept for the signature of earlier versions).
        seed: initial seed (int).
    """

    def __init__(self, model=None, seed=0):  # pylint: disable=unused-argument
        super().__init__(seed)


def eot_model_fn(model, num_draws, draws=None):
    """``model_fn`` returning E fresh draws of the stochastic model, ``[E, B, K]``.

    ``model.sample``: one call in which every example has its own E draws,
    so the E draws of an example are independent, and so are the draws of
    different examples. The draws come from `draws` (seeded, see
    `EotDraws`), or, with ``draws=None``, from fresh entropy.

    Args:
        model: a `StochasticClassifier`.
        num_draws: E >= 1.
        draws: optional `EotDraws`.

    Returns:
        ``x -> [E, B, K]`` log-probabilities of the E draws.
    """
    num_draws = int(num_draws)
    if num_draws < 1:
        raise ValueError(f"`num_draws` must be >= 1. Received: num_draws={num_draws}")

    def model_fn(x):
        key = None if draws is None else draws.next_key()
        return log_probabilities(model.sample(x, num_draws, seed=key))

    return model_fn


def eot_tied_fn(model, num_draws, draws=None):
    """The EOT attacker's common-draws ``tied_fn(x, copies)`` (score-based attacks).

    ``x`` is ``copies`` blocks of n examples stacked on the batch axis;
    example i of every block gets the same E fresh per-example draws, so the
    points a score-based attack compares (Square's current point and
    candidate, SPSA's ``x +- delta v``) differ by the perturbation only, not
    by the draws (see `rls_tf.attacks._common.tied_logits`). The attacker of
    the ``eot`` threat model fixes its own draws (as EOT's attacker does);
    the defender still draws fresh ones.

    Returns:
        ``(x, copies) -> [E, copies * n, K]`` log-probabilities.
    """
    num_draws = int(num_draws)
    if num_draws < 1:
        raise ValueError(f"`num_draws` must be >= 1. Received: num_draws={num_draws}")
    draw_shape = [int(d) for d in model.draw_shape]

    def tied_fn(x, copies):
        x = tf.convert_to_tensor(x)
        n = tf.shape(x)[0] // int(copies)
        key = None if draws is None else draws.next_key()
        block = tf.reshape(model.draw(num_draws * n, seed=key),
                           tf.concat([[num_draws, n], tf.constant(draw_shape, tf.int32)], 0))
        tiled = tf.tile(block, [1, int(copies)] + [1] * len(draw_shape))
        return log_probabilities(model.outputs(x, tiled))

    return tied_fn


def defender_outputs(model, x, num_samples):
    """The defender's view: ``[N, B, K]`` probabilities of N fresh draws.

    The model's own inference mode (``model.defend(x)`` is their mean), i.e.
    the paper's: one fresh draw per sampled model for the whole batch unless
    the model draws per example. A deterministic model gives ``[1, B, K]``
    (its N samples would be identical).
    """
    n = int(num_samples) if model.is_stochastic else 1
    if model.draws_per_example:
        return model.sample(x, n)
    return model.outputs(x, model.draw(n))


@dataclasses.dataclass(frozen=True)
class ThreatModel:
    """A threat model and its size parameter.

    Attributes:
        name: one of `THREAT_MODELS`.
        num_paths: S, pinned sampled models attacked together
            (``multi_sample``; 1 for ``paper``).
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
        if self.name not in THREAT_MODELS:
            raise ValueError(
                f"Unknown threat model. Received: threat_model={self.name!r}. "
                f"Expected one of {THREAT_MODELS}."
            )
        for field in ("num_paths", "eot_samples"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"`{field}` must be an int >= 1. Received: {field}={value!r}")
        if self.name == "transfer" and not self.surrogate:
            raise ValueError("The `transfer` threat model needs a surrogate. "
                             f"Received: surrogate={self.surrogate!r}")
        if self.name == "paper" and self.num_paths != 1:
            raise ValueError(
                "The `paper` threat model attacks one sampled model "
                f"(num_paths=1). Received: num_paths={self.num_paths}"
            )

    @property
    def uses_eot(self):
        return self.name in _EOT_THREAT_MODELS

    @property
    def label(self):
        """The label printed next to every number it produced."""
        if self.name == "multi_sample":
            return f"multi_sample[S={self.num_paths}]"
        if self.name == "transfer":
            return f"transfer[{self.surrogate}]"
        if self.name == "arc":
            return f"arc[P={self.num_paths}]"
        if self.uses_eot:
            return f"{self.name}[E={self.eot_samples}]"
        return self.name

    def to_json(self):
        out = {"name": self.name, "label": self.label}
        if self.name in ("multi_sample", "arc"):
            out["num_paths"] = self.num_paths
        if self.name == "transfer":
            out["surrogate"] = self.surrogate
        if self.uses_eot:
            out["eot_samples"] = self.eot_samples
        return out


@dataclasses.dataclass
class Attacker:
    """What the attack gets: its ``model_fn`` and how it was made.

    Attributes:
        threat_model: the `ThreatModel`.
        model_fn: ``x -> logits`` ``[B, K]`` or ``[E, B, K]``.
        white_box: True when the model is deterministic and ``model_fn`` is
            the plain white-box one (whatever the threat model).
        paths: the pinned paths ``[S, L]`` (pinned threat models on a
            stochastic model), else None.
        model: the attacked model (pinned attackers, for `repin`).
        paths_variable: the variable the pinned ``model_fn`` reads.
        draws: the `EotDraws` of an EOT attacker on a stochastic model.
        extra: more JSON-able facts for `describe`.
        tied_fn: the EOT attacker's common-draws function (`eot_tied_fn`),
            handed to the attacks that compare nearby points (Square, SPSA).
        member_fn: the ARC attacker's one-member function (`member_model_fn`).
    """

    threat_model: ThreatModel
    model_fn: object
    white_box: bool
    paths: Optional[np.ndarray] = None
    model: Any = None
    paths_variable: Optional[tf.Variable] = None
    draws: Optional[EotDraws] = None
    extra: Optional[dict] = None
    tied_fn: Any = None
    member_fn: Any = None

    def reseed(self, seed):
        """Restarts an EOT attacker's seeded draws (a no-op for others)."""
        if self.draws is not None:
            self.draws.reseed(seed)

    def repin(self, seed):
        """Draws new pinned paths (same S) for the next attack; returns them.

        The traced ``model_fn`` reads them from a variable: no retracing.
        A no-op (returns None) for unpinned attackers.
        """
        if self.paths_variable is None:
            return None
        paths = np.asarray(self.model.draw(self.threat_model.num_paths, seed=seed))
        self.paths_variable.assign(paths)
        self.paths = paths
        return paths

    def describe(self):
        """JSON-able description of the attacker (paths included)."""
        out = {"white_box": self.white_box}
        if self.paths is not None:
            out["paths"] = np.asarray(self.paths).tolist()
        if self.threat_model.uses_eot and not self.white_box:
            out["eot_samples"] = self.threat_model.eot_samples
            out["sampling"] = ("per-example, fresh draws at every call, seeded per batch "
                               "(seed, global batch index, call number)")
        if self.tied_fn is not None:
            out["common_draws"] = ("score-based attacks (Square, SPSA) judge the points they "
                                   "compare with the same E draws per example")
        if self.extra:
            out.update(self.extra)
        return out


def make_attacker(model, threat_model, seed=None):
    """Builds the attacker's view of `model` under `threat_model`.

    Args:
        model: a `StochasticClassifier` (deterministic ones included).
        threat_model: a `ThreatModel` (or its name, with default sizes).
        seed: seed of the pinned paths (``paper``, ``multi_sample``) or of
            the first EOT draws (``eot``, ``apgd_rand``; see `Attacker.reseed`).

    Returns:
        An `Attacker`.
    """
    if isinstance(threat_model, str):
        threat_model = ThreatModel(threat_model)
    if threat_model.name == "transfer":
        raise ValueError("The transfer attacker is built from its surrogates: use "
                         "make_transfer_attacker.")
    if threat_model.name == "arc":
        return make_arc_attacker(model, threat_model, seed=seed)
    if not model.is_stochastic and not (model.pinnable and not threat_model.uses_eot):
        # Deterministic: white box, unless the threat model pins sub-models
        # (paper, multi_sample) of an ensemble whose draws name its members.
        return Attacker(threat_model, plain_model_fn(model), white_box=True)
    if threat_model.uses_eot:
        draws = EotDraws(model, 0 if seed is None else seed)
        return Attacker(
            threat_model, eot_model_fn(model, threat_model.eot_samples, draws),
            white_box=False, draws=draws,
            tied_fn=eot_tied_fn(model, threat_model.eot_samples, draws),
        )
    paths = np.asarray(model.draw(threat_model.num_paths, seed=seed))
    variable = tf.Variable(paths, dtype=tf.int32, trainable=False, name="pinned_paths")
    attacker = Attacker(
        threat_model,
        pinned_model_fn(model, variable),
        white_box=False,
        paths=paths,
        model=model,
        paths_variable=variable,
    )
    return attacker


def members_model_fn(model, draws):
    """``model_fn`` of P fixed members: ``[P, B, K]`` per-member log-probabilities.

    Unlike `pinned_model_fn` the members are not averaged: row p is draw p's
    sampled model (an ensemble member, an RLS path), as ARC needs.
    """

    def model_fn(x):
        return log_probabilities(model.outputs(x, tf.convert_to_tensor(draws)))

    return model_fn


def member_model_fn(model, draws):
    """``(x, m) -> [B, K]``: member m of `members_model_fn`'s set alone.

    Equal to ``members_model_fn(model, draws)(x)[m]`` at the cost of one
    member (ARC's gradient steps need one member at a time).
    """

    def member_fn(x, m):
        one = tf.gather(tf.convert_to_tensor(draws), tf.reshape(m, [1]))
        return log_probabilities(model.outputs(x, one))[0]

    return member_fn


def surrogate_model_fn(surrogates, eot_samples, draws=None):
    """``model_fn`` of the transfer attacker: the surrogates' mean decision.

    One deterministic surrogate: its log-softmax ``[B, K]`` (white box on
    it). One stochastic surrogate: its EOT ``model_fn`` (``[E, B, K]``).
    Several: ``log`` of the mean of their probabilities (a stochastic one
    contributes the mean of E fresh draws), ``[B, K]``.
    """
    surrogates = list(surrogates)
    if not surrogates:
        raise ValueError("At least one surrogate is needed. Received: surrogates=[]")
    if len(surrogates) == 1:
        only = surrogates[0]
        if only.is_stochastic:
            return eot_model_fn(only, eot_samples, draws)
        return plain_model_fn(only)

    def model_fn(x):
        probs = []
        for surrogate in surrogates:
            if surrogate.is_stochastic:
                key = None if draws is None else draws.next_key()
                probs.append(tf.reduce_mean(surrogate.sample(x, eot_samples, seed=key), axis=0))
            else:
                probs.append(surrogate.defend(x))
        return log_probabilities(tf.add_n(probs) / float(len(probs)))

    return model_fn


def make_transfer_attacker(surrogates, threat_model, seed=None, info=None):
    """The ``transfer`` attacker: crafts on `surrogates`, not on the defense.

    Args:
        surrogates: list of `StochasticClassifier` (the surrogate ensemble).
        threat_model: a ``transfer`` `ThreatModel`.
        seed: seed of a stochastic surrogate's EOT draws.
        info: JSON-able description of the surrogates (names, directories,
            weight fingerprints), recorded with every result.
    """
    if threat_model.name != "transfer":
        raise ValueError(f"Expected a transfer threat model. Received: {threat_model.label}")
    stochastic = any(s.is_stochastic for s in surrogates)
    draws = EotDraws(None, 0 if seed is None else seed) if stochastic else None
    attacker = Attacker(threat_model, surrogate_model_fn(surrogates, threat_model.eot_samples,
                                                         draws),
                        white_box=False, draws=draws)
    attacker.extra = {"surrogates": info or [], "crafted_on": "surrogate"}
    return attacker


def make_arc_attacker(model, threat_model, seed=None):
    """The ``arc`` attacker: P fixed members of `model`, ``[P, B, K]``.

    An ensemble whose draws name its members (``defender_draws``) gives all
    of them; a stochastic classifier P pinned draws (seeded, redrawn per run
    by `Attacker.repin`); a deterministic one itself (P = 1).
    """
    if threat_model.name != "arc":
        raise ValueError(f"Expected an arc threat model. Received: {threat_model.label}")
    fixed = model.defender_draws()
    if fixed is not None:
        paths = np.asarray(fixed)
    elif model.is_stochastic:
        paths = np.asarray(model.draw(threat_model.num_paths, seed=seed))
    else:
        paths = np.asarray(model.draw(1, seed=0))
    variable = tf.Variable(paths, dtype=tf.int32, trainable=False, name="arc_members")
    repinnable = fixed is None and model.is_stochastic
    attacker = Attacker(threat_model, members_model_fn(model, variable), white_box=False,
                        paths=paths, model=model if repinnable else None,
                        paths_variable=variable if repinnable else None,
                        member_fn=member_model_fn(model, variable))
    attacker.extra = {"members": int(len(paths)),
                      "member_source": ("the ensemble's members" if fixed is not None else
                                        "pinned draws" if model.is_stochastic else
                                        "the deterministic model itself")}
    return attacker


def threat_model_grid(names, multi_sample_paths=(1, 5, 10, 15), eot_samples=20,
                      surrogates=("plain",), arc_paths=10):
    """Expands threat-model names into `ThreatModel`s.

    One per S for multi_sample, one per surrogate spec for transfer.

    Returns:
        tuple of `ThreatModel`.
    """
    out = []
    for name in names:
        if name not in THREAT_MODELS:
            raise ValueError(
                f"Unknown threat model. Received: threat_model={name!r}. "
                f"Expected one of {THREAT_MODELS}."
            )
        if name == "multi_sample":
            out.extend(ThreatModel(name, num_paths=int(s)) for s in multi_sample_paths)
        elif name in _EOT_THREAT_MODELS:
            out.append(ThreatModel(name, eot_samples=int(eot_samples)))
        elif name == "transfer":
            out.extend(ThreatModel(name, eot_samples=int(eot_samples), surrogate=str(spec))
                       for spec in surrogates)
        elif name == "arc":
            out.append(ThreatModel(name, num_paths=int(arc_paths)))
        else:
            out.append(ThreatModel(name))
    return tuple(out)

