"""Rotated, resumable checkpoints of a training run (``checkpoints/``).

Owns the files of a run's ``checkpoints/`` directory: ``latest.keras`` (the
last complete epoch), ``previous.keras`` (the one before) and
``latest_state.json`` (which epoch each holds, with the history so far), how
they are written (`AtomicCheckpoint`, a Keras callback, through
`rls_tf.atomic`), and how a rerun finds the newest usable one
(`find_checkpoints`, `restore_checkpoint`), falling back to the previous
epoch when the latest file is damaged.

Example:

(Not run as a doctest: it needs a run's checkpoints.)

>>> restored = restore_checkpoint("runs/mnist/checkpoints")   # doctest: +SKIP
>>> # None (nothing to resume) or (model, Checkpoint)
"""

import dataclasses
import hashlib
import json
import os
import sys
import zipfile
from typing import Optional

import keras

from rls_tf.atomic import _fsync_directory
from rls_tf.atomic import _TMP_PREFIX
from rls_tf.atomic import _write_temp
from rls_tf.atomic import write_json_atomic
from rls_tf.validation import check_int

__all__ = ["AtomicCheckpoint", "Checkpoint", "CheckpointError", "find_checkpoints",
           "keras_file_problem", "latest_checkpoint", "restore_checkpoint"]

CHECKPOINT_NAME = "latest.keras"
PREVIOUS_NAME = "previous.keras"
STATE_NAME = "latest_state.json"


class CheckpointError(ValueError):
    """A checkpoint directory holds checkpoints, but none that can be resumed.

    Raised instead of starting over, which would overwrite the user's run.
    The message names the damaged files and how to proceed.
    """


# -- checking .keras files ------------------------------------------------------


