"""The recorded command of an evaluation, as a typed flag list: `Command`.

``attack_eval.py`` records the command that reproduces a run
(``results["command"]``). A merge records the unsharded command, a combine
the one command of all models; both are the recorded command with some
flags changed. `Command` holds the program and the ``--name=value`` flags in
order, so these are edits of named flags (`replace`, `without`), not text
substitutions; `parse` reads a recorded command back (every earlier file's
included).

Example:

>>> command = Command.parse("python attack_eval.py --model_dir=runs/rls --seed=0 "
...                         "--num_shards=4 --shard_index=1")
>>> command.without("num_shards", "shard_index").replace(seed=3).to_text()
'python attack_eval.py --model_dir=runs/rls --seed=3'
"""

import dataclasses
from typing import Tuple

__all__ = ["Command", "PROGRAM"]

PROGRAM = "python attack_eval.py"


@dataclasses.dataclass(frozen=True)
class Command:
    """A command line: a program and its ``--name=value`` flags, in order.

    Attributes:
        flags: ``((name, value), ...)``; values are text (lists joined by ``,``).
        program: what runs, ``"python attack_eval.py"``.
    """

    flags: Tuple[Tuple[str, str], ...] = ()
    program: str = PROGRAM

    def __post_init__(self):
        names = [name for name, _ in self.flags]
        if len(set(names)) != len(names):
            raise ValueError(f"A flag is given twice. Received: flags={names!r}")

    @classmethod
    def from_flags(cls, flags, program=PROGRAM):
        """From ``[(name, value)]``: lists are joined by ``,``, None values left out."""
        out = []
        for name, value in flags:
            if value is None:
                continue
            if isinstance(value, list):
                value = ",".join(str(v) for v in value)
            out.append((str(name), str(value)))
        return cls(tuple(out), program)

    @classmethod
    def parse(cls, text):
        """Reads a recorded command (``program --a=1 --b=x,y``)."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"`text` must be a command line. Received: text={text!r}")
        program, *parts = text.split(" --")
        flags = []
        for part in parts:
            name, _, value = part.partition("=")
            flags.append((name, value))
        return cls(tuple(flags), program)

    def has(self, name):
        return any(n == name for n, _ in self.flags)

    def get(self, name, default=None):
        """The value of flag `name` (text), or `default`."""
        return next((v for n, v in self.flags if n == name), default)

    def replace(self, **values):
        """The command with the given flags' values replaced where present."""
        return Command(tuple((n, str(values[n]) if n in values else v) for n, v in self.flags),
                       self.program)

    def without(self, *names):
        """The command without the given flags."""
        return Command(tuple((n, v) for n, v in self.flags if n not in names), self.program)

    def to_text(self):
        return " ".join([self.program] + [f"--{n}={v}" for n, v in self.flags])
