"""Typed results: the records `results.json` and the shard files are made of.

Every number of a record is a function of per-example data (which of the
defender's draws is right on each image, whether the attacker's own model
is, the perturbation sizes). `defender_summary` and `record_summary` compute
them; a single run (`runner`) and a shard merge (`shards`) both build their
records with `RobustRecord.from_examples`, so the two give the same numbers
by construction. `to_json`/`from_json` write and read the JSON layout of
``results.json`` (unchanged since format 1; `FORMAT_VERSION` says which).

Example:

(Not run as a doctest: it needs an evaluation's results.)

>>> record = RobustRecord.from_json(results["robust"][0])  # doctest: +SKIP
>>> record.accuracy["mean"], record.threat_model  # doctest: +SKIP
"""

import dataclasses
import hashlib
from typing import Any, Dict, Optional

import numpy as np

from rls_tf import metrics
from rls_tf.attacks import registry as attack_registry
from rls_tf.evaluation import interrater

__all__ = ["EPS_KEYS", "FORMAT_VERSION", "IDENTITY_KEYS", "SWEEP_KEYS", "DefenderSummary",
           "RobustRecord", "defender_summary", "model_fingerprint", "norm_summary",
           "perturbation_sizes", "record_summary"]

# 1: results before the stochastic-classifier interface (no version field);
# 2: the same fields plus ``format_version``;
# 3: clean entries and robust records add ``interval`` (the accuracy's 95%
#    confidence interval over the examples and the worst-of-R accuracy,
#    `rls_tf.metrics.AccuracyInterval`); older files read without it.
FORMAT_VERSION = 3

# What only minimum-norm attacks report.
_MIN_NORM_KEYS = ("attacked_examples", "success_rate", "l2", "l1")


def model_fingerprint(model):
    """SHA-256 of a classifier's weights (names, shapes and values)."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(np.asarray(weight.numpy()))
        # Keras variables have a path; the tf.Variables of a loaded SavedModel a name.
        name = getattr(weight, "path", None) or weight.name
        digest.update(f"{name}:{value.dtype}:{value.shape};".encode("utf-8"))
        digest.update(value.tobytes())
    return digest.hexdigest()


def _mean(values):
    values = np.asarray(values)
    return float(np.mean(values)) if values.size else float("nan")


def norm_summary(values):
    """``{"mean", "median"}`` of some perturbation sizes (None if there are none)."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return {"mean": None, "median": None}
    return {"mean": float(values.mean()), "median": float(np.median(values))}


def perturbation_sizes(x_adv, x):
    """Per-example ``(changed, linf, l2, l1)`` of ``x_adv - x`` (float64)."""
    diff = np.asarray(x_adv, np.float64) - np.asarray(x, np.float64)
    diff = diff.reshape(len(x), int(np.prod(diff.shape[1:])))
    changed = np.any(diff != 0, axis=1)
    if not diff.shape[1]:
        zeros = np.zeros(len(x))
        return changed, zeros, zeros, zeros
    return (changed, np.max(np.abs(diff), axis=1), np.sqrt(np.sum(diff ** 2, axis=1)),
            np.sum(np.abs(diff), axis=1))


def defender_summary(examples, eval_samples):
    """The defender's numbers from its per-example data (`Defender.evaluate`).

    Every number is a function of the per-example data of the whole example
    set, so evaluating shards of the examples and concatenating their data
    (`rls_tf.evaluation.shards`) gives exactly the numbers of one run.

    Args:
        examples: ``{"correct": {str(n): bool [R, B]}, "members_correct":
            int [R, B] or None}``.
        eval_samples: N.

    Returns:
        dict with ``accuracy``, ``accuracy_vs_samples``, ``interrater``
        (None without ``members_correct`` or without examples) and
        ``interval``: the N-sample defender's accuracy with its confidence
        interval over the examples and its worst-of-R accuracy
        (`rls_tf.metrics.AccuracyInterval` as JSON; None without examples).
    """
    accuracy = {}
    for n, correct in examples["correct"].items():
        correct = np.asarray(correct, bool)
        accuracy[str(n)] = [float(np.mean(row)) if row.size else float("nan") for row in correct]
    kappas = []
    members = examples.get("members_correct")
    if members is not None:
        for row in np.asarray(members, np.int64):
            if row.size:
                kappa = interrater.interrater_agreement_from_counts(row, eval_samples)
                kappas.append(None if np.isnan(kappa) else kappa)
    correct = np.asarray(examples["correct"][str(eval_samples)], bool)
    interval = (metrics.accuracy_interval(correct).to_json()
                if correct.ndim == 2 and correct.size else None)
    return {
        "accuracy": interrater.summarize(accuracy[str(eval_samples)]),
        "accuracy_vs_samples": {n: interrater.summarize(v) for n, v in accuracy.items()},
        "interrater": interrater.summarize(kappas) if kappas else None,
        "interval": interval,
    }


