"""What a registered defense declares: its parameters (`Param`) and its entry (`DefenseSpec`).

A defense's parameters are declared once, as `Param` objects in its
`DefenseSpec`: default, validation, help text and title. Everything else
is generated from them: the `rls_tf.training.TrainConfig` settings and
their validation, the ``config.json`` keys a run writes and compares on
resume, and the ``train.py`` flags with their help.

Example:

>>> from rls_tf.defenses.specs import Param
>>> width = Param("toy_width", 4, int, "toy: hidden units.", title="width", minimum=1)
>>> width.check(8)
8
"""

import dataclasses
from typing import Any, Callable, Optional, Tuple

from rls_tf.validation import check_bool
from rls_tf.validation import check_choice
from rls_tf.validation import check_float
from rls_tf.validation import check_int

__all__ = ["DefenseSpec", "Param"]

_KINDS = (int, float, bool, str)


@dataclasses.dataclass(frozen=True)
class Param:
    """One setting of a defense: a ``train.py`` flag and a ``config.json`` key.

    Attributes:
        key: the `TrainConfig` field, ``config.json`` key and flag name
            (prefixed by the defense where it is its own, e.g. ``adp_alpha``).
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

    def check(self, value):
        """Returns `value` checked (and normalised), or raises a "Received:" ValueError."""
        if value is None and (self.allow_none or self.default is None):
            return None
        if self.multiple:
            if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
                raise ValueError(f"`{self.key}` must be a sequence of {self.kind.__name__} "
                                 f"values. Received: {self.key}={value!r}")
            return list(value)
        if self.kind is bool:
            return check_bool(self.key, value)
        if self.kind is int:
            return check_int(self.key, value, maximum=self.maximum,
                             minimum=-2**63 if self.minimum is None else self.minimum)
        if self.kind is float:
            return check_float(self.key, value, minimum=self.minimum, maximum=self.maximum,
                               min_open=self.min_open)
        if self.choices is not None:
            return check_choice(self.key, value, self.choices)
        if not isinstance(value, str) or not value:
            raise ValueError(f"`{self.key}` must be a non-empty string. "
                             f"Received: {self.key}={value!r}")
        return value

    def to_json(self, value):
        """`value` as ``config.json`` holds it (a `multiple` one as a list of `kind`)."""
        if self.multiple and value is not None:
            return [self.kind(v) for v in value]
        return value


@dataclasses.dataclass(frozen=True)
class DefenseSpec:
    """A registered defense: everything training, the CLI and the docs need.

    Attributes:
        name: registry / ``--defense`` name.
        title: printed in tables.
        source: citation (paper; code repository, file and commit).
        builder: ``(backbone, common, options) -> model``: `common` holds
            the backbone keywords (num_classes, input_shape, seed,
            weight_decay and the backbone options), `options` the values of
            `uses` and of `params` (by `Param.option_name`).
        params: the defense's own settings (`Param`); a key may be shared
            by several defenses only as the same `Param` object.
        uses: the common `TrainConfig` fields its builder reads (of
            `rls_tf.defenses.registry.COMMON_OPTIONS`: ``eval_samples``).
        trains: False when it wraps a trained model instead (``sap``).
        eval_samples: its default N (the authors' evaluation: RSE 50, SAP
            100; RLS 10, the paper's).
        own_loss: the model trains on its own loss (ensembles); compiled
            without one.
        fixed: settings this defense forces whatever was asked, e.g.
            plain's ``(("num_submodels", 1),)``; ``config.json`` records
            them beside its parameters.
        architecture: settings a warm start (``init_from``) must share.
        summary: ``(config, model) -> str`` naming what was tested in the
            run's last line, e.g. "adp of 3 members (deterministic"; None:
            "<name> defense, mean of N draws (stochastic".
    """

    name: str
    title: str
    source: str
    builder: Callable
    params: Tuple[Param, ...] = ()
    uses: Tuple[str, ...] = ("eval_samples",)
    trains: bool = True
    eval_samples: int = 10
    own_loss: bool = False
    fixed: Tuple[Tuple[str, Any], ...] = ()
    architecture: Tuple[str, ...] = ()
    summary: Optional[Callable] = None

    @property
    def options(self):
        """Every builder keyword it reads: `uses` and its parameters' options."""
        return tuple(self.uses) + tuple(p.option_name for p in self.params)

    @property
    def param_keys(self):
        return tuple(p.key for p in self.params)

    def describe_run(self, config, model):
        """The phrase of the run's result line (`summary`, or the generic one)."""
        if self.summary is not None:
            return self.summary(config, model)
        return (f"{self.name} defense, mean of N={config.eval_samples} draws ("
                "stochastic")
