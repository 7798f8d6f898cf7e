"""Runs a reproduction suite stage by stage, resumably, then writes the report.

Layout of ``output_dir``:

* ``runs/<train stage>/``: the ``train.py`` run directories;
* ``eval/<evaluation stage>/``: ``attack_eval.py`` outputs (shard files,
  then the merged ``results.json``, ``results.md`` and plots);
* ``stages/<kind>-<name>.json``: a stage's completion record (seconds, when;
  a training record also the weights' fingerprint and test accuracy);
* ``eval/<evaluation stage>/models.json``: the fingerprints of the weights
  its shards were computed with;
* ``REPORT.md``, ``report.json``, ``*.png``: the report.

Killed at any point and rerun, `reproduce` goes on where it stopped: a
finished stage is skipped, an interrupted training resumes from its last
checkpoint (``train.py``'s own resume), a finished evaluation shard is kept.

**What counts as finished.** A stage is done when its completion record
exists *and* records the stage's current spec (`spec_hash`: the stage as the
suite defines it, estimate aside, with the specs of the training runs it uses,
their warm starts and bases; `record_state`). A stage whose definition changed
since its record (the same name, another backbone, recipe, attack list, image
count, ...), or whose training runs changed, is ``changed``: it runs again,
and first its old outputs are moved aside (``runs/<name>.stale-<time>``, or
``eval/<name>/stale-<time>/``), so no shard, checkpoint or number of the old
version is resumed, merged or reported as the new one's; the old record goes to
``stages/superseded/`` (the new record names it). Records written before
records carried a spec have none: they count as current for a stage of
``revision`` 0 (and get the current spec written into them at the next run),
and as changed for a stage whose ``revision`` was raised because it replaced
such a stage under the same name (the cpu suite's CIFAR-10 stages).

Everything but ``runs/`` is small and can be committed, so a suite longer
than one machine's life runs in pieces (``stages=``): on a fresh machine a
finished evaluation stage stays done without its models, and a training
stage whose weights are gone is trained again only when an evaluation stage
still to run needs it. Shards computed with other weights (their
fingerprints differ) are moved aside into ``eval/<stage>/stale-<time>/``
and redone, so one stage's numbers always come from one set of models.

This module owns running the stages (`reproduce`: training, evaluation,
moving changed stages' outputs aside, the report); the stages, their records
and the plan are `rls_tf.reproduction.stages`.

Example:

(Not run as a doctest: it trains and evaluates a suite.)

>>> reproduce("smoke", "results/repro_smoke", data_dir="../shared/data")  # doctest: +SKIP
"""

import datetime
import json
import os
import time

# What a stage is and whether it is done live in a module of their own; their
# names are re-exported here, their former home.
from rls_tf.reproduction import claims
from rls_tf.reproduction.stages import (STATUSES, Stage, _model_path, _record_path,
                                        fingerprint, is_done, plan, record_state, spec_hash,
                                        stage_spec)
from rls_tf.reproduction.suites import load_suite

__all__ = ["STATUSES", "Stage", "fingerprint", "plan", "record_state", "reproduce",
           "spec_hash", "stage_spec"]


def _fmt_time(seconds):
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def _train_stage(stage, output_dir, data_dir):
    """Trains one stage; returns what its record keeps beside the time."""
    from rls_tf import training  # pylint: disable=import-outside-toplevel

    spec = stage.spec
    runs = os.path.join(output_dir, "runs")
    options = dict(spec.options)
    config = training.TrainConfig(
        dataset=spec.dataset, backbone=spec.backbone, defense=spec.defense,
        data_dir=data_dir, model_dir=os.path.join(runs, spec.name), verbose=0,
        base_model_dir=os.path.join(runs, spec.base) if spec.base else None,
        init_from=os.path.join(runs, spec.init_from) if spec.init_from else None,
        **options)
    training.train(config)
    record = {"fingerprint": fingerprint(_model_path(output_dir, spec.name))}
    metrics = os.path.join(runs, spec.name, "metrics.json")
    if os.path.isfile(metrics):
        with open(metrics, encoding="utf-8") as f:
            data = json.load(f)
        record.update({k: data[k] for k in ("test_accuracy", "test_examples") if k in data})
    return record


