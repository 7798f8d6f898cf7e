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

Everything but ``runs/`` is small and can be committed, so a suite longer
than one machine's life runs in pieces (``stages=``): on a fresh machine a
finished evaluation stage stays done without its models, and a training
stage whose weights are gone is trained again only when an evaluation stage
still to run needs it. Shards computed with other weights (their
fingerprints differ) are moved aside into ``eval/<stage>/stale-<time>/``
and redone, so one stage's numbers always come from one set of models.

Example:

>>> reproduce("smoke", "results/repro_smoke", data_dir="../shared/data")  # doctest: +SKIP
"""

import contextlib
import datetime
import hashlib
import json
import os
import time
import zipfile

from rls_tf.reproduction.suites import load_suite

__all__ = ["STATUSES", "Stage", "fingerprint", "plan", "reproduce"]

# A stage's state in `plan`: finished; to run; finished once, but its weights
# are not on this machine and a pending evaluation needs them; not selected.
STATUSES = ("done", "todo", "redo", "skip")


class Stage:
    """One step of a run: ``kind`` "train", "evaluate" or "report"."""

    def __init__(self, kind, name, spec, estimate_s):
        self.kind, self.name, self.spec, self.estimate_s = kind, name, spec, float(estimate_s)

    @property
    def key(self):
        return f"{self.kind}-{self.name}"

    def __repr__(self):
        return f"Stage({self.kind}, {self.name})"


def _record_path(output_dir, stage):
    return os.path.join(output_dir, "stages", f"{stage.key}.json")


def is_done(output_dir, stage):
    """Whether `stage` has its completion record in `output_dir`."""
    return os.path.isfile(_record_path(output_dir, stage))


def _model_path(output_dir, name):
    return os.path.join(output_dir, "runs", name, "model.keras")


def fingerprint(path):
    """The first 16 hex digits of the SHA-256 of a model's weights (None if missing).

    For a ``.keras`` file, of its ``model.weights.h5`` member only: the
    archive's ``metadata.json`` holds the save date and its ``config.json``
    object ids, so two saves of the same weights differ as files. Seeded
    training on one CPU repeats bit for bit; on another machine with the
    same CPU model plain retrained to the same fingerprint but RLS did not
    (the same test accuracy, other low-order bits), and on another CPU
    model (Intel Xeon vs AMD EPYC) neither did (plain: other weights, 98.82%
    vs 99.02% test accuracy), so a retrained run may get a new fingerprint,
    and then its stage's shards are redone, never mixed.
    """
    if not os.path.isfile(path):
        return None
    with contextlib.ExitStack() as stack:
        f = stack.enter_context(open(path, "rb"))
        if zipfile.is_zipfile(f):
            archive = stack.enter_context(zipfile.ZipFile(f))
            if "model.weights.h5" in archive.namelist():
                f = stack.enter_context(archive.open("model.weights.h5"))
        f.seek(0)
        digest = hashlib.sha256()
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _needed_runs(suite, evaluations):
    """Names of the train stages `evaluations` need, their bases and warm starts too."""
    by_name = {s.name: s for s in suite.train}
    todo = [ref for stage in evaluations for ref in stage.models.values()]
    needed = set()
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo.extend(by_name[name].needs)
    return needed


def plan(suite, output_dir, stages=None):
    """The stages of `suite`, in order, each with its status (`STATUSES`).

    Args:
        suite: a suite name, JSON path or `Suite`.
        output_dir: the run's directory.
        stages: names of the evaluation stages to run (None: all); training
            runs only for what they need.

    Returns:
        list of ``(Stage, status)``.

    Raises:
        ValueError: `stages` names no evaluation stage of the suite.
    """
    suite = load_suite(suite)
    names = [s.name for s in suite.evaluate]
    if stages is not None:
        stages = [stages] if isinstance(stages, str) else list(stages)
        unknown = [name for name in stages if name not in names]
        if unknown or not stages:
            raise ValueError(f"stages must name evaluation stages of suite {suite.name!r}. "
                             f"Received: stages={stages!r}. Expected some of {names}.")
    selected = [s for s in suite.evaluate if stages is None or s.name in stages]
    evaluations = [(Stage("evaluate", s.name, s, s.estimate_s), s) for s in suite.evaluate]
    pending = [s for stage, s in evaluations
               if s in selected and not is_done(output_dir, stage)]
    needed = _needed_runs(suite, pending)
    out = []
    for spec in suite.train:
        stage = Stage("train", spec.name, spec, spec.estimate_s)
        if not is_done(output_dir, stage):
            status = "todo" if stages is None or spec.name in needed else "skip"
        elif spec.name in needed and not os.path.isfile(_model_path(output_dir, spec.name)):
            status = "redo"
        else:
            status = "done"
        out.append((stage, status))
    for stage, spec in evaluations:
        status = "done" if is_done(output_dir, stage) else (
            "todo" if spec in selected else "skip")
        out.append((stage, status))
    out.append((Stage("report", suite.name, suite, 5), "todo"))
    return out


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


def _eval_stage(stage, suite, output_dir, data_dir, log):
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
        return
    for index in range(spec.num_shards):
        name = shards.shard_file_name(index, spec.num_shards)
        if os.path.isfile(os.path.join(out, name)):
            if log:
                log(f"  shard {index + 1}/{spec.num_shards}: done, kept ({name})")
            continue
        if log:
            log(f"  shard {index + 1}/{spec.num_shards}")
        api.evaluate_dirs(dirs, num_shards=spec.num_shards, shard_index=index, **kwargs)
    api.merge_dir(out, log=log)


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
    pending = [stage for stage, status in steps if status in ("todo", "redo")]
    log = log or (lambda *_: None)
    counts = {status: sum(1 for _, s in steps if s == status) for status in STATUSES}
    log(f"suite {suite.name}: {len(steps)} stages, {counts['done']} done, "
        f"{len(pending)} to run" + (f", {counts['skip']} not selected" if counts["skip"] else "")
        + f", estimated {_fmt_time(sum(s.estimate_s for s in pending))}")
    for stage, status in steps:
        note = {"redo": "  (weights not on this machine; needed again)",
                "skip": "  (not selected)"}.get(status, "")
        log(f"  {status}  {stage.kind:<8} {stage.name}" + note
            + (f"  (~{_fmt_time(stage.estimate_s)})" if stage in pending else ""))
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
            _eval_stage(stage, suite, output_dir, data_dir, log)
        else:
            path = report.write_report(suite, output_dir)
        seconds = time.time() - start
        if stage.kind != "report":  # the report is rewritten at every run
            os.makedirs(os.path.dirname(_record_path(output_dir, stage)), exist_ok=True)
            with open(_record_path(output_dir, stage), "w", encoding="utf-8") as f:
                json.dump({"stage": stage.key, "seconds": seconds,
                           "estimate_s": stage.estimate_s,
                           "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                           **record}, f, indent=1)
        log(f"[{number}/{len(steps)}] {stage.kind} {stage.name}: {_fmt_time(seconds)}")
        ran += 1
    return path
