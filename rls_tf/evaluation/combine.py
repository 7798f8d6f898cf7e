"""Evaluations of different models on the same protocol, combined into one.

``attack_eval.py --combine=DIR_A,DIR_B --output_dir=DIR`` reads the
``results.json`` of two or more evaluations that differ only in their
models (same images, attacks, threat models, preset, N, R, sample counts,
batch size and seed) and writes the ``results.json``, ``results.md`` and
``robustness.png`` of the evaluation of all their models: one Table 3 with
every defense, the masking checks recomputed against the reference model.
This adds a defense to a finished comparison without rerunning the others
(the one-model run can itself be sharded and merged first).

**Exactness.** Every random choice of an evaluation is seeded by the seed,
the model's key, the attack run and the batch's global index
(`runner.run_evaluation`, `crafting.batch_seed`, the defender's
``derive_seed(seed, key)``), never by the other models of the run, so a
model's numbers do not depend on which models it was evaluated with: the
combination equals the run of all the models in one command, number for
number, wherever that run is deterministic (see `shards`), with the records
in that run's order. A model in several parts must have the same numbers in
each (clean, kappa, every record): that is checked, so a reference model
evaluated again beside a new defense (``plain``, the masking checks'
reference) is a live test of this independence, and a part evaluated on
other weights or other images is refused.

Timings are each part's; the total is the sum of the parts' totals (a model
shared by two parts was evaluated twice and counts twice).
"""

import json
import os

from rls_tf.evaluation import records
from rls_tf.evaluation.commands import Command
from rls_tf.evaluation.shards import FILE_PATTERN
from rls_tf.evaluation.shards import LOCAL_MODEL_KEYS
from rls_tf.evaluation.shards import comparable_data
from rls_tf.evaluation.shards import first_difference
from rls_tf.evaluation.shards import lookup_path
from rls_tf.evaluation.shards import short_json

__all__ = ["combine_directories", "combine_results", "load_results"]

_SECTIONS = ("robust", "convergence")
# Record entries that are measured time, not results.
_TIME_KEYS = ("seconds",)


def load_results(directory):
    """The ``results.json`` of an evaluation directory, as a dict.

    Raises:
        FileNotFoundError: no directory or no results.json in it.
        ValueError: a file that is not an evaluation's results.
    """
    path = os.path.join(directory, "results.json")
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"No such directory. Received: --combine entry {directory!r}")
    if not os.path.exists(path):
        shards = [n for n in os.listdir(directory) if FILE_PATTERN.match(n)]
        hint = (f"; it holds {len(shards)} shard file(s): merge them first with "
                f"python attack_eval.py --merge={directory}") if shards else ""
        raise FileNotFoundError(f"No results.json in {directory}{hint}.")
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    missing = ([k for k in ("config", "models", "clean", "robust") if k not in results]
               if isinstance(results, dict) else ["everything: not a JSON object"])
    if missing:
        raise ValueError(f"{path} is not the results.json of attack_eval.py (missing "
                         f"{', '.join(missing)}).")
    results["_path"] = directory
    return results


def _name(results, index):
    return results.get("_path") or f"part {index}"


def _numbers(record):
    return {k: v for k, v in record.items() if k not in _TIME_KEYS}


def _setting_key(record):
    # The sweep too: a steps sweep and a draws sweep can share a point's param.
    return (record["threat_model"], record["attack"], record["param"], record.get("sweep"))


def _check_protocol(parts):
    reference = parts[0]
    for i, part in enumerate(parts[1:], 1):
        if part.get("format_version") != reference.get("format_version"):
            raise ValueError(
                f"{_name(reference, 0)} and {_name(part, i)} were written by different "
                f"versions of attack_eval.py. Received: format_version="
                f"{reference.get('format_version')!r} vs {part.get('format_version')!r}")
        for field, a, b in (("config", reference["config"], part["config"]),
                            ("data", comparable_data(reference), comparable_data(part))):
            where = first_difference(a, b)
            if where:
                raise ValueError(
                    f"Only the models may differ between combined evaluations: "
                    f"{_name(reference, 0)} and {_name(part, i)} differ in {field}.{where}. "
                    f"Received: {short_json(lookup_path(a, where))} vs "
                    f"{short_json(lookup_path(b, where))}.")


def _model_view(results, key):
    """Everything a part says of one model except time and machine-local paths."""
    info = {k: v for k, v in results["models"][key].items()
            if k not in LOCAL_MODEL_KEYS + ("fingerprint",)}
    view = {"model": info, "clean": results["clean"].get(key),
            "interrater": (results.get("interrater") or {}).get(key)}
    for section in _SECTIONS:
        view[section] = [_numbers(r) for r in results.get(section) or [] if r["model"] == key]
    view["skipped"] = [s for s in results.get("skipped") or [] if s.get("model") == key]
    return view


