"""Sharded evaluation: S processes each evaluate a slice, one merge makes the report.

``attack_eval.py --num_shards=S --shard_index=i`` evaluates shard i of the
first ``num_examples`` test images and writes ``shard-<i>-of-<S>.json``
(`write_shard`); ``attack_eval.py --merge=DIR`` reads the S files of a
directory (`load_shards`), refuses them unless they are the S shards of one
evaluation (`check_shards`) and writes the ``results.json``, ``results.md``
and ``robustness.png`` of that evaluation (`merge_shards`).

**Exactness.** The shards split the ``ceil(num_examples / batch_size)``
attack batches into S contiguous runs of whole batches (`shard_range`), so
every batch of a shard is a batch of the unsharded run; the runner seeds
everything from ``seed`` and the batch's *global* index
(`runner.run_evaluation`), so a shard crafts exactly the adversarial images
the unsharded run crafts for its examples. A shard file holds, for every
table entry, the per-example data it is computed from (which of the
defender's R x N-sample draws is right on each image, how many of the N
sampled models are, whether the attacker's model is right, the L-inf / L2 /
L1 sizes and success flags), and the merge recomputes every number from the
concatenated data with the functions the runner uses
(`runner.defender_summary`, `runner.record_summary`). kappa in particular
is computed from the concatenated per-example counts of correct sampled
models, its sufficient statistics, not averaged over shards. Merged numbers
therefore equal those of one run with the same seed, bit for bit, wherever
the run itself is deterministic: every threat model (``paper`` and
``multi_sample`` pin their paths; the EOT draws of ``eot`` and ``apgd_rand``
are seeded by the seed, the batch's global index and the number of the
call) on models with the default per-batch sampling. The defender's draws
of a model built with per-example sampling are fresh, unseeded TF draws;
their numbers are valid samples either way but differ between runs.

Timings are summed over the shards (device time, not wall time).
"""

import glob
import hashlib
import json
import os
import re

import numpy as np

from rls_tf.attacks.registry import REGISTRY
from rls_tf.evaluation import records
from rls_tf.evaluation.commands import Command
from rls_tf.evaluation.formatting import clean_json
from rls_tf.evaluation.records import model_fingerprint
from rls_tf.evaluation import runner
from rls_tf.validation import check_int

__all__ = [
    "FORMAT",
    "check_shards",
    "comparable_data",
    "data_fingerprint",
    "first_difference",
    "lookup_path",
    "load_shards",
    "merge_directory",
    "merge_shards",
    "model_fingerprint",
    "run_shard",
    "shard_file_name",
    "shard_range",
    "short_json",
    "write_shard",
]

FORMAT = "rls-tf/attack-eval-shard/1"
FILE_PATTERN = re.compile(r"^shard-(\d+)-of-(\d+)\.json$")

# Per-example fields stored as strings of 0/1 (one string per repeat for
# the defender's [R, B] arrays), integers, or floats.
_BIT_FIELDS = ("attacker_correct", "attacker_clean_correct", "success")
_FLOAT_FIELDS = ("linf", "l2", "l1", "queries")
# Record entries computed from the per-example data (or per-shard timings):
# everything else in a record must be identical in every shard.
_NUMBER_KEYS = ("accuracy", "accuracy_vs_samples", "interrater", "attacker_accuracy",
                "attacker_clean_accuracy", "linf_max", "num_examples", "attacked_examples",
                "success_rate", "l2", "l1", "seconds", "examples", "ce_stage_reused", "queries")
# Per-machine entries that may differ between shards of one evaluation.
LOCAL_MODEL_KEYS = ("dir", "train_config")
LOCAL_DATA_KEYS = ("data_dir",)


