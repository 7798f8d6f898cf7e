"""The attacker's views of a randomised classifier: ``model_fn``s and `Attacker`.

The building blocks of the threat models (`rls_tf.evaluation.threat_models`,
which says which view each threat model gets): the white-box ``model_fn``,
S pinned draws, E fresh (EOT) draws, the unaveraged members, a surrogate
ensemble; the `Attacker` that carries a ``model_fn`` with its draws; and the
defender's outputs. Everything speaks only
`rls_tf.interface.StochasticClassifier`.

Model outputs are probabilities (the networks end in a softmax); attacks
need logits, so every ``model_fn`` returns ``log(p + TINY)``: valid logits
(their softmax is p up to TINY) with finite gradients where p underflows.
"""

import dataclasses
from typing import Any, Optional

import numpy as np
import tensorflow as tf

from rls_tf.randomness import SeedStream

__all__ = [
    "TINY",
    "Attacker",
    "EotDraws",
    "defender_outputs",
    "eot_model_fn",
    "eot_tied_fn",
    "log_probabilities",
    "make_arc_attacker",
    "make_sampled_attacker",
    "make_transfer_attacker",
    "member_model_fn",
    "members_model_fn",
    "pinned_model_fn",
    "plain_model_fn",
    "surrogate_model_fn",
]

TINY = 1e-12


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
    return model.defender_outputs(x, num_samples)


@dataclasses.dataclass
class Attacker:
    """What the attack gets: its ``model_fn`` and how it was made.

    Attributes:
        threat_model: the `rls_tf.evaluation.threat_models.ThreatModel`.
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

    threat_model: Any
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


def make_sampled_attacker(model, threat_model, seed=None):
    """The attacker of S pinned draws, or of E fresh draws when the threat model uses EOT.

    Args:
        model: a `StochasticClassifier` (deterministic ones included).
        threat_model: a `ThreatModel` (its ``uses_eot``, ``num_paths`` and
            ``eot_samples``).
        seed: seed of the pinned paths or of the first EOT draws (see
            `Attacker.reseed`).

    Returns:
        An `Attacker`.
    """
    if not model.is_stochastic and not (model.pinnable and not threat_model.uses_eot):
        # Deterministic: white box, unless the threat model pins sub-models
        # (paper, multi_sample) of an ensemble whose draws name its members.
        return Attacker(threat_model, plain_model_fn(model), white_box=True)
    if threat_model.uses_eot:
        draws = EotDraws(model, 0 if seed is None else seed)
        if not model.pinnable:
            # Draws cannot fix this model's randomness: the score-based
            # attacks compare their points under independent draws.
            return Attacker(
                threat_model, eot_model_fn(model, threat_model.eot_samples, draws),
                white_box=False, draws=draws,
                extra={"common_draws": "none: the model's randomness cannot be pinned, so "
                                       "score-based attacks compare points under "
                                       "independent draws"})
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
    """The surrogate attacker (``transfer``): crafts on `surrogates`, not on the defense.

    Args:
        surrogates: list of `StochasticClassifier` (the surrogate ensemble).
        threat_model: the `ThreatModel` (its ``eot_samples``).
        seed: seed of a stochastic surrogate's EOT draws.
        info: JSON-able description of the surrogates (names, directories,
            weight fingerprints), recorded with every result.
    """
    stochastic = any(s.is_stochastic for s in surrogates)
    draws = EotDraws(None, 0 if seed is None else seed) if stochastic else None
    attacker = Attacker(threat_model, surrogate_model_fn(surrogates, threat_model.eot_samples,
                                                         draws),
                        white_box=False, draws=draws)
    attacker.extra = {"surrogates": info or [], "crafted_on": "surrogate"}
    return attacker


def make_arc_attacker(model, threat_model, seed=None):
    """The members attacker (``arc``): P fixed members of `model`, ``[P, B, K]``.

    An ensemble whose draws name its members (``defender_draws``) gives all
    of them; a stochastic classifier P pinned draws (seeded, redrawn per run
    by `Attacker.repin`); a deterministic one itself (P = 1).
    """
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
