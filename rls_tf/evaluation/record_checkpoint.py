"""A shard's finished records on disk, so that an interrupted shard resumes.

A shard of a long evaluation (a SAP model under Square and SPSA, a CIFAR-10
stage) can run for hours; killed before it writes ``shard-<i>-of-<S>.json``
it used to lose everything. `RecordCheckpoint` keeps every finished record
(with its per-example data) in ``<output_dir>/partial-shard-<i>-of-<S>.json``,
written atomically after each record; the same command run again loads the
file and skips the records it holds. `api.evaluate_dirs` deletes the file
once the shard file is written.

**Exactness.** Every random choice of a record is seeded by the seed, the
model's key, the attack run and the batch's global index, never by what ran
before it (`runner.run_evaluation`), so a record computed in an earlier
process is the record this process would compute: a resumed shard equals an
uninterrupted one, number for number, wherever the run is deterministic
(tested). The file is used only by a run with the same settings, images,
shard and weights (its ``context``); another one is moved aside to
``partial-shard-<i>-of-<S>.stale-<time>.json``, never deleted. Which
attacks run is not part of that comparison (``run_list``): a record is
keyed by its threat model, attack, parameter and model, so a run that drops
or adds an attack keeps the records it shares with the interrupted one.

Example:

>>> import tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "partial-shard-0-of-2.json")
>>> saved = RecordCheckpoint(path, {"seed": 0})
>>> saved.get(("paper", "pgd", "eps=0.3", "rls")) is None
True
>>> len(RecordCheckpoint(path, {"seed": 1}).records)   # other settings: starts afresh
0
"""

import datetime
import json
import os

from rls_tf.atomic import write_bytes_atomic
from rls_tf.evaluation.formatting import clean_json
from rls_tf.evaluation.records import RobustRecord
from rls_tf.evaluation.shard_files import _decode_examples, _encode_examples

__all__ = ["RecordCheckpoint", "discard", "partial_file_name"]

FORMAT = "rls-tf/attack-eval-partial-shard/1"


def partial_file_name(shard_index, num_shards):
    return f"partial-shard-{shard_index}-of-{num_shards}.json"


def discard(directory, shard_index, num_shards):
    """Deletes a shard's partial file, if any (its shard file now holds everything)."""
    path = os.path.join(directory, partial_file_name(shard_index, num_shards))
    if os.path.exists(path):
        os.remove(path)


def _without(context, paths):
    """`context` less the entries at `paths` (tuples of keys), for comparison."""
    context = json.loads(json.dumps(context))
    for path in paths:
        node = context
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return context


def _key_text(key):
    return json.dumps(clean_json(list(key)), sort_keys=True)


class RecordCheckpoint:
    """The finished records of one shard, kept in one JSON file.

    Args:
        path: the partial file.
        context: JSON-able facts the records depend on (settings, data and
            weight fingerprints, the shard's slice); a file written with
            another context is moved aside and the shard starts afresh.
        log: function printing one line (None: silent).
        run_list: paths (tuples of keys) of the context entries that say
            which records run rather than what a record is (e.g. the list of
            attacks): a file that differs from `context` only there is
            resumed, and its records outside the new run list are kept.
    """

    def __init__(self, path, context, log=None, run_list=()):
        self.path = path
        self.context = json.loads(json.dumps(clean_json(context), sort_keys=True))
        run_list = tuple(tuple(p) for p in run_list)
        self.records = {}
        log = log or (lambda *_: None)
        if not os.path.exists(path):
            return
        try:
            with open(path, encoding="utf-8") as f:
                payload = json.load(f)
        except (OSError, json.JSONDecodeError):
            payload = None
        if (isinstance(payload, dict) and payload.get("format") == FORMAT
                and isinstance(payload.get("context"), dict)
                and _without(payload["context"], run_list) == _without(self.context, run_list)):
            self.records = dict(payload.get("records", {}))
            log(f"resuming: {len(self.records)} finished record(s) kept in {path}")
            return
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
        stale = f"{path[:-len('.json')]}.stale-{stamp}.json"
        os.replace(path, stale)
        log(f"{path} was written by another evaluation (other settings, images or "
            f"weights): moved to {stale}; this shard starts afresh")

    def get(self, key):
        """The `RobustRecord` saved under `key` (with its per-example data), or None."""
        data = self.records.get(_key_text(key))
        if data is None:
            return None
        data = dict(data)
        data["examples"] = _decode_examples(data["examples"])
        return RobustRecord.from_json(data)

    def put(self, key, record):
        """Saves `record` (a `RobustRecord` with per-example data) under `key`."""
        data = record.to_json()
        data["examples"] = _encode_examples(record.examples)
        self.records[_key_text(key)] = clean_json(data)
        text = json.dumps({"format": FORMAT, "context": self.context, "records": self.records},
                          allow_nan=False)
        write_bytes_atomic(self.path, text.encode("utf-8"))

