"""Claims on evaluation shards, so that several runs of one suite share a stage.

`reproduce` evaluates a sharded stage shard by shard. Two `reproduce`
processes started on the same ``output_dir`` (e.g. two one-thread runs on a
2-core machine) would compute the same shard twice; with claims each takes
the next shard nobody holds: before a shard it creates
``<eval dir>/shard-<i>-of-<S>.claim`` (exclusively) naming its process, and
removes it when the shard is written. The run that writes the last shard
merges the stage.

A claim counts only while its process lives on this machine since the same
boot (the pid and ``/proc/sys/kernel/random/boot_id``): a claim left by a
killed run, or by another machine sharing the folder, is taken over. Claims
coordinate processes of one machine; runs on several machines split the
stages with ``--stages`` instead.

Example:

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> with claim(folder, "shard-0-of-2.json") as mine:
...     mine, held_elsewhere(folder, "shard-0-of-2.json")
(True, False)
>>> import os; os.listdir(folder)
[]
"""

import contextlib
import json
import os
import socket

__all__ = ["claim", "held_elsewhere"]


def _boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="utf-8") as f:
            return f.read().strip()
    except OSError:  # not Linux: the pid alone
        return ""


def _me():
    return {"pid": os.getpid(), "host": socket.gethostname(), "boot": _boot_id()}


def _path(folder, shard_file):
    return os.path.join(folder, shard_file[:-len(".json")] + ".claim")


def _alive(owner):
    if (owner.get("host"), owner.get("boot")) != (socket.gethostname(), _boot_id()):
        return False
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except (KeyError, TypeError, ValueError):
        return False
    return True


def _owner(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _another_live(owner):
    return bool(owner) and owner.get("pid") != os.getpid() and _alive(owner)


def held_elsewhere(folder, shard_file):
    """Whether another live process of this machine holds the shard's claim."""
    return _another_live(_owner(_path(folder, shard_file)))


@contextlib.contextmanager
def claim(folder, shard_file):
    """Claims `shard_file` of `folder` for this process while the block runs.

    Yields True when this process holds the claim (it was free, stale or
    already its own), False when another live process holds it (the caller
    skips the shard). The claim is removed when the block ends, on an
    exception too.
    """
    path = _path(folder, shard_file)
    os.makedirs(folder, exist_ok=True)
    if _another_live(_owner(path)):
        yield False
        return
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)  # stale (gone, unreadable) or this process's own
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:  # another process took it between the check and now
        yield False
        return
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(_me(), f)
    try:
        yield True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
