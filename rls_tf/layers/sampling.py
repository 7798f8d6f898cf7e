"""Sampling scopes: how a forward pass maps sampled models onto the batch.

Every RLS layer draws, in its own ``call``, which of its M weight copies each
sampled model uses. Two things about a forward pass are decided by the caller
rather than by the layer, because they describe the whole pass and must be the
same for every layer in it:

* ``num_groups``: the batch is made of ``num_groups`` equal, contiguous blocks
    and each block is one sampled model (one path through the network). Group
    training tiles the batch K times with ``num_groups=K``; N-sample inference
    tiles it N times with ``num_groups=N``.
* ``pinned``: fixed copy indices for some layers (one per group), e.g. to
    attack "one sampled model" or to compare against a plain Keras layer.

The scope is a static, trace-time setting (a Python context manager, kept per
thread so that tf.distribute replica threads do not see each other's scopes);
the random draw itself is a graph op inside each layer, so a traced function
keeps sampling fresh paths on every call without retracing.

A scope may also carry a ``share`` object that computes a layer's output in
its place (the models' prefix sharing); the layers only call its ``route``
method and never import the models package.
"""

import contextlib
import dataclasses
from typing import Any, Mapping, Optional

from rls_tf.scopes import ScopeStack
from rls_tf.validation import check_bool
from rls_tf.validation import check_choice
from rls_tf.validation import check_int

__all__ = ["ROUTINGS", "SamplingScope", "sampling_scope", "current_scope"]

ROUTINGS = ("partition", "select")


@dataclasses.dataclass(frozen=True)
class SamplingScope:
    """What the RLS layers called inside a scope should do.

    Attributes:
        num_groups: number of contiguous blocks of the batch, each one sampled
            model. 1 means the whole batch shares one path (the paper's setting).
        pinned: mapping from ``id(layer)`` to an int tensor/array of shape
            ``[num_groups]`` with the copy index each group uses in that layer.
            Layers not in the mapping sample as usual.
        per_example: when not None, overrides each layer's own
            ``per_example_sampling`` setting (every example draws its own path).
        share: optional object that may compute an RLS layer's output in
            its place: ``share.route(layer, fn, inputs, **kwargs)`` returns
            the output, or None to let the layer compute it. `RLSModel` sets
            a `rls_tf.models.prefix_sharing.PrefixSharing` here to reuse
            outputs between the single-sample passes of one step; None:
            every layer computes its output.
        routing: how a batch that mixes copies is computed. "partition"
            (default): ``tf.dynamic_partition`` splits the rows by copy and
            each copy runs on its share (the work of one plain pass).
            "select": every copy runs on the whole batch and each row keeps
            its own copy's output (M times the work, but only builtin
            TFLite ops; inference only, used by the TFLite export).
    """

    num_groups: int = 1
    pinned: Optional[Mapping[int, Any]] = None
    per_example: Optional[bool] = None
    share: Optional[Any] = None
    routing: str = "partition"


_DEFAULT_SCOPE = SamplingScope()


_STACK = ScopeStack()


def current_scope() -> SamplingScope:
    """Returns the innermost active `SamplingScope` (a default one if none)."""
    return _STACK.current(_DEFAULT_SCOPE)


@contextlib.contextmanager
def sampling_scope(num_groups=1, pinned=None, per_example=None, share=None,
                   routing="partition"):
    """Sets how RLS layers called inside the block sample their copies.

    Args:
        num_groups: positive int; the batch is split into this many equal,
            contiguous blocks, each one independently sampled model.
        pinned: optional mapping ``{id(layer): indices}`` with ``indices`` of
            shape ``[num_groups]`` (tensor or array of ints in ``[0, M)``).
        per_example: optional bool overriding the layers' per-example setting.
        share: optional object with ``route(layer, fn, inputs, **kwargs)``,
            see `SamplingScope` (set by `RLSModel`).
        routing: "partition" or "select", see `SamplingScope`.

    Yields:
        The active `SamplingScope`.

    Example:

    >>> import numpy as np
    >>> from rls_tf.layers import RLSDense, sampling_scope
    >>> layer = RLSDense(4, num_submodels=2, seed=1)
    >>> x = np.ones((6, 3), "float32")
    >>> with sampling_scope(num_groups=3):  # rows 0-1, 2-3, 4-5: 3 models
    ...   y = layer(x)
    """
    num_groups = check_int("num_groups", num_groups)
    per_example = check_bool("per_example", per_example, allow_none=True)
    routing = check_choice("routing", routing, ROUTINGS)
    scope = SamplingScope(num_groups=num_groups, pinned=pinned,
                          per_example=per_example, share=share, routing=routing)
    with _STACK.push(scope):
        yield scope
