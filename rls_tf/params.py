"""What every registry entry declares about its settings (`Param`), and a live view of a registry's names (`Names`).

The defenses (`rls_tf.defenses.specs`), the backbones
(`rls_tf.models.backbones.specs`) and the datasets (`rls_tf.data.registry`)
are registries of small frozen specs. This module is what they share; it
imports only `rls_tf.validation`, so that every layer may use it.

Example:

>>> width = Param("toy_width", 4, int, "toy: hidden units.", title="width", minimum=1)
>>> width.check(8)
8
>>> names = Names({"a": 1})
>>> names == ("a",)
True
"""

import collections.abc
import dataclasses
from typing import Any, Callable, Optional, Tuple

from rls_tf.validation import check_bool
from rls_tf.validation import check_choice
from rls_tf.validation import check_float
from rls_tf.validation import check_int

__all__ = ["Names", "Param"]

_KINDS = (int, float, bool, str)


@dataclasses.dataclass(frozen=True)
class Param:
    """One setting of a registry entry (a defense, a backbone): default, check, help, title.

    A defense's `Param` is also a ``train.py`` flag and a ``config.json``
    key; a backbone's is a keyword of its builder (e.g. ``width``).

    Attributes:
        key: the setting's name: for a defense the `TrainConfig` field,
            ``config.json`` key and flag name (prefixed by the defense where
            it is its own, e.g. ``adp_alpha``); for a backbone its keyword.
        default: the value when unset (None: optional, see `allow_none`).
        kind: ``int``, ``float``, ``bool`` or ``str`` (of every item, with
            `multiple`).
        help: the flag's help, without the defense names (added).
        title: a short name for tables (default: `key`).
        minimum, maximum, min_open: bounds of numbers (see
            `rls_tf.validation.check_float`).
        choices: the allowed values of a ``str`` parameter.
        allow_none: None is a valid value (the builder's own default).
        required: must be set (not None) with its defense.
        exclusive: may be set only with the defenses that declare it.
        option: the keyword of the defense's builder (default: `key`).
        load: turns the configured value into the builder's value (e.g. a
            run directory into its loaded model); None: passed as is.
        resume: a resumed run must have the same value.
        multiple: the value is a list of `kind` items (a comma-separated
            flag, e.g. RLS's ``mu``); `check` only asks for a sequence,
            the defense's own rules check the items (their count may depend
            on another setting).
    """

    key: str
    default: Any
    kind: type
    help: str
    title: str = ""
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    min_open: bool = False
    choices: Optional[Tuple[str, ...]] = None
    allow_none: bool = False
    required: bool = False
    exclusive: bool = False
    option: Optional[str] = None
    load: Optional[Callable[[Any], Any]] = None
    resume: bool = True
    multiple: bool = False

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(f"`kind` must be one of {_KINDS}. Received: kind={self.kind!r}")
        if not self.key.isidentifier():
            raise ValueError(f"`key` must be an identifier. Received: key={self.key!r}")

    @property
    def option_name(self):
        """The builder keyword this parameter fills."""
        return self.option or self.key

    def check(self, value, name=None):
        """Returns `value` checked (and normalised), or raises a "Received:" ValueError.

        Args:
            value: the value to check.
            name: what the error calls it (default: `key`), e.g. the
                ``backbone_width`` setting that fills a backbone's ``width``.
        """
        name = name or self.key
        if value is None and (self.allow_none or self.default is None):
            return None
        if self.multiple:
            if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
                raise ValueError(f"`{name}` must be a sequence of {self.kind.__name__} "
                                 f"values. Received: {name}={value!r}")
            return list(value)
        if self.kind is bool:
            return check_bool(name, value)
        if self.kind is int:
            return check_int(name, value, maximum=self.maximum,
                             minimum=-2**63 if self.minimum is None else self.minimum)
        if self.kind is float:
            return check_float(name, value, minimum=self.minimum, maximum=self.maximum,
                               min_open=self.min_open)
        if self.choices is not None:
            return check_choice(name, value, self.choices)
        if not isinstance(value, str) or not value:
            raise ValueError(f"`{name}` must be a non-empty string. "
                             f"Received: {name}={value!r}")
        return value

    def to_json(self, value):
        """`value` as ``config.json`` holds it (a `multiple` one as a list of `kind`)."""
        if self.multiple and value is not None:
            return [self.kind(v) for v in value]
        return value


class Names(collections.abc.Sequence):
    """The names of a registry (a dict), in registration order, always current.

    Reads like the tuple of the names it shows (indexing, ``in``, ``len``,
    equality with a tuple or list, its repr), but follows the registry: an
    entry registered or removed later shows in every module that imported
    it, e.g. `rls_tf.data.DATASETS` after `rls_tf.data.register_dataset`.

    Args:
        registry: the dict of name -> spec it shows.
    """

    __hash__ = None  # mutable, like the registry it shows

    def __init__(self, registry):
        self._registry = registry

    def __getitem__(self, index):
        return tuple(self._registry)[index]

    def __len__(self):
        return len(self._registry)

    def __contains__(self, name):
        return name in self._registry

    def __iter__(self):
        return iter(tuple(self._registry))

    def __eq__(self, other):
        if isinstance(other, (Names, tuple, list)):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __repr__(self):
        return repr(tuple(self))
