"""Atomic file writing: a file is either its old content or its complete new one.

Every file a run or an export writes (JSON records, ``.keras`` models,
TFLite flatbuffers) goes through these: written to a temporary file in the
same directory (``.tmp-*``), flushed and fsync'd, then renamed over the
target and the directory fsync'd, so a crash or a kill never leaves a
truncated file under the real name.

Example:

>>> write_json_atomic("/tmp/metrics.json", {"accuracy": 0.9})
"""

import json
import os
import tempfile

__all__ = ["TMP_PREFIX", "current_umask", "save_model_atomic", "write_bytes_atomic",
           "write_json_atomic"]

# Temporary files of an atomic write start with this (cleaned up on resume).
TMP_PREFIX = ".tmp-"
_TMP_PREFIX = TMP_PREFIX


def current_umask():
    """The process's file-creation mask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(directory):
    """Makes a rename in `directory` durable (where the OS allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_temp(path, suffix, write):
    """Calls ``write(tmp_path)`` next to `path`, fsyncs it, returns tmp_path.

    The caller renames it into place (`os.replace`, atomic on POSIX when in
    the same directory) or removes it.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=_TMP_PREFIX, suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        # mkstemp creates the file 0600; give it the mode a plain open()
        # would, so that e.g. a model server running as another user can read it.
        os.chmod(tmp, 0o666 & ~current_umask())
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return tmp


def _write_atomic(path, suffix, write):
    """Calls ``write(tmp_path)``, fsyncs, then renames tmp_path over `path`.

    The temporary file lives in the same directory, so the rename is atomic
    on POSIX file systems: readers see the old file or the new one, never a
    partial one, whenever the process dies.
    """
    tmp = _write_temp(path, suffix, write)
    try:
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_directory(os.path.dirname(os.path.abspath(path)))


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