def _check_weights(out, dirs, log):
    """Moves aside shards computed with other weights; records the current ones."""
    current = {key: fingerprint(os.path.join(path, "model.keras"))
               for key, path in dirs.items()}
    path = os.path.join(out, "models.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            before = json.load(f)
        if before != current:
            stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
            stale = os.path.join(out, f"stale-{stamp}")
            os.makedirs(stale)
            # The stage has no record yet, so everything here is from the old weights.
            for name in os.listdir(out):
                if not name.startswith("stale-"):
                    os.replace(os.path.join(out, name), os.path.join(stale, name))
            changed = sorted(k for k in set(before) | set(current)
                             if before.get(k) != current.get(k))
            log(f"  the weights of {', '.join(changed)} changed since the kept shards were "
                f"computed: they are moved to {stale} and redone")
    os.makedirs(out, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(current, f, indent=1, sort_keys=True)


def _stamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")


def _move_aside(stage, output_dir, stamp):
    """Moves a changed stage's old outputs aside; returns where (or None)."""
    if stage.kind == "train":
        path = os.path.join(output_dir, "runs", stage.name)
        if not os.path.exists(path):
            return None
        stale = f"{path}.stale-{stamp}"
        os.replace(path, stale)
        return stale
    path = os.path.join(output_dir, "eval", stage.name)
    names = [n for n in os.listdir(path) if not n.startswith("stale-")] \
        if os.path.isdir(path) else []
    if not names:
        return None
    stale = os.path.join(path, f"stale-{stamp}")
    os.makedirs(stale)
    for name in names:
        os.replace(os.path.join(path, name), os.path.join(stale, name))
    return stale


def _supersede(stage, output_dir, log):
    """Moves a changed stage's outputs, then its record, aside.

    From then on the stage has no record: it is to do, and an interrupted run
    of its new version resumes (its checkpoints and shards are not moved again).
    The old record goes to ``stages/superseded/<key>-<time>.json``.
    """
    stamp = _stamp()
    stale = _move_aside(stage, output_dir, stamp)
    folder = os.path.join(output_dir, "stages", "superseded")
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, f"{stage.key}-{stamp}.json")
    os.replace(_record_path(output_dir, stage), target)
    log(f"  {stage.name} changed since its record: the record is moved to {target}"
        + (f", the old outputs to {stale}" if stale else ""))


def _superseded(output_dir, stage):
    """Paths (relative to `output_dir`) of the stage's superseded records."""
    folder = os.path.join(output_dir, "stages", "superseded")
    names = sorted(n for n in os.listdir(folder) if n.startswith(f"{stage.key}-")
                   and n.endswith(".json")) if os.path.isdir(folder) else []
    return [os.path.join("stages", "superseded", n) for n in names]


def _adopt_legacy_records(suite, output_dir, steps, log):
    """Writes the current spec into records that predate specs and count as current."""
    adopted = []
    for stage, _ in steps:
        if stage.kind == "report":
            continue
        state, record = record_state(suite, output_dir, stage)
        if state == "current" and "spec" not in record:
            record["spec"] = spec_hash(suite, stage)
            record["spec_adopted"] = datetime.datetime.now(
                datetime.timezone.utc).isoformat()
            with open(_record_path(output_dir, stage), "w", encoding="utf-8") as f:
                json.dump(record, f, indent=1)
            adopted.append(stage.key)
    if adopted:
        log(f"  records without a spec, taken as the current stages': {', '.join(adopted)}")


def _eval_stage(stage, suite, output_dir, data_dir, log):
    """Evaluates a stage's missing shards and merges them.

    Returns:
        True when the stage is merged; False when another run still holds
        some of its shards (`claims`): that run merges it.
    """
    from rls_tf.evaluation import api  # pylint: disable=import-outside-toplevel
    from rls_tf.evaluation import shards  # pylint: disable=import-outside-toplevel

    spec = stage.spec
    out = os.path.join(output_dir, "eval", spec.name)
    dirs = {key: os.path.join(output_dir, "runs", ref) for key, ref in spec.models.items()}
    _check_weights(out, dirs, log or (lambda *_: None))
    options = dict(spec.options)
    for key in ("surrogates", "sample_counts"):
        if key in options:
            options[key] = tuple(options[key])
    kwargs = dict(dataset=suite.dataset_of(spec), data_dir=data_dir,
                  attacks=tuple(spec.attacks), threat_models=tuple(spec.threat_models),
                  num_examples=spec.num_examples, preset_overrides=dict(spec.preset_overrides),
                  output_dir=out, log=log, command=f"python -m rls_tf.reproduce "
                                                   f"--suite={suite.name} (stage {spec.name})",
                  **options)
    if spec.num_shards == 1:
        api.evaluate_dirs(dirs, **kwargs)
        return True
    for index in range(spec.num_shards):
        name = shards.shard_file_name(index, spec.num_shards)
        if os.path.isfile(os.path.join(out, name)):
            if log:
                log(f"  {name}: done, kept")
            continue
        with claims.claim(out, name) as mine:
            if not mine:
                if log:
                    log(f"  {name}: another run is computing it")
                continue
            if log:
                log(f"  {name}: computing")
            api.evaluate_dirs(dirs, num_shards=spec.num_shards, shard_index=index, **kwargs)
    missing = [name for name in (shards.shard_file_name(i, spec.num_shards)
                                 for i in range(spec.num_shards))
               if not os.path.isfile(os.path.join(out, name))]
    if missing:  # held by another run, which merges the stage when it writes the last
        if log:
            log(f"  {', '.join(missing)}: another run's; {spec.name} is merged by the run "
                f"that finishes last")
        return False
    api.merge_dir(out, log=log)
    return True


def reproduce(suite, output_dir, data_dir=None, log=print, stop_after=None, stages=None):
    """Runs every stage of `suite` that is not done yet, then the report.

    Args:
        suite: a suite name (`SUITES`), a suite JSON path or a `Suite`.
        output_dir: where runs, evaluations, records and the report go.
        data_dir: the datasets' files (``train.py``'s ``--data_dir``).
        log: prints one line (None: silent).
        stop_after: stop after this many stages have run (testing resume).
        stages: names of the evaluation stages to run this time (None: all);
            only the training they need runs, and the report covers what is
            done.

    Returns:
        The path of ``REPORT.md``, or None when stopped before the report.
    """
    from rls_tf.reproduction import report  # pylint: disable=import-outside-toplevel

    suite = load_suite(suite)
    steps = plan(suite, output_dir, stages=stages)
    pending = [stage for stage, status in steps if status in ("todo", "redo", "changed")]
    log = log or (lambda *_: None)
    counts = {status: sum(1 for _, s in steps if s == status) for status in STATUSES}
    log(f"suite {suite.name}: {len(steps)} stages, {counts['done']} done, "
        f"{len(pending)} to run" + (f", {counts['skip']} not selected" if counts["skip"] else "")
        + f", estimated {_fmt_time(sum(s.estimate_s for s in pending))}")
    for stage, status in steps:
        note = {"redo": "  (weights not on this machine; needed again)",
                "changed": "  (its record is of another version of the stage)",
                "skip": "  (not selected)"}.get(status, "")
        log(f"  {status}  {stage.kind:<8} {stage.name}" + note
            + (f"  (~{_fmt_time(stage.estimate_s)})" if stage in pending else ""))
    _adopt_legacy_records(suite, output_dir, steps, log)
    ran = 0
    path = None
    for number, (stage, status) in enumerate(steps, 1):
        if status in ("done", "skip"):
            continue
        if stop_after is not None and ran >= stop_after:
            log(f"stopped after {ran} stages (stop_after={stop_after})")
            return None
        log(f"[{number}/{len(steps)}] {stage.kind} {stage.name} "
            f"(~{_fmt_time(stage.estimate_s)})")
        start = time.time()
        record = {}
        if status == "changed":
            _supersede(stage, output_dir, log)
        if stage.kind != "report" and _superseded(output_dir, stage):
            record["superseded"] = _superseded(output_dir, stage)
        if stage.kind == "train":
            if status == "redo":
                with open(_record_path(output_dir, stage), encoding="utf-8") as f:
                    record["previous"] = json.load(f)
            record.update(_train_stage(stage, output_dir, data_dir))
            before = record.get("previous", {}).get("fingerprint")
            if before is not None:
                log(f"  retrained {stage.name}: "
                    + ("the same weights as its earlier record" if before ==
                       record.get("fingerprint") else
                       f"other weights than its earlier record ({before} -> "
                       f"{record.get('fingerprint')})"))
        elif stage.kind == "evaluate":
            if not _eval_stage(stage, suite, output_dir, data_dir, log):
                continue  # its other shards are being computed by another run
        else:
            path = report.write_report(suite, output_dir)
        seconds = time.time() - start
        if stage.kind != "report":  # the report is rewritten at every run
            os.makedirs(os.path.dirname(_record_path(output_dir, stage)), exist_ok=True)
            with open(_record_path(output_dir, stage), "w", encoding="utf-8") as f:
                json.dump({"stage": stage.key, "spec": spec_hash(suite, stage),
                           "seconds": seconds, "estimate_s": stage.estimate_s,
                           "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                           **record}, f, indent=1)
        log(f"[{number}/{len(steps)}] {stage.kind} {stage.name}: {_fmt_time(seconds)}")
        ran += 1
    return path