def record_summary(examples, attack, eval_samples, min_norm=None):
    """The numbers of one robust record from its per-example data.

    Args:
        examples: the defender's per-example data on the adversarial images
            (see `defender_summary`) plus ``attacker_correct`` and
            ``attacker_clean_correct`` (bool ``[B]``: the attacker's own model
            is right on the adversarial / clean image), ``linf`` (float
            ``[B]``) and, for the minimum-norm attacks, ``success`` (bool
            ``[B]``), ``l2`` and ``l1`` (float ``[B]``).
        attack: the attack name (its registry entry says if it is min-norm).
        eval_samples: N.
        min_norm: override of the registry's kind (None: look it up).

    Returns:
        The record's numbers (``accuracy`` ... ``num_examples``, and
        ``attacked_examples``, ``success_rate``, ``l2``, ``l1`` for the
        minimum-norm attacks).
    """
    if min_norm is None:
        spec = attack_registry.REGISTRY.get(attack)
        min_norm = spec is not None and spec.min_norm
    defender = defender_summary(examples, eval_samples)
    attacker_correct = np.asarray(examples["attacker_correct"], bool)
    linf = np.asarray(examples["linf"], np.float64)
    out = {
        "accuracy": defender["accuracy"],
        "accuracy_vs_samples": defender["accuracy_vs_samples"],
        "interrater": defender["interrater"],
        "interval": defender["interval"],
        "attacker_accuracy": _mean(attacker_correct),
        "attacker_clean_accuracy": _mean(np.asarray(examples["attacker_clean_correct"], bool)),
        # An attack run on a subset (Square, SPSA) has no examples in a shard
        # past the subset.
        "linf_max": float(linf.max()) if linf.size else 0.0,
        "num_examples": int(len(attacker_correct)),
    }
    if "queries" in examples:
        # Score-based attacks: model queries per image (one query = one
        # model_fn evaluation of the image, E draws for a stochastic model).
        queries = np.asarray(examples["queries"], np.float64)
        out["queries"] = ({"mean": float(queries.mean()), "median": float(np.median(queries)),
                           "max": float(queries.max()), "total": float(queries.sum())}
                          if queries.size else None)
    if min_norm:
        # Success: among the images the attacked model got right, those the
        # attack changed into ones it gets wrong (per the attacker's own
        # decision function; under EOT an E-draw estimate).
        attacked = np.asarray(examples["attacker_clean_correct"], bool)
        success = np.asarray(examples["success"], bool)
        out["attacked_examples"] = int(attacked.sum())
        out["success_rate"] = float(success.sum() / attacked.sum()) if attacked.any() else None
        out["l2"] = norm_summary(np.asarray(examples["l2"], np.float64)[success])
        out["l1"] = norm_summary(np.asarray(examples["l1"], np.float64)[success])
    return out


@dataclasses.dataclass
class DefenderSummary:
    """Clean accuracy of one model's defender and its interrater agreement."""

    accuracy: Dict[str, Any]
    accuracy_vs_samples: Dict[str, Any]
    interrater: Optional[Dict[str, Any]]
    interval: Optional[Dict[str, Any]] = None

    @classmethod
    def from_examples(cls, examples, eval_samples):
        return cls(**defender_summary(examples, eval_samples))

    def clean_json(self):
        """The ``results["clean"][model]`` entry."""
        out = {"accuracy": self.accuracy, "accuracy_vs_samples": self.accuracy_vs_samples}
        if self.interval is not None:
            out["interval"] = self.interval
        return out


# Identity fields of a robust record, in results.json order (after the numbers).
IDENTITY_KEYS = _IDENTITY = ("model", "threat_model", "threat_model_name", "attack", "param", "value",
             "settings", "attacker")
