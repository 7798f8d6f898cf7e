"""The shard file: its format, the slice it covers and its per-example data.

`shard_range` (which examples a shard evaluates), `shard_file_name`,
`data_fingerprint`, the per-example data as JSON (bit strings, integers,
floats) and back, `write_shard` and `load_shards`. What a shard is and why the
merge is exact: `rls_tf.evaluation.shards`.
"""

import glob
import hashlib
import json
import os
import re

import numpy as np

from rls_tf.evaluation.formatting import clean_json
from rls_tf.validation import check_int

__all__ = ["FILE_PATTERN", "FORMAT", "LOCAL_DATA_KEYS", "LOCAL_MODEL_KEYS", "data_fingerprint",
           "load_shards", "shard_file_name", "shard_range", "write_shard"]

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
                "success_rate", "l2", "l1", "seconds", "examples", "ce_stage_reused", "queries",
                "interval")
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


# -- the files -------------------------------------------------------------------


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
