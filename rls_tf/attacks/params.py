"""What an attack's parameter is: `Param` (default, check, help text and title in one place).

Every attack declares its own parameters in its `rls_tf.attacks.registry.AttackSpec`
(``params``); the evaluation declares the settings that are no attack's own (the
threat models' sizes, the adaptive and transfer budgets, the convergence sweeps) with
the same type (`rls_tf.evaluation.presets.EVALUATION_PARAMS`). From them come the
`rls_tf.evaluation.presets.Preset` keys, defaults and checks, and the
``attack_eval.py`` override flags with their help.

This is a small twin of `rls_tf.defenses.specs.Param` (a defense's parameter): the
attacks package imports nothing else of ``rls_tf``, so it cannot use
`rls_tf.validation`, and an attack's parameter can be a sequence (one table row per
value: ``pgd_eps``), which a defense's cannot.

Example:

>>> steps = Param("toy_steps", 10, int, "toy: iterations.", minimum=1)
>>> steps.check(3)
3
>>> Param("toy_eps", (0.1,), float, "toy: sizes.", sequence=True, minimum=0).check([0.2])
(0.2,)
"""

import dataclasses
import numbers
from typing import Any, Optional, Tuple

__all__ = ["Param"]

_KINDS = (int, float, bool, str)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter of an attack (or of the evaluation): a preset key and a flag.

    Attributes:
        name: the preset key and ``attack_eval.py`` flag, prefixed by its attack
            where it is the attack's own (``pgd_steps``).
        default: the value when a preset does not set it (a tuple for a
            sequence); None with `required`.
        kind: ``int``, ``float``, ``bool`` or ``str`` (of the elements of a
            sequence).
        help: the flag's help text (also the documentation of the preset key).
        title: a short name for tables (default: `name`).
        sequence: the value is a tuple of `kind` (a list flag; one table row
            per element where the attack makes one).
        minimum, maximum: bounds of a number (of every element).
        min_open: the minimum itself is excluded (``> minimum``).
        choices: the allowed values of a ``str`` parameter.
        nonempty: a sequence needs at least one element.
        required: every preset must set it (the per-dataset eps and c of the
            paper presets); `default` is then unused.
    """

    name: str
    default: Any
    kind: type
    help: str
    title: str = ""
    sequence: bool = False
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    min_open: bool = False
    choices: Optional[Tuple[str, ...]] = None
    nonempty: bool = False
    required: bool = False

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(f"`kind` must be one of {_KINDS}. Received: kind={self.kind!r}")
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"`name` must be an identifier. Received: name={self.name!r}")
        if not self.required:
            self.check(self.default)

    def _bounds(self):
        """The bounds as text, e.g. ``" >= 1"``, ``" in (0, 1]"``."""
        low = "(" if self.min_open else "["
        if self.minimum is not None and self.maximum is not None:
            return f" in {low}{self.minimum:g}, {self.maximum:g}]"
        if self.minimum is not None:
            return f" {'>' if self.min_open else '>='} {self.minimum:g}"
        if self.maximum is not None:
            return f" <= {self.maximum:g}"
        return ""

    def _element_ok(self, value):
        if self.kind is bool:
            return isinstance(value, bool)
        if self.kind is str:
            return isinstance(value, str) and bool(value) and (
                self.choices is None or value in self.choices)
        if not (_is_int(value) if self.kind is int else _is_number(value)):
            return False
        if self.minimum is not None and (value <= self.minimum if self.min_open
                                         else value < self.minimum):
            return False
        return self.maximum is None or value <= self.maximum

    def _what(self):
        if self.choices is not None:
            return f"one of {tuple(self.choices)}"
        noun = {int: "an int", float: "a number", bool: "a bool", str: "a non-empty string"}
        plural = {int: "ints", float: "numbers", bool: "bools", str: "non-empty strings"}
        if self.sequence:
            return f"{plural[self.kind]}{self._bounds()}"
        return f"{noun[self.kind]}{self._bounds()}"

    def check(self, value):
        """Returns `value` checked (a sequence as a tuple), or raises a "Received:" ValueError."""
        if self.sequence:
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                ok = False
            else:
                value = tuple(value)
                ok = all(self._element_ok(v) for v in value) and (value or not self.nonempty)
        else:
            ok = self._element_ok(value)
        if not ok:
            raise ValueError(f"`{self.name}` must be {self._what()}. "
                             f"Received: {self.name}={value!r}")
        return value

    @property
    def label(self):
        """`title`, else `name`."""
        return self.title or self.name

    def to_json(self, value):
        """`value` as JSON (a sequence as a list)."""
        return list(value) if self.sequence else value