def shard_range(num_examples, batch_size, num_shards, shard_index):
    """The examples ``[start, stop)`` of one shard.

    The ``ceil(num_examples / batch_size)`` batches are split into
    `num_shards` contiguous runs of whole batches, as even as possible
    (shard i gets batches ``floor(i * nb / S)`` to ``floor((i + 1) * nb / S)``),
    so every shard is batch-aligned and the shards cover the examples in
    order, each once.

    Args:
        num_examples: examples of the whole evaluation, >= 1.
        batch_size: examples per attack batch, >= 1.
        num_shards: S >= 1, at most the number of batches.
        shard_index: i in ``[0, S)``.

    Returns:
        ``(start, stop)``: the shard's examples are ``x[start:stop]``.

    Raises:
        ValueError: bad arguments, or more shards than batches (a shard
            would be empty).
    """
    num_examples = check_int("num_examples", num_examples, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    num_shards = check_int("num_shards", num_shards, 1)
    if (isinstance(shard_index, bool) or not isinstance(shard_index, (int, np.integer))
            or not 0 <= shard_index < num_shards):
        raise ValueError(f"`shard_index` must be an int in [0, num_shards={num_shards}). "
                         f"Received: shard_index={shard_index!r}")
    num_batches = -(-num_examples // batch_size)
    if num_shards > num_batches:
        raise ValueError(
            f"num_shards={num_shards} is more than the {num_batches} batch(es) of "
            f"num_examples={num_examples} at batch_size={batch_size}: some shard would be "
            "empty. Use fewer shards or a smaller batch size."
        )
    first = shard_index * num_batches // num_shards
    last = (shard_index + 1) * num_batches // num_shards
    return first * batch_size, min(last * batch_size, num_examples)


# The results lists made of records with per-example data.
_RECORD_SECTIONS = ("robust", "convergence")


def shard_file_name(shard_index, num_shards):
    """``shard-<i>-of-<S>.json``."""
    return f"shard-{int(shard_index)}-of-{int(num_shards)}.json"


def data_fingerprint(x, y):
    """SHA-256 of the evaluated images and labels (as the runner sees them)."""
    digest = hashlib.sha256()
    x = np.ascontiguousarray(np.asarray(x, np.float32))
    y = np.ascontiguousarray(np.asarray(y, np.int64))
    digest.update(repr((x.shape, y.shape)).encode("utf-8"))
    digest.update(x.tobytes())
    digest.update(y.tobytes())
    return digest.hexdigest()


# -- per-example data <-> JSON -------------------------------------------------


def _bits(values):
    return "".join("1" if v else "0" for v in np.asarray(values, bool).reshape(-1))


def _unbits(text, field):
    if not isinstance(text, str) or set(text) - {"0", "1"}:
        raise ValueError(f"Shard field {field!r} must be a string of 0/1.")
    return np.frombuffer(text.encode("ascii"), np.uint8) == ord("1")


def _encode_examples(examples):
    out = {
        "correct": {n: [_bits(row) for row in rows] for n, rows in examples["correct"].items()},
        "members_correct": (None if examples.get("members_correct") is None
                            else np.asarray(examples["members_correct"]).astype(int).tolist()),
    }
    for field in _BIT_FIELDS:
        if field in examples:
            out[field] = _bits(examples[field])
    for field in _FLOAT_FIELDS:
        if field in examples:
            out[field] = [float(v) for v in np.asarray(examples[field], np.float64)]
    return out


def _decode_examples(data):
    out = {
        "correct": {n: np.stack([_unbits(row, "correct") for row in data["correct"][n]])
                    for n in sorted(data["correct"], key=int)},
        "members_correct": (None if data.get("members_correct") is None
                            else np.asarray(data["members_correct"], np.int64)),
    }
    for field in _BIT_FIELDS:
        if field in data:
            out[field] = _unbits(data[field], field)
    for field in _FLOAT_FIELDS:
        if field in data:
            out[field] = np.asarray(data[field], np.float64)
    return out


def _concat_examples(parts):
    first = parts[0]
    out = {
        "correct": {n: np.concatenate([p["correct"][n] for p in parts], axis=1)
                    for n in first["correct"]},
        "members_correct": (None if first["members_correct"] is None else
                            np.concatenate([p["members_correct"] for p in parts], axis=1)),
    }
    for field in _BIT_FIELDS + _FLOAT_FIELDS:
        if field in first:
            out[field] = np.concatenate([p[field] for p in parts])
    return out


# -- one shard -------------------------------------------------------------------


def run_shard(models, x, y, config, num_shards, shard_index, log=print, surrogate_models=None):
    """Evaluates one shard of ``(x, y)``; returns the shard's payload.

    Args:
        models: ``{key: RLSModel}``, as for `runner.run_evaluation`.
        x: float32 images ``[B, H, W, C]`` in [-1, 1]: ALL the examples of
            the evaluation (the first ``num_examples``), not the shard's.
        y: int labels ``[B]``.
        config: a `runner.EvalConfig`.
        num_shards: S.
        shard_index: i.
        log: function printing one line (None: silent).
        surrogate_models: the ``copy`` surrogates (see `runner.run_evaluation`).

    Returns:
        The results dict of `runner.run_evaluation` on the shard's examples,
        with ``config.num_examples`` the whole evaluation's, a ``shard``
        entry (index, count, start, stop), fingerprints of the data and the
        models, and every record's per-example data (``examples``, JSON-able).
        Add ``data`` and model directories as needed and write it with
        `write_shard`.
    """
    start, stop = shard_range(len(x), config.batch_size, num_shards, shard_index)
    results = runner.run_evaluation(models, x[start:stop], y[start:stop], config, log=log,
                                    example_offset=start, keep_examples=True,
                                    surrogate_models=surrogate_models)
    results["config"]["num_examples"] = int(len(x))
    results["format"] = FORMAT
    results["shard"] = {"index": int(shard_index), "count": int(num_shards),
                        "start": int(start), "stop": int(stop)}
    results["data_fingerprint"] = data_fingerprint(np.clip(np.asarray(x, np.float32), -1, 1), y)
    for key, model in models.items():
        results["models"][key]["fingerprint"] = model_fingerprint(model)
    results["examples"] = {"clean": {key: _encode_examples(value)
                                     for key, value in results["examples"]["clean"].items()}}
    for section in _RECORD_SECTIONS:
        for record in results.get(section, []):
            record["examples"] = _encode_examples(record["examples"])
    return results


def write_shard(payload, output_dir):
    """Writes a shard's payload to ``<output_dir>/shard-<i>-of-<S>.json`` atomically."""
    from rls_tf import callbacks  # pylint: disable=import-outside-toplevel
    path = os.path.join(output_dir, shard_file_name(payload["shard"]["index"],
                                                    payload["shard"]["count"]))
    # Not write_json_atomic: it sorts keys, and key order is table order here
    # (models, N values, timings).
    text = json.dumps(clean_json(payload), indent=1, allow_nan=False)
    callbacks.write_bytes_atomic(path, text.encode("utf-8"))
    return path


# -- merging -------------------------------------------------------------------------


def load_shards(directory):
    """Reads every ``shard-<i>-of-<S>.json`` of `directory`, in file-name order.

    Raises:
        FileNotFoundError: no such directory.
        ValueError: no shard file, or a file that is not a shard payload.
    """
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"No such directory. Received: --merge={directory}")
    paths = sorted(p for p in glob.glob(os.path.join(directory, "shard-*-of-*.json"))
                   if FILE_PATTERN.match(os.path.basename(p)))
    if not paths:
        raise ValueError(f"No shard-<i>-of-<S>.json files in {directory} (written by "
                         "attack_eval.py --num_shards=S --shard_index=i --output_dir=...).")
    payloads = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                payload = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"{path} is not an attack_eval.py shard file (format "
                             f"{FORMAT!r}). Received: format="
                             f"{payload.get('format') if isinstance(payload, dict) else None!r}")
        payload["_path"] = path
        payloads.append(payload)
    return payloads


