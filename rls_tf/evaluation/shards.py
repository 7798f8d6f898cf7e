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

This module owns `run_shard`; the file format, slicing and per-example data are
in `rls_tf.evaluation.shard_files`, the checks and the merge in
`rls_tf.evaluation.shard_merge` (both re-exported here).
"""

import os

import numpy as np

from rls_tf.evaluation.record_checkpoint import RecordCheckpoint, partial_file_name
from rls_tf.evaluation.records import model_fingerprint
from rls_tf.evaluation import runner
# The shard file and the merge live in two modules of their own; their public names
# (and the constants combine reads) are re-exported here, their former home.
from rls_tf.evaluation.shard_files import (FILE_PATTERN, FORMAT, LOCAL_DATA_KEYS,
                                           LOCAL_MODEL_KEYS, _RECORD_SECTIONS,
                                           _encode_examples, data_fingerprint, load_shards,
                                           shard_file_name, shard_range, write_shard)
from rls_tf.evaluation.shard_merge import (check_shards, comparable_data, first_difference,
                                           lookup_path, merge_directory, merge_shards,
                                           short_json)

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


# The config entries that say which records a shard runs, not what a record is
# (a record is keyed by threat model, attack, parameter and model, and seeded by
# them): a resumed shard keeps its records when only these changed.
_RUN_LIST = (("config", "attacks"), ("config", "threat_model_attacks"))


def run_shard(models, x, y, config, num_shards, shard_index, log=print, surrogate_models=None,
              checkpoint_dir=None):
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
        checkpoint_dir: where the shard keeps its finished records
            (`rls_tf.evaluation.record_checkpoint`), so that the same call
            after an interruption resumes; None: nothing is kept.

    Returns:
        The results dict of `runner.run_evaluation` on the shard's examples,
        with ``config.num_examples`` the whole evaluation's, a ``shard``
        entry (index, count, start, stop), fingerprints of the data and the
        models, and every record's per-example data (``examples``, JSON-able).
        Add ``data`` and model directories as needed and write it with
        `write_shard`.
    """
    start, stop = shard_range(len(x), config.batch_size, num_shards, shard_index)
    fingerprint = data_fingerprint(np.clip(np.asarray(x, np.float32), -1, 1), y)
    weights = {key: model_fingerprint(model) for key, model in models.items()}
    checkpoint = None
    if checkpoint_dir is not None:
        context = {"config": config.to_json(), "data_fingerprint": fingerprint,
                   "shard": [int(shard_index), int(num_shards), int(start), int(stop)],
                   "models": weights,
                   "surrogates": {k: model_fingerprint(m)
                                  for k, m in (surrogate_models or {}).items()}}
        checkpoint = RecordCheckpoint(
            os.path.join(checkpoint_dir, partial_file_name(shard_index, num_shards)), context,
            log=log, run_list=_RUN_LIST)
    results = runner.run_evaluation(models, x[start:stop], y[start:stop], config, log=log,
                                    example_offset=start, keep_examples=True,
                                    surrogate_models=surrogate_models, checkpoint=checkpoint)
    results["config"]["num_examples"] = int(len(x))
    results["format"] = FORMAT
    results["shard"] = {"index": int(shard_index), "count": int(num_shards),
                        "start": int(start), "stop": int(stop)}
    results["data_fingerprint"] = fingerprint
    for key in models:
        results["models"][key]["fingerprint"] = weights[key]
    results["examples"] = {"clean": {key: _encode_examples(value)
                                     for key, value in results["examples"]["clean"].items()}}
    for section in _RECORD_SECTIONS:
        for record in results.get(section, []):
            record["examples"] = _encode_examples(record["examples"])
    return results