_NUMBERS = ("accuracy", "accuracy_vs_samples", "interrater", "attacker_accuracy",
            "attacker_clean_accuracy", "linf_max", "num_examples")
EPS_KEYS = _EPS = ("eps", "eps_model_units", "eps_unit_range")
# What a convergence-sweep record adds (its ``value`` is the swept value).
SWEEP_KEYS = ("sweep", "steps", "eot_samples")


@dataclasses.dataclass
class RobustRecord:
    """One robust-accuracy entry: a model x threat model x attack setting.

    Attributes mirror the JSON keys of ``results["robust"][i]``; ``examples``
    (per-example data) is kept only where asked (shards).
    """

    model: str
    threat_model: str
    threat_model_name: str
    attack: str
    param: str
    value: Optional[float]
    settings: Dict[str, Any]
    attacker: Dict[str, Any]
    accuracy: Dict[str, Any]
    accuracy_vs_samples: Dict[str, Any]
    interrater: Optional[Dict[str, Any]]
    attacker_accuracy: float
    attacker_clean_accuracy: float
    linf_max: float
    num_examples: int
    seconds: Dict[str, float]
    interval: Optional[Dict[str, Any]] = None
    attacked_examples: Optional[int] = None
    success_rate: Optional[float] = None
    l2: Optional[Dict[str, Any]] = None
    l1: Optional[Dict[str, Any]] = None
    ce_stage_reused: bool = False
    eps: Optional[float] = None
    eps_model_units: Optional[float] = None
    eps_unit_range: Optional[float] = None
    examples: Optional[Dict[str, Any]] = None
    min_norm: bool = False
    sweep: Optional[Dict[str, Any]] = None
    queries: Optional[Dict[str, Any]] = None

    @classmethod
    def from_examples(cls, examples, eval_samples, identity, seconds, min_norm,
                      ce_stage_reused=False, eps=None, keep_examples=False, sweep=None):
        """Builds a record from per-example data (single runs and merges).

        Args:
            examples: per-example data (see `record_summary`).
            eval_samples: N.
            identity: dict of the `_IDENTITY` fields.
            seconds: ``{"attack": s, "defender": s}``.
            min_norm: whether the attack is a minimum-norm one.
            ce_stage_reused: whether an APGD-CE stage was reused.
            eps: optional ``(eps, eps_model_units, eps_unit_range)``.
            keep_examples: keep ``examples`` in the record.
            sweep: ``{"sweep", "steps", "eot_samples"}`` of a
                convergence-sweep record.
        """
        numbers = record_summary(examples, identity["attack"], eval_samples, min_norm=min_norm)
        eps_fields = dict(zip(_EPS, eps)) if eps is not None else {}
        return cls(**identity, **numbers, seconds=dict(seconds), ce_stage_reused=ce_stage_reused,
                   examples=examples if keep_examples else None, min_norm=min_norm,
                   sweep=dict(sweep) if sweep else None, **eps_fields)

    def to_json(self):
        """The results.json entry (the layout of format 1, key for key)."""
        out = {key: getattr(self, key) for key in _NUMBERS}
        if self.interval is not None:  # format 3; absent from older files
            out["interval"] = self.interval
        out["seconds"] = dict(self.seconds)
        if self.min_norm:
            for key in _MIN_NORM_KEYS:
                out[key] = getattr(self, key)
        if self.ce_stage_reused:
            out["ce_stage_reused"] = True
        out.update({key: getattr(self, key) for key in _IDENTITY})
        if self.eps is not None:
            out.update({key: getattr(self, key) for key in _EPS})
        if self.sweep:
            out.update({key: self.sweep[key] for key in SWEEP_KEYS})
        if self.queries is not None:
            out["queries"] = self.queries
        if self.examples is not None:
            out["examples"] = self.examples
        return out

    @classmethod
    def from_json(cls, data):
        """Reads a results.json (or shard) entry."""
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in data.items() if k in known}
        fields["min_norm"] = "success_rate" in data
        fields["ce_stage_reused"] = bool(data.get("ce_stage_reused", False))
        if "sweep" in data:
            fields["sweep"] = {key: data[key] for key in SWEEP_KEYS}
        return cls(**fields)
