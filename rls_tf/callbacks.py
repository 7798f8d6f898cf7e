"""Training callbacks: atomic, resumable checkpoints."""

import json
import os
import tempfile

import keras

__all__ = ["AtomicCheckpoint", "latest_checkpoint", "save_model_atomic",
           "write_bytes_atomic", "write_json_atomic"]

CHECKPOINT_NAME = "latest.keras"
STATE_NAME = "latest_state.json"


def current_umask():
    """The process's file-creation mask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_atomic(path, suffix, write):
    """Calls ``write(tmp_path)``, fsyncs, then renames tmp_path over `path`.

    The temporary file lives in the same directory, so the rename is atomic
    on POSIX file systems: readers see the old file or the new one, never a
    partial one, whenever the process dies.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        # mkstemp creates the file 0600; give it the mode a plain open()
        # would, so that e.g. a model server running as another user can read it.
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json_atomic(path, payload):
    """Writes `payload` as JSON to `path` atomically."""

    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(payload, f, indent=2, sort_keys=True)

    _write_atomic(path, ".json", write)


def write_bytes_atomic(path, content):
    """Writes the bytes `content` to `path` atomically."""

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(content)

    _write_atomic(path, os.path.splitext(path)[1], write)


def save_model_atomic(model, path):
    """`model.save(path)` (with optimizer state), atomically."""
    _write_atomic(path, ".keras", model.save)


def latest_checkpoint(directory):
    """Returns ``(model_path, state)`` of the last complete epoch, or None.

    Args:
        directory: the checkpoint directory written by `AtomicCheckpoint`.

    Raises:
        ValueError: the state file exists but is unreadable, or names a
            checkpoint that is missing.
    """
    state_path = os.path.join(directory, STATE_NAME)
    if not os.path.exists(state_path):
        return None
    try:
        with open(state_path) as f:
            state = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"Unreadable checkpoint state: Received: {state_path} ({e}). Delete "
            "the checkpoint directory to start over."
        ) from None
    model_path = os.path.join(directory, state["checkpoint"])
    if not os.path.exists(model_path):
        raise ValueError(
            f"Checkpoint state {state_path} names {model_path}, which is missing."
        )
    return model_path, state


class AtomicCheckpoint(keras.callbacks.Callback):
    """Saves the full model (weights + optimizer) at the end of every epoch.

    The model and a small JSON state (last finished epoch and the history so
    far) are each written to a temporary file and renamed into place, model
    first, so the state never points at a half-written model: killing the
    process at any moment loses at most the epoch in progress.

    Args:
        directory: where ``latest.keras`` and ``latest_state.json`` go.
        history: optional dict of per-epoch lists to extend (from a resumed
            run), so the saved history covers every epoch.

    Example:

    >>> # model.fit(ds, epochs=10, callbacks=[AtomicCheckpoint("run/ckpt")])
    """

    def __init__(self, directory, history=None):
        super().__init__()
        self.directory = directory
        self.history = {k: list(v) for k, v in (history or {}).items()}

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
        save_model_atomic(self.model, os.path.join(self.directory, CHECKPOINT_NAME))
        write_json_atomic(
            os.path.join(self.directory, STATE_NAME),
            {"epoch": epoch + 1, "checkpoint": CHECKPOINT_NAME, "history": self.history},
        )
