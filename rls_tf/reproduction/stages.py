"""A reproduction run's stages: what each computes, its completion record, the plan.

`Stage` (one train, evaluation or report step), `stage_spec` / `spec_hash`
(what a stage computes, as JSON and hashed), `record_state` / `is_done`
(whether its record in ``stages/`` is of its current spec), `fingerprint` (a
model's weights) and `plan` (every stage of a suite with its status,
`STATUSES`). Running the stages is `rls_tf.reproduction.runner`, which
re-exports these names.
"""

import contextlib
import hashlib
import json
import os
import zipfile

from rls_tf.reproduction.suites import load_suite

__all__ = ["STATUSES", "Stage", "fingerprint", "is_done", "plan", "record_state", "spec_hash",
           "stage_spec"]

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
