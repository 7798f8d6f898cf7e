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
"""

import contextlib
import dataclasses
import threading
from typing import Any, Mapping, Optional

import tensorflow as tf

__all__ = ["PrefixSharing", "ROUTINGS", "SamplingScope", "sampling_scope", "current_scope"]

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
        share: optional `PrefixSharing` of the single-sample passes of one
            step (set by `RLSModel`; None: every layer computes its output).
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


class _ScopeStack(threading.local):

    def __init__(self):
        super().__init__()
        self.scopes = []


_STACK = _ScopeStack()


def current_scope() -> SamplingScope:
    """Returns the innermost active `SamplingScope` (a default one if none)."""
    return _STACK.scopes[-1] if _STACK.scopes else _DEFAULT_SCOPE


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
        share: optional `PrefixSharing` (set by `RLSModel`).
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
    if isinstance(num_groups, bool) or not isinstance(num_groups, int):
        raise ValueError(
                f"`num_groups` must be a positive int. Received: num_groups={num_groups!r}"
        )
    if num_groups < 1:
        raise ValueError(
                f"`num_groups` must be a positive int. Received: num_groups={num_groups}"
        )
    if per_example is not None and not isinstance(per_example, bool):
        raise ValueError(
                f"`per_example` must be a bool or None. Received: per_example={per_example!r}"
        )
    if routing not in ROUTINGS:
        raise ValueError(
                f"`routing` must be one of {ROUTINGS}. Received: routing={routing!r}"
        )
    scope = SamplingScope(num_groups=num_groups, pinned=pinned,
                          per_example=per_example, share=share, routing=routing)
    _STACK.scopes.append(scope)
    try:
        yield scope
    finally:
        _STACK.scopes.pop()


class PrefixSharing:
    """Reuses layer outputs between the single-sample passes of one step.

    Group training runs S sampled models on the same batch, one network call
    each (and N-sample inference N of them). If sample s drew, in an RLS
    layer and in every RLS layer that layer's input depends on, the same
    copies as an earlier sample j, its output there is sample j's output:
    it is reused instead of recomputed. This is exact, gradients included
    (the reused tensor collects the gradients of both samples); only the
    batch-norm moving statistics of a copy are updated once per distinct
    prefix instead of once per sample. Whether two samples agree is known
    only when the graph runs, so the reuse is a ``tf.cond``.

    Built by `RLSModel` only where reuse is exact (see
    `RLSModel._sharing_plan`); layers missing from ``ancestors`` (deep
    layers, where two samples rarely agree) always compute.

    Args:
        ancestors: ``{id(layer): ids of the RLS layers its input depends
            on}`` for the layers that may reuse; every ancestor of such a
            layer is in the mapping too.
    """

    def __init__(self, ancestors):
        self.ancestors = ancestors
        self.sample = 0  # index of the single-sample pass being traced
        self._drawn = {}
        self._outputs = {}

    def route(self, layer, fn, inputs, **kwargs):
        """Output of `layer` in the current sample; None if not shared."""
        key = id(layer)
        ancestors = self.ancestors.get(key)
        if ancestors is None:
            return None
        s = self.sample
        index = layer.draw_indices(1)[0]
        self._drawn[key, s] = index
        if s == 0:
            outputs = fn(inputs, index, **kwargs)
        else:
            # first: the earliest sample with the same path up to this layer.
            path = tf.stack([self._drawn[a, s] for a in ancestors] + [index])
            first = tf.constant(s, tf.int32)
            for j in reversed(range(s)):
                other = tf.stack([self._drawn[a, j] for a in ancestors]
                                 + [self._drawn[key, j]])
                first = tf.where(tf.reduce_all(tf.equal(path, other)), j, first)
            earlier = [self._outputs[key, j] for j in range(s)]

            def reuse(j=0):
                if j == s - 1:
                    return tf.identity(earlier[j])
                return tf.cond(tf.equal(first, j),
                               lambda: tf.identity(earlier[j]),
                               lambda: reuse(j + 1))

            outputs = tf.cond(tf.equal(first, s),
                              lambda: fn(inputs, index, **kwargs), reuse)
        self._outputs[key, s] = outputs
        return outputs
