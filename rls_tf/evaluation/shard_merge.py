"""Merging the shards of one evaluation: the checks and the recomputed numbers.

`check_shards` refuses files that are not the S shards of one evaluation
(`first_difference` names where two differ); `merge_shards` recomputes every
number from the concatenated per-example data; `merge_directory` reads a
directory's shard files and writes the reports. The file format is
`rls_tf.evaluation.shard_files`.
"""

import json

from rls_tf.attacks.registry import REGISTRY
from rls_tf.evaluation import records
from rls_tf.evaluation.commands import Command
from rls_tf.evaluation.shard_files import (LOCAL_DATA_KEYS, LOCAL_MODEL_KEYS, _NUMBER_KEYS,
                                           _RECORD_SECTIONS, _concat_examples,
                                           _decode_examples, load_shards, shard_range)

__all__ = ["check_shards", "comparable_data", "first_difference", "lookup_path",
           "merge_directory", "merge_shards", "short_json"]

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


def check_shards(payloads, allow_missing=False):
    """Checks that `payloads` are the S shards of one evaluation, once each.

    The shards must agree on everything but their index (and per-machine
    details: model directories, data directory, library versions, timings):
    configuration (attacks, threat models, preset, N, R, sample counts, batch
    size, seed, number of examples), number of shards, the evaluated data
    and models (by fingerprint) and the run list.

    Args:
        payloads: the shards' payloads (`load_shards`).
        allow_missing: accept a subset of the S shards (an evaluation still
            running: `merge_shards`'s partial merge).

    Returns:
        The payloads sorted by shard index.

    Raises:
        ValueError: an empty list, mismatched configurations, a missing
            (unless `allow_missing`) or duplicate shard, or a shard whose
            slice is not `shard_range`'s.
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
    if missing and not allow_missing:
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
    return [by_index[i] for i in range(num_shards) if i in by_index]


def _sum_timings(dicts):
    out = {}
    for timings in dicts:
        for part, seconds in timings.items():
            if part != "total":
                out[part] = out.get(part, 0.0) + (seconds or 0.0)
    out["total"] = sum((t.get("total") or 0.0) for t in dicts)
    return out


def merge_shards(payloads, allow_missing=False):
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
        allow_missing: merge the shards there are of an unfinished
            evaluation. Its numbers are those of the images the shards
            cover (``merged.num_examples``, and ``data.num_examples`` where
            the shards name their data); ``merged.missing`` lists the
            missing shards' indices and ``merged.planned_examples`` the
            evaluation's number of images, so nothing reads it as complete.

    Returns:
        The results dict, for `report.write_reports`.
    """
    shards = check_shards(payloads, allow_missing=allow_missing)
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
    covered = sum(s["shard"]["stop"] - s["shard"]["start"] for s in shards)
    if "data" in results:
        results["data"]["num_examples"] = covered
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
    probed = [s["indicators"] for s in shards if s.get("indicators")]
    if probed:  # run by shard 0 alone, on the first images of the evaluation
        results["indicators"] = json.loads(json.dumps(probed[0]))
    results["timings"] = _sum_timings([s.get("timings", {}) for s in shards])
    results["merged"] = {
        "num_shards": len(shards),
        "timings": "summed over the shards (device time, not wall time)",
        "shards": [],
    }
    present = {s["shard"]["index"] for s in shards}
    missing = [i for i in range(first["shard"]["count"]) if i not in present]
    if missing:
        results["merged"].update({"missing": missing, "of_shards": first["shard"]["count"],
                                  "num_examples": covered,
                                  "planned_examples": config["num_examples"]})
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


def merge_directory(directory, output_dir=None, allow_missing=False):
    """Merges the shard files of `directory` and writes the reports.

    Args:
        directory: where the ``shard-<i>-of-<S>.json`` files are.
        output_dir: where results.json, results.md and robustness.png go
            (default: `directory`).
        allow_missing: merge the shards there are (`merge_shards`); the
            reports say which are missing.

    Returns:
        ``(results, paths)`` as `report.write_reports` returns the paths.
    """
    from rls_tf.evaluation import report  # pylint: disable=import-outside-toplevel

    results = merge_shards(load_shards(directory), allow_missing=allow_missing)
    command = results["merged"]["shards"][0]["command"]
    if command:
        # The unsharded command that computes the same numbers in one run.
        command = Command.parse(command).without("shard_index", "num_shards").to_text()
    results["merged"]["command"] = f"python attack_eval.py --merge={directory}"
    paths = report.write_reports(results, output_dir or directory, command=command)
    return results, paths
