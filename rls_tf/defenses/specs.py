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

# Param is shared by every registry (defenses, backbones); it lives in
# rls_tf.params, below both, and stays importable from here.
from rls_tf.params import Param

__all__ = ["DefenseSpec", "Param"]


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