def keras_file_problem(path):
    """What is wrong with a ``.keras`` file, or None when it looks complete.

    A cheap check (the zip's central directory, no decompression): it catches
    missing, empty, truncated and non-zip files, which Keras itself reports as
    "File not found ... Please ensure the file is an accessible `.keras` zip
    file" although the file exists.

    Args:
        path: the ``.keras`` file.

    Returns:
        None, or a short reason (``"missing"``, ``"not a complete .keras zip
        file (BadZipFile: ...), 1234 bytes"``, ...).
    """
    if not os.path.isfile(path):
        return "missing"
    size = os.path.getsize(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        return f"not a complete .keras zip file ({type(e).__name__}: {e}), {size} bytes"
    if "config.json" not in names:
        return f"a zip file without the config.json of a .keras model, {size} bytes"
    return None


def _fingerprint(path):
    """A content id of a .keras zip (its members' names, CRCs and sizes), or None.

    Survives copies (unlike inode or mtime) and costs one read of the
    central directory.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = sorted((i.filename, i.CRC, i.file_size) for i in archive.infolist())
    except (zipfile.BadZipFile, OSError, EOFError):
        return None
    return hashlib.sha256(json.dumps(members).encode("utf-8")).hexdigest()[:32]


# -- finding and restoring checkpoints -----------------------------------------


@dataclasses.dataclass
class Checkpoint:
    """One complete epoch's checkpoint, as `latest_state.json` records it.

    Attributes:
        path: the ``.keras`` file holding it (found by content, so the name
            may differ from ``state["checkpoint"]`` after a crash between
            the rotation and the state update).
        state: ``{"epoch", "checkpoint", "history", "fingerprint"}``.
        problem: None when the file looks usable, else why not.
    """

    path: Optional[str]
    state: dict
    problem: Optional[str] = None

    @property
    def epoch(self):
        return self.state["epoch"]


def _read_state(directory):
    state_path = os.path.join(directory, STATE_NAME)
    try:
        with open(state_path) as f:
            state = json.load(f)
        entries = [state]
        if state.get("previous"):
            entries.append(state["previous"])
        for entry in entries:
            check_int("epoch", entry["epoch"], minimum=1)
            if not isinstance(entry["checkpoint"], str) or not isinstance(entry["history"], dict):
                raise ValueError("bad checkpoint or history entry")
    except (OSError, ValueError, KeyError, TypeError) as e:
        files = [n for n in (CHECKPOINT_NAME, PREVIOUS_NAME)
                 if os.path.exists(os.path.join(directory, n))]
        raise CheckpointError(
            f"Unreadable checkpoint state: Received: {state_path} ({type(e).__name__}: {e}); "
            f"without it the epochs of {files or 'the checkpoints'} are unknown. Restore it "
            f"from a backup, or delete {directory} to start the run over."
        ) from None
    return entries


def _locate(directory, entry):
    """The `Checkpoint` of a state entry: its file, found by content, and any problem."""
    recorded = os.path.join(directory, os.path.basename(entry["checkpoint"]))
    expected = entry.get("fingerprint")
    if expected is None:  # a state written before fingerprints
        return Checkpoint(recorded, entry, keras_file_problem(recorded))
    others = [os.path.join(directory, n) for n in (CHECKPOINT_NAME, PREVIOUS_NAME)]
    for path in [recorded] + [p for p in others if p != recorded]:
        if os.path.isfile(path) and _fingerprint(path) == expected:
            return Checkpoint(path, entry, keras_file_problem(path))
    problem = keras_file_problem(recorded)
    if problem is None:
        problem = "replaced by another file: it does not hold this epoch's checkpoint"
    return Checkpoint(recorded, entry, problem)


def find_checkpoints(directory):
    """The checkpoints `latest_state.json` records, newest first, with their problems.

    Args:
        directory: the checkpoint directory written by `AtomicCheckpoint`.

    Returns:
        A list of `Checkpoint` (the latest epoch, then the previous one), or
        an empty list when the directory holds no checkpoint at all.

    Raises:
        CheckpointError: the state file is unreadable or missing beside
            checkpoint files, or no checkpoint it records is usable (missing,
            truncated or damaged files).
    """
    if not os.path.exists(os.path.join(directory, STATE_NAME)):
        files = [os.path.join(directory, n) for n in (CHECKPOINT_NAME, PREVIOUS_NAME)
                 if os.path.exists(os.path.join(directory, n))]
        if files:
            raise CheckpointError(
                f"{directory} holds {', '.join(files)} but no {STATE_NAME}, so the epochs "
                f"they hold are unknown. Received: {sorted(os.listdir(directory))}. Restore "
                f"{STATE_NAME} from a backup to resume; if the run was killed in its first "
                f"epoch, delete {directory} to start over."
            )
        return []
    found = [_locate(directory, entry) for entry in _read_state(directory)]
    if all(c.problem is not None for c in found):
        raise _nothing_usable(directory, found)
    return found


def _describe(checkpoint):
    return (f"{checkpoint.path} (epoch {checkpoint.epoch}: {checkpoint.problem})")


def _nothing_usable(directory, checkpoints):
    damaged = "; ".join(_describe(c) for c in checkpoints)
    return CheckpointError(
        f"Cannot resume the run in {os.path.dirname(os.path.abspath(directory))}: no "
        f"checkpoint in {directory} is usable. Received: {damaged}. Restore these files "
        f"from a backup to resume, or delete {directory} to train from scratch (the "
        "run's model.keras and metrics.json are rewritten at the end), or pass a new "
        "--model_dir."
    )


def latest_checkpoint(directory):
    """Returns ``(model_path, state)`` of the newest usable epoch, or None.

    "Usable" by the cheap file check only (`keras_file_problem`);
    `restore_checkpoint` also falls back when Keras fails to load it.

    Args:
        directory: the checkpoint directory written by `AtomicCheckpoint`.

    Raises:
        CheckpointError: (a ValueError) the state file exists but is
            unreadable, or every checkpoint it names is missing or damaged.
    """
    for checkpoint in find_checkpoints(directory):
        if checkpoint.problem is None:
            return checkpoint.path, checkpoint.state
    return None


def restore_checkpoint(directory, load=None, checkpoints=None, warn=None):
    """Loads the newest checkpoint that loads, falling back to the previous epoch.

    A damaged latest checkpoint (truncated file, failed load) is skipped with
    a warning that names it and the epoch whose training is lost; when no
    checkpoint loads, raises rather than start over.

    Args:
        directory: the checkpoint directory written by `AtomicCheckpoint`.
        load: ``load(path) -> model`` (default `keras.models.load_model`).
        checkpoints: the result of `find_checkpoints`, if already called.
        warn: called with each warning (default: print to stderr).

    Returns:
        ``(model, checkpoint)`` with the `Checkpoint` loaded, or None when the
        directory has no state file.

    Raises:
        CheckpointError: no checkpoint is usable.

    Example:
        (Not run as a doctest: it needs a run's checkpoints.)

        >>> restored = restore_checkpoint("runs/rls/checkpoints")  # doctest: +SKIP
    """
    load = load or keras.models.load_model
    warn = warn or (lambda message: print(f"warning: {message}", file=sys.stderr))
    if checkpoints is None:
        checkpoints = find_checkpoints(directory)
    if not checkpoints:
        return None
    skipped = []
    for checkpoint in checkpoints:
        if checkpoint.problem is None:
            try:
                model = load(checkpoint.path)
            except Exception as e:  # pylint: disable=broad-except  (any damage)
                checkpoint = dataclasses.replace(
                    checkpoint, problem=f"Keras cannot load it: {type(e).__name__}: {e}")
        if checkpoint.problem is not None:
            skipped.append(checkpoint)
            continue
        if skipped:
            lost = sorted({s.epoch for s in skipped if s.epoch > checkpoint.epoch})
            warn(
                f"the checkpoint {'; '.join(_describe(s) for s in skipped)} is unusable; "
                f"resuming from {checkpoint.path} (epoch {checkpoint.epoch}) instead. "
                + (f"The training of epoch(s) {', '.join(map(str, lost))} is lost and "
                   "will be done again." if lost else "")
            )
        return model, checkpoint
    raise _nothing_usable(directory, skipped)


class AtomicCheckpoint(keras.callbacks.Callback):
    """Saves the full model (weights + optimizer) at the end of every epoch.

    The new model is written to a temporary file first; then the checkpoint
    of the epoch before is renamed to ``previous.keras``, the new one to
    ``latest.keras``, and ``latest_state.json`` records both (epoch, history
    and a content fingerprint of each file) in one atomic write. Killing the
    process at any moment loses at most the epoch in progress, and a latest
    checkpoint damaged later (an interrupted copy, a full disk) still leaves
    the previous epoch to resume from (`restore_checkpoint`).

    Args:
        directory: where ``latest.keras``, ``previous.keras`` and
            ``latest_state.json`` go.
        history: optional dict of per-epoch lists to extend (from a resumed
            run), so the saved history covers every epoch.
        resumed: the `Checkpoint` the run resumed from (`restore_checkpoint`),
            which becomes the previous checkpoint after the next epoch.

    Example:

    >>> # model.fit(ds, epochs=10, callbacks=[AtomicCheckpoint("run/ckpt")])
    """

    def __init__(self, directory, history=None, resumed=None):
        super().__init__()
        self.directory = directory
        self.history = {k: list(v) for k, v in (history or {}).items()}
        # The last committed checkpoint: (its state entry, the file holding it).
        self._committed = None
        if resumed is not None:
            self._committed = (resumed.state, resumed.path)

    def on_train_begin(self, logs=None):
        # Temporary files of a run that was killed while writing.
        if os.path.isdir(self.directory):
            for name in os.listdir(self.directory):
                if name.startswith(_TMP_PREFIX):
                    try:
                        os.remove(os.path.join(self.directory, name))
                    except OSError:
                        pass

    def on_epoch_begin(self, epoch, logs=None):
        # The rate the epoch trains with (at its end a schedule may have moved on).
        self._learning_rate = float(
            keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        )

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        logs["learning_rate"] = self._learning_rate
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        latest = os.path.join(self.directory, CHECKPOINT_NAME)
        previous = os.path.join(self.directory, PREVIOUS_NAME)
        tmp = _write_temp(latest, ".keras", self.model.save)
        try:
            fingerprint = _fingerprint(tmp)
            previous_entry = None
            if self._committed is not None:
                entry, path = self._committed
                if os.path.abspath(path) != os.path.abspath(previous):
                    os.replace(path, previous)
                previous_entry = {
                    "epoch": entry["epoch"], "checkpoint": PREVIOUS_NAME,
                    "history": entry["history"], "fingerprint": entry.get("fingerprint"),
                }
            os.replace(tmp, latest)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        _fsync_directory(self.directory)
        state = {
            "epoch": epoch + 1, "checkpoint": CHECKPOINT_NAME,
            "history": {k: list(v) for k, v in self.history.items()},
            "fingerprint": fingerprint, "previous": previous_entry,
        }
        write_json_atomic(os.path.join(self.directory, STATE_NAME), state)
        self._committed = ({k: v for k, v in state.items() if k != "previous"}, latest)
