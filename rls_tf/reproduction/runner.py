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

__all__ = ["STATUSES", "Stage", "fingerprint", "plan", "record_state", "reproduce",
           "spec_hash", "stage_spec"]

# A stage's state in `plan`: finished; to run; finished once, but its weights
# are not on this machine and a pending evaluation needs them; finished as
# another version of the stage (its definition or its runs changed), to run
# again; not selected.
STATUSES = ("done", "todo", "redo", "changed", "skip")


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


def _read_record(output_dir, stage):
    path = _record_path(output_dir, stage)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _train_spec(by_name, spec):
    data = spec.to_json()
    data.pop("estimate_s", None)
    data["needs"] = {name: _train_spec(by_name, by_name[name]) for name in spec.needs}
    return data


def stage_spec(suite, stage):
    """What a train or evaluation stage computes, as JSON (its estimate aside).

    A training stage: its definition and those of the runs it warm-starts
    from or wraps. An evaluation stage: its definition, its dataset and the
    training specs of its models. Two stages with the same spec compute the
    same thing (up to the randomness of retraining, which the weights'
    fingerprints cover).
    """
    by_name = {s.name: s for s in suite.train}
    spec = stage.spec
    if stage.kind == "train":
        return {"kind": "train", **_train_spec(by_name, spec)}
    if stage.kind == "evaluate":
        data = spec.to_json()
        data.pop("estimate_s", None)
        data["runs"] = {key: _train_spec(by_name, by_name[ref])
                        for key, ref in spec.models.items()}
        data["dataset"] = suite.dataset_of(spec)
        return {"kind": "evaluate", **data}
    raise ValueError(f"Only train and evaluate stages have a spec. Received: {stage!r}")


def spec_hash(suite, stage):
    """The first 16 hex digits of the SHA-256 of `stage_spec` (canonical JSON)."""
    text = json.dumps(stage_spec(suite, stage), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def record_state(suite, output_dir, stage):
    """``(state, record)`` of a stage's completion record in `output_dir`.

    state: "none" (no record); "current" (the record's spec is the stage's
    `spec_hash`, or the record predates specs and the stage's revision is 0);
    "changed" (another spec, or a record without one for a stage of revision
    > 0). record: the record's JSON, or None.
    """
    record = _read_record(output_dir, stage)
    if record is None:
        return "none", None
    recorded = record.get("spec")
    if recorded is None:
        return ("current" if not stage.spec.revision else "changed"), record
    return ("current" if recorded == spec_hash(suite, stage) else "changed"), record


def is_done(output_dir, stage, suite=None):
    """Whether `stage` has a completion record in `output_dir` (of its current spec
    when `suite` is given)."""
    if suite is None:
        return os.path.isfile(_record_path(output_dir, stage))
    return record_state(suite, output_dir, stage)[0] == "current"


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
    states = {stage.key: record_state(suite, output_dir, stage)[0]
              for stage, _ in evaluations}
    pending = [s for stage, s in evaluations
               if s in selected and states[stage.key] != "current"]
    needed = _needed_runs(suite, pending)
    out = []
    for spec in suite.train:
        stage = Stage("train", spec.name, spec, spec.estimate_s)
        state = record_state(suite, output_dir, stage)[0]
        if state != "current":
            wanted = stages is None or spec.name in needed
            status = ("todo" if state == "none" else "changed") if wanted else "skip"
        elif spec.name in needed and not os.path.isfile(_model_path(output_dir, spec.name)):
            status = "redo"
        else:
            status = "done"
        out.append((stage, status))
    for stage, spec in evaluations:
        state = states[stage.key]
        if state == "current":
            status = "done"
        elif spec not in selected:
            status = "skip"
        else:
            status = "todo" if state == "none" else "changed"
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
            _eval_stage(stage, suite, output_dir, data_dir, log)
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