def _check_shared(parts, owner):
    for i, part in enumerate(parts):
        for key in part["models"]:
            first = owner[key]
            if first == i:
                continue
            a, b = _model_view(parts[first], key), _model_view(part, key)
            fa = parts[first]["models"][key].get("fingerprint")
            fb = part["models"][key].get("fingerprint")
            if fa and fb and fa != fb:
                raise ValueError(
                    f"Model {key!r} of {_name(parts[first], first)} and of {_name(part, i)} "
                    f"has different weights. Received: fingerprint {fa} vs {fb}.")
            where = first_difference(a, b)
            if where:
                raise ValueError(
                    f"Model {key!r} is in {_name(parts[first], first)} and in "
                    f"{_name(part, i)} with different results at {where}. Received: "
                    f"{short_json(lookup_path(a, where))} vs "
                    f"{short_json(lookup_path(b, where))}. A model shared by combined "
                    "evaluations must be the same weights evaluated the same way; give "
                    "different models different names.")


def _insertion_order(sequences):
    """One order of the items of every sequence, each kept after its predecessor."""
    order = []
    for sequence in sequences:
        previous = -1
        for item in sequence:
            if item in order:
                previous = order.index(item)
            else:
                previous += 1
                order.insert(previous, item)
    return {item: rank for rank, item in enumerate(order)}


def _combined_timings(parts, owner, model_rank):
    """The owners' timing entries ``<part>/<model>`` in the run's order, and the total."""
    entries = {}
    for key, i in owner.items():
        for name, seconds in (parts[i].get("timings") or {}).items():
            if name != "total" and name.rsplit("/", 1)[-1] == key:
                entries[name] = seconds
    prefix = lambda name: name.rsplit("/", 1)[0]  # noqa: E731
    rank = _insertion_order([[prefix(n) for n in (p.get("timings") or {}) if n != "total"]
                             for p in parts])

    def sort_key(name):
        model = model_rank[name.rsplit("/", 1)[-1]]
        if name.startswith("convergence/"):  # swept model by model, after the rest
            return (1, model, rank[prefix(name)])
        return (0, rank[prefix(name)], model)

    timings = {name: entries[name] for name in sorted(entries, key=sort_key)}
    timings["total"] = sum((p.get("timings") or {}).get("total") or 0.0 for p in parts)
    return timings


def _combined_indicators(parts, owner):
    """The attack-failure indicators of every model, or None if no part ran them.

    Parts that ran them must have run them alike (images, eps, steps, draws);
    a model's entry for an indicator comes from the first part that has it
    (a part run by a later version may have more indicators: they are
    added). A deterministic model probed in several parts must get the same
    verdicts and numbers there for the indicators they share (its probes are
    seeded); a random one's probes draw its own fresh randomness, so they
    are not compared.
    """
    sections = [(i, part["indicators"]) for i, part in enumerate(parts)
                if part.get("indicators")]
    if not sections:
        return None
    settings = [{k: v for k, v in section.items() if k != "entries"} for _, section in sections]
    for (i, _), setting in zip(sections[1:], settings[1:]):
        if setting != settings[0]:
            raise ValueError(
                f"The attack-failure indicators of {_name(parts[sections[0][0]], sections[0][0])} "
                f"and {_name(parts[i], i)} ran with different settings. Received: "
                f"{short_json(settings[0])} vs {short_json(setting)}")
    entries = []
    for key in owner:
        found = [(i, {e["id"]: e for e in section["entries"] if e["model"] == key})
                 for i, section in sections]
        found = [(i, e) for i, e in found if e]
        stochastic = any((parts[i]["models"].get(key) or {}).get("stochastic", True)
                         for i, _ in found)
        kept = {}
        for i, by_id in found:
            for indicator_id, entry in by_id.items():
                first = kept.get(indicator_id)
                if first is None:
                    kept[indicator_id] = (i, entry)
                elif not stochastic and entry != first[1]:
                    raise ValueError(
                        f"Model {key!r} has different attack-failure indicators in "
                        f"{_name(parts[first[0]], first[0])} and {_name(parts[i], i)}: the "
                        "parts were not evaluated on the same weights, images or seed.")
        entries += [entry for _, entry in kept.values()]
    return {**settings[0], "entries": entries}


