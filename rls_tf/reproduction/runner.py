"""Runs a reproduction suite stage by stage, resumably, then writes the report.

Layout of ``output_dir``:

* ``runs/<train stage>/``: the ``train.py`` run directories;
* ``eval/<evaluation stage>/``: ``attack_eval.py`` outputs (shard files,
  then the merged ``results.json``, ``results.md`` and plots);
* ``stages/<kind>-<name>.json``: a stage's completion record (seconds, when);
  a stage with a record is never redone;
* ``REPORT.md``, ``report.json``, ``*.png``: the report.

Killed at any point and rerun, `reproduce` goes on where it stopped: a
finished stage is skipped, an interrupted training resumes from its last
checkpoint (``train.py``'s own resume), a finished evaluation shard is kept.

Example:

>>> reproduce("smoke", "results/repro_smoke", data_dir="../shared/data")  # doctest: +SKIP
"""

import datetime
import json
import os
import time

from rls_tf.reproduction.suites import load_suite

__all__ = ["Stage", "plan", "reproduce"]


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


def plan(suite, output_dir):
    """The stages of `suite`, in order, each with ``done`` (bool).

    Returns:
        list of ``(Stage, done)``.
    """
    suite = load_suite(suite)
    stages = [Stage("train", s.name, s, s.estimate_s) for s in suite.train]
    stages += [Stage("evaluate", s.name, s, s.estimate_s) for s in suite.evaluate]
    stages.append(Stage("report", suite.name, suite, 5))
    return [(stage, is_done(output_dir, stage) and stage.kind != "report") for stage in stages]


def _fmt_time(seconds):
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def _train_stage(stage, output_dir, data_dir):
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


def _eval_stage(stage, suite, output_dir, data_dir, log):
    from rls_tf.evaluation import api  # pylint: disable=import-outside-toplevel
    from rls_tf.evaluation import shards  # pylint: disable=import-outside-toplevel

    spec = stage.spec
    out = os.path.join(output_dir, "eval", spec.name)
    dirs = {key: os.path.join(output_dir, "runs", ref) for key, ref in spec.models.items()}
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


def reproduce(suite, output_dir, data_dir=None, log=print, stop_after=None):
    """Runs every stage of `suite` that is not done yet, then the report.

    Args:
        suite: a suite name (`SUITES`), a suite JSON path or a `Suite`.
        output_dir: where runs, evaluations, records and the report go.
        data_dir: the datasets' files (``train.py``'s ``--data_dir``).
        log: prints one line (None: silent).
        stop_after: stop after this many stages have run (testing resume).

    Returns:
        The path of ``REPORT.md``, or None when stopped before the report.
    """
    from rls_tf.reproduction import report  # pylint: disable=import-outside-toplevel

    suite = load_suite(suite)
    steps = plan(suite, output_dir)
    pending = [stage for stage, done in steps if not done]
    log = log or (lambda *_: None)
    log(f"suite {suite.name}: {len(steps)} stages, {len(steps) - len(pending)} done, "
        f"{len(pending)} to run, estimated {_fmt_time(sum(s.estimate_s for s in pending))}")
    for stage, done in steps:
        log(f"  {'done' if done else 'todo'}  {stage.kind:<8} {stage.name}"
            + ("" if done else f"  (~{_fmt_time(stage.estimate_s)})"))
    ran = 0
    for number, (stage, done) in enumerate(steps, 1):
        if done:
            continue
        if stop_after is not None and ran >= stop_after:
            log(f"stopped after {ran} stages (stop_after={stop_after})")
            return None
        log(f"[{number}/{len(steps)}] {stage.kind} {stage.name} "
            f"(~{_fmt_time(stage.estimate_s)})")
        start = time.time()
        if stage.kind == "train":
            _train_stage(stage, output_dir, data_dir)
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
                           "finished": datetime.datetime.now(datetime.timezone.utc).isoformat()},
                          f, indent=1)
        log(f"[{number}/{len(steps)}] {stage.kind} {stage.name}: {_fmt_time(seconds)}")
        ran += 1
    return path
