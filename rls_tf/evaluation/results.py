"""The results document of an evaluation, typed: `EvaluationResults`.

``results.json`` and the shard files are one document: the configuration,
the models, the defender's clean numbers and interrater agreement, one
`RobustRecord` per model x threat model x attack setting, the convergence
sweeps, the timings and the masking checks, plus provenance (environment,
data, command, merge / combine / shard information). `EvaluationResults`
holds the typed sections and keeps every other key, in file order, so
that `from_json` then `to_json` gives back the document key for key (the
files of every earlier format included). `merge` (the shards of one
evaluation) and `combine` (evaluations of other models on one protocol)
return the same type.

Example:

>>> results = EvaluationResults.load("results/mnist")   # doctest: +SKIP
(Not run as a doctest: it needs an evaluation's results.)

>>> results.robust[0].accuracy["mean"], results.robust[0].threat_model  # doctest: +SKIP
>>> EvaluationResults.from_json(results.to_json()) == results  # doctest: +SKIP
True
"""

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional

from rls_tf.evaluation.records import FORMAT_VERSION
from rls_tf.evaluation.records import RobustRecord

__all__ = ["EvaluationResults"]

# The typed sections, by JSON key (attribute: ``checks`` for "masking_checks").
_RECORD_SECTIONS = ("robust", "convergence")
_SECTIONS = ("format_version", "config", "environment", "models", "clean", "interrater",
             "robust", "skipped", "timings", "convergence", "masking_checks")
# The order a new document is written in (what `runner.run_evaluation` makes).
_DEFAULT_ORDER = ("format_version", "config", "environment", "models", "clean", "interrater",
                  "robust", "skipped", "timings", "convergence")


def _attribute(key):
    return "checks" if key == "masking_checks" else key


@dataclasses.dataclass
class EvaluationResults:
    """An evaluation's results document.

    Attributes:
        config: the `EvalConfig` JSON (plus ``num_examples``).
        models: ``{key: description}`` of the evaluated models.
        clean: ``{key: {"accuracy", "accuracy_vs_samples"}}``.
        interrater: ``{key: interrater summary}``.
        robust: the `RobustRecord`s, in table order.
        skipped: ``[{"attack", "threat_model", ("model",) "reason"}]``.
        timings: seconds per part and ``"total"``.
        convergence: the convergence-sweep `RobustRecord`s, or None.
        checks: the masking checks (``results["masking_checks"]``), or None.
        format_version: `records.FORMAT_VERSION` of the writer (None: format 1).
        environment: library versions and device.
        extra: every other key (data, command, merged, combined, shard, ...),
            in file order.
        order: the keys in file order.
    """

    config: Dict[str, Any]
    models: Dict[str, Any]
    clean: Dict[str, Any]
    interrater: Dict[str, Any] = dataclasses.field(default_factory=dict)
    robust: List[RobustRecord] = dataclasses.field(default_factory=list)
    skipped: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    timings: Dict[str, float] = dataclasses.field(default_factory=dict)
    convergence: Optional[List[RobustRecord]] = None
    checks: Optional[Any] = None
    format_version: Optional[int] = FORMAT_VERSION
    environment: Optional[Dict[str, Any]] = None
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)
    order: tuple = ()

    @classmethod
    def from_json(cls, data):
        """Reads a results.json or shard document (any format)."""
        if not isinstance(data, dict):
            raise ValueError(f"`data` must be a results dict. Received: data={type(data)!r}")
        missing = [k for k in ("config", "models", "clean") if k not in data]
        if missing:
            raise ValueError(f"Not an evaluation's results: missing {', '.join(missing)}. "
                             f"Received: keys={list(data)!r}")
        fields = {"extra": {}, "order": tuple(data), "format_version": None}
        for key, value in data.items():
            if key in _RECORD_SECTIONS:
                fields[key] = [RobustRecord.from_json(r) for r in value or []]
            elif key in _SECTIONS:
                fields[_attribute(key)] = value
            else:
                fields["extra"][key] = value
        return cls(**fields)

    def to_json(self):
        """The document, key for key as read (new keys after: the default order)."""
        order = list(self.order) or [k for k in _DEFAULT_ORDER if self._has(k)]
        order += [k for k in _DEFAULT_ORDER if k not in order and self._has(k)]
        order += [k for k in self.extra if k not in order]
        if self.checks is not None and "masking_checks" not in order:
            order.append("masking_checks")
        out = {}
        for key in order:
            if key in _RECORD_SECTIONS:
                records = getattr(self, key)
                if records is not None:
                    out[key] = [r.to_json() for r in records]
            elif key in _SECTIONS:
                value = getattr(self, _attribute(key))
                if value is not None or key == "format_version" and key in self.order:
                    out[key] = value
            elif key in self.extra:
                out[key] = self.extra[key]
        return out

    def _has(self, key):
        return getattr(self, _attribute(key)) is not None

    @classmethod
    def load(cls, path):
        """Reads ``results.json`` (a file, or the directory holding it)."""
        if os.path.isdir(path):
            path = os.path.join(path, "results.json")
        with open(path, encoding="utf-8") as f:
            return cls.from_json(json.load(f))

    @classmethod
    def merge(cls, shards):
        """The results of a sharded evaluation from its shard payloads (exact merge).

        Args:
            shards: the shard documents (dicts as `shards.load_shards` reads
                them, or `EvaluationResults`).
        """
        from rls_tf.evaluation import shards as sl  # pylint: disable=import-outside-toplevel

        payloads = [s.to_json() if isinstance(s, cls) else s for s in shards]
        return cls.from_json(sl.merge_shards(payloads))

    @classmethod
    def combine(cls, parts):
        """The results of evaluations that differ only in their models, as one.

        Args:
            parts: two or more results (dicts as `combine.load_results`
                reads them, or `EvaluationResults`).
        """
        from rls_tf.evaluation import combine as cl  # pylint: disable=import-outside-toplevel

        docs = [p.to_json() if isinstance(p, cls) else p for p in parts]
        return cls.from_json(cl.combine_results(docs))

    def records(self, model=None, threat_model=None, attack=None):
        """The robust records of a model / threat-model label / attack (None: any)."""
        return [r for r in self.robust
                if (model is None or r.model == model)
                and (threat_model is None or r.threat_model == threat_model)
                and (attack is None or r.attack == attack)]