def combine_results(parts):
    """Combines evaluations that differ only in their models (module docstring).

    Args:
        parts: two or more results dicts (`load_results`, or what
            `runner.run_evaluation` / `shards.merge_shards` return).

    Returns:
        The results dict of the evaluation of every part's models, for
        `report.write_reports`, with ``combined``: each part's source,
        models, command and total time.

    Raises:
        ValueError: fewer than two parts, parts of different protocols, or a
            model in several parts with different weights or results.
    """
    parts = list(parts)
    if len(parts) < 2:
        raise ValueError(f"Combining needs at least two evaluations. Received: {len(parts)}")
    _check_protocol(parts)
    owner = {}
    for i, part in enumerate(parts):
        for key in part["models"]:
            owner.setdefault(key, i)
    _check_shared(parts, owner)
    model_rank = {key: rank for rank, key in enumerate(owner)}
    first = parts[0]
    results = {"format_version": first.get("format_version", records.FORMAT_VERSION)}
    for key in ("config", "environment", "data"):
        if key in first:
            results[key] = json.loads(json.dumps(first[key]))
    results["models"], results["clean"], results["interrater"] = {}, {}, {}
    for key, i in owner.items():
        results["models"][key] = json.loads(json.dumps(parts[i]["models"][key]))
        results["models"][key].pop("fingerprint", None)
        results["clean"][key] = parts[i]["clean"][key]
        results["interrater"][key] = (parts[i].get("interrater") or {}).get(key)

    for section in _SECTIONS:
        if not any(part.get(section) for part in parts):
            continue
        rank = _insertion_order([[_setting_key(r) for r in part.get(section) or []]
                                 for part in parts])
        chosen = [r for key, i in owner.items() for r in parts[i].get(section) or []
                  if r["model"] == key]
        if section == "convergence":  # the runner sweeps model by model
            sort_key = lambda r: (model_rank[r["model"]], rank[_setting_key(r)])  # noqa: E731
        else:  # setting by setting, every model at each
            sort_key = lambda r: (rank[_setting_key(r)], model_rank[r["model"]])  # noqa: E731
        results[section] = sorted(chosen, key=sort_key)

    indicators = _combined_indicators(parts, owner)
    if indicators is not None:
        results["indicators"] = indicators

    skipped = []
    for i, part in enumerate(parts):
        for entry in part.get("skipped") or []:
            if entry.get("model") is not None and owner[entry["model"]] != i:
                continue
            if entry not in skipped:
                skipped.append(entry)
    results["skipped"] = skipped

    results["timings"] = _combined_timings(parts, owner, model_rank)

    results["combined"] = {
        "num_parts": len(parts),
        "timings": "each part's; the total is the sum of the parts' totals",
        "parts": [],
    }
    for i, part in enumerate(parts):
        entry = {"source": part.get("_path"),
                 "models": list(part["models"]),
                 "contributed": [k for k, j in owner.items() if j == i],
                 "command": part.get("command"),
                 "seconds": (part.get("timings") or {}).get("total")}
        if part.get("merged"):
            entry["merged"] = {"num_shards": part["merged"].get("num_shards"),
                               "command": part["merged"].get("command")}
        if part.get("environment") != first.get("environment"):
            entry["environment"] = part.get("environment")
        results["combined"]["parts"].append(entry)
    return results


def one_run_command(results, output_dir):
    """The single attack_eval.py command computing the combined numbers, or None.

    The first part's command with every model in ``--model_dirs`` (as
    NAME=DIR, the directories each part recorded) and `output_dir`.
    """
    text = results["combined"]["parts"][0]["command"]
    dirs = {key: info.get("dir") for key, info in results["models"].items()}
    if not text or not all(dirs.values()):
        return None
    command = Command.parse(text)
    if not command.has("model_dirs"):
        return None
    return command.replace(model_dirs=",".join(f"{k}={d}" for k, d in dirs.items()),
                           output_dir=output_dir).to_text()


def combine_directories(directories, output_dir):
    """Combines the results.json of `directories` and writes the reports there.

    Args:
        directories: two or more evaluation directories (each with a
            results.json; a sharded one merged first).
        output_dir: where results.json, results.md and robustness.png go.

    Returns:
        ``(results, paths)`` as `report.write_reports` returns the paths.
    """
    from rls_tf.evaluation import report  # pylint: disable=import-outside-toplevel

    if not output_dir:
        raise ValueError("Combining needs --output_dir (the combined report's directory). "
                         f"Received: output_dir={output_dir!r}")
    results = combine_results([load_results(d) for d in directories])
    results["combined"]["command"] = (f"python attack_eval.py --combine={','.join(directories)} "
                                      f"--output_dir={output_dir}")
    command = one_run_command(results, output_dir)
    paths = report.write_reports(results, output_dir, command=command)
    return results, paths