def _signature(payload):
    """Everything that must be equal in all shards of one evaluation."""
    models = {key: {k: v for k, v in info.items() if k not in LOCAL_MODEL_KEYS}
              for key, info in payload["models"].items()}
    data = comparable_data(payload)
    entries = [{k: v for k, v in r.items() if k not in _NUMBER_KEYS}
               for section in _RECORD_SECTIONS for r in payload.get(section, [])]
    return {
        "num_shards": payload["shard"]["count"],
        "config": payload["config"],
        "data": data,
        "data_fingerprint": payload.get("data_fingerprint"),
        "models": models,
        "skipped": payload.get("skipped"),
        "records": entries,
    }


def comparable_data(payload):
    """A payload's ``data`` entry without its per-machine keys (`LOCAL_DATA_KEYS`)."""
    return {k: v for k, v in (payload.get("data") or {}).items() if k not in LOCAL_DATA_KEYS}


def first_difference(a, b, path=""):
    """The first key path where two JSON values differ, e.g. ``config.seed`` (None: equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a or key not in b:
                return f"{path}{key}"
            found = first_difference(a[key], b[key], f"{path}{key}.")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path.rstrip('.')} (length {len(a)} vs {len(b)})"
        for i, (u, v) in enumerate(zip(a, b)):
            found = first_difference(u, v, f"{path}{i}.")
            if found:
                return found
        return None
    return None if a == b else path.rstrip(".")


def lookup_path(value, path):
    """The value at a `first_difference` path (None where it is absent)."""
    for part in path.split(" ")[0].split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def short_json(value, limit=120):
    """`value` as JSON, cut to `limit` characters (for error messages)."""
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + "..."


def check_shards(payloads):
    """Checks that `payloads` are the S shards of one evaluation, once each.

    The shards must agree on everything but their index (and per-machine
    details: model directories, data directory, library versions, timings):
    configuration (attacks, threat models, preset, N, R, sample counts, batch
    size, seed, number of examples), number of shards, the evaluated data
    and models (by fingerprint) and the run list.

    Returns:
        The payloads sorted by shard index.

    Raises:
        ValueError: an empty list, mismatched configurations, a missing or
            duplicate shard, or a shard whose slice is not `shard_range`'s.
    """
    if not payloads:
        raise ValueError("No shards to merge. Received: 0 shard files")
    name = lambda p: p.get("_path") or f"shard {p['shard']['index']}"  # noqa: E731
    reference = _signature(payloads[0])
    for payload in payloads[1:]:
        other = _signature(payload)
        where = first_difference(reference, other)
        if where:
            raise ValueError(
                f"Shards of different evaluations: {name(payloads[0])} and {name(payload)} "
                f"differ in {where}. Received: {short_json(lookup_path(reference, where))} vs "
                f"{short_json(lookup_path(other, where))}. Only --shard_index may differ between "
                "the shards of one evaluation."
            )
    num_shards = reference["num_shards"]
    by_index = {}
    for payload in payloads:
        index = payload["shard"]["index"]
        if index in by_index:
            raise ValueError(f"Duplicate shard {index} of {num_shards}: {name(by_index[index])} "
                             f"and {name(payload)}.")
        by_index[index] = payload
    missing = [i for i in range(num_shards) if i not in by_index]
    if missing:
        raise ValueError(f"Missing shard(s) {','.join(map(str, missing))} of {num_shards}. "
                         f"Received: shard(s) {','.join(map(str, sorted(by_index)))}.")
    extra = sorted(i for i in by_index if not 0 <= i < num_shards)
    if extra:
        raise ValueError(f"Shard index out of range [0, {num_shards}). Received: "
                         f"{','.join(map(str, extra))}")
    config = reference["config"]
    for index, payload in by_index.items():
        expected = shard_range(config["num_examples"], config["batch_size"], num_shards, index)
        got = (payload["shard"]["start"], payload["shard"]["stop"])
        if got != expected:
            raise ValueError(f"{name(payload)} covers examples [{got[0]}, {got[1]}), shard "
                             f"{index} of {num_shards} is [{expected[0]}, {expected[1]}).")
    return [by_index[i] for i in range(num_shards)]


def _sum_timings(dicts):
    out = {}
    for timings in dicts:
        for part, seconds in timings.items():
            if part != "total":
                out[part] = out.get(part, 0.0) + (seconds or 0.0)
    out["total"] = sum((t.get("total") or 0.0) for t in dicts)
    return out


def merge_shards(payloads):
    """Merges the S shards of one evaluation into its results dict.

    Every number is recomputed from the shards' concatenated per-example
    data (`records.RobustRecord.from_examples`, as a single run), so the result
    equals that of one unsharded run with the same seed wherever that run is
    deterministic. Timings are summed. The result has the layout of an
    unsharded run's ``results.json`` (no per-example data) plus ``merged``:
    the number of shards and, per shard, its examples, command and total
    time (and its library versions where they differ from shard 0's).

    Args:
        payloads: the shards' payloads (`load_shards`), in any order.

    Returns:
        The results dict, for `report.write_reports`.
    """
    shards = check_shards(payloads)
    first = shards[0]
    config = first["config"]
    # Each model's defender has its own N (an ensemble's is its member count).
    eval_samples = {key: (info.get("defender") or {}).get("eval_samples", config["eval_samples"])
                    for key, info in first["models"].items()}
    results = {"format_version": records.FORMAT_VERSION}
    results.update({
        key: json.loads(json.dumps(first[key]))
        for key in ("config", "environment", "models", "data", "skipped") if key in first
    })
    for info in results["models"].values():
        info.pop("fingerprint", None)
    if "data" in results:
        results["data"]["num_examples"] = config["num_examples"]
    results["clean"], results["interrater"] = {}, {}
    for key in first["models"]:
        examples = _concat_examples([_decode_examples(s["examples"]["clean"][key])
                                     for s in shards])
        summary = records.DefenderSummary.from_examples(examples, eval_samples[key])
        results["clean"][key] = summary.clean_json()
        results["interrater"][key] = summary.interrater
    for section in _RECORD_SECTIONS:
        if section in first:
            results[section] = [_merge_record(record, [s[section][i] for s in shards],
                                              eval_samples)
                                for i, record in enumerate(first[section])]
    results["timings"] = _sum_timings([s.get("timings", {}) for s in shards])
    results["merged"] = {
        "num_shards": len(shards),
        "timings": "summed over the shards (device time, not wall time)",
        "shards": [],
    }
    for s in shards:
        entry = {"index": s["shard"]["index"], "start": s["shard"]["start"],
                 "stop": s["shard"]["stop"], "command": s.get("command"),
                 "seconds": (s.get("timings") or {}).get("total")}
        if s.get("environment") != first.get("environment"):
            entry["environment"] = s.get("environment")
        results["merged"]["shards"].append(entry)
    return results


def _merge_record(record, parts, eval_samples):
    """One record of the merged results from its parts in every shard."""
    examples = _concat_examples([_decode_examples(p["examples"]) for p in parts])
    seconds = {part: sum(p["seconds"][part] or 0.0 for p in parts)
               for part in record["seconds"]}
    eps = tuple(record[k] for k in records.EPS_KEYS) if "eps" in record else None
    spec = REGISTRY.get(record["attack"])
    merged = records.RobustRecord.from_examples(
        examples, eval_samples[record["model"]], {k: record[k] for k in records.IDENTITY_KEYS},
        seconds,
        min_norm=spec is not None and spec.min_norm,
        ce_stage_reused=any(p.get("ce_stage_reused") for p in parts), eps=eps,
        sweep={k: record[k] for k in records.SWEEP_KEYS} if "sweep" in record else None)
    return merged.to_json()


def merge_directory(directory, output_dir=None):
    """Merges the shard files of `directory` and writes the reports.

    Args:
        directory: where the ``shard-<i>-of-<S>.json`` files are.
        output_dir: where results.json, results.md and robustness.png go
            (default: `directory`).

    Returns:
        ``(results, paths)`` as `report.write_reports` returns the paths.
    """
    from rls_tf.evaluation import report  # pylint: disable=import-outside-toplevel

    results = merge_shards(load_shards(directory))
    command = results["merged"]["shards"][0]["command"]
    if command:
        # The unsharded command that computes the same numbers in one run.
        command = Command.parse(command).without("shard_index", "num_shards").to_text()
    results["merged"]["command"] = f"python attack_eval.py --merge={directory}"
    paths = report.write_reports(results, output_dir or directory, command=command)
    return results, paths
