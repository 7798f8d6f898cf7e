"""Prefix sharing: reusing layer outputs between the sampled models of a step.

Owns the plan (`plan_prefix_sharing`: which RLS layers of a network may reuse
an earlier sample's output, and when reuse is exact at all) and its runtime
(`PrefixSharing`, the object `RLSModel` puts in the sampling scope of its
single-sample passes; the RLS layers call its ``route`` duck-typed through
``SamplingScope.share`` and never import this module).

The plan reads Keras internals of a functional network: its
``_operations``, each layer's ``_inbound_nodes`` and each node's
``parent_nodes``. Keras has no public API for a network's graph of layer
calls, so these accesses are kept in this one module, where a Keras upgrade
that changes them has a single place to fix (the tests in
``tests/models/test_prefix_sharing.py`` cover them).
"""

import keras
import numpy as np
import tensorflow as tf

from rls_tf.layers.base import RLSLayer

__all__ = ["PrefixSharing", "plan_prefix_sharing"]

# A layer reuses outputs between samples when at least this share of the
# samples is expected to repeat an earlier sample's path up to it; deeper
# layers (where paths rarely repeat) skip the test.
_MIN_REPEATS = 0.1


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

    Built by `plan_prefix_sharing` only where reuse is exact; layers missing
    from ``ancestors`` (deep layers, where two samples rarely agree) always
    compute.

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
        # A fresh draw, or the scope's pinned index (a step that fixed its
        # paths beforehand, e.g. adversarial training).
        index = layer.sample_indices(inputs)[0]
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
            # The earlier output to reuse, chosen by selects outside the cond.
            # (A chain of nested conds inside its reuse branch, as before,
            # made TensorFlow's gradient of the cond pair the branches'
            # intermediates by position, the inner conds' bool predicates
            # against the computing branch's float tensors, and its type
            # inference print "Type inference failed ... invalid graph" at
            # the first traced step; tensorflow/tensorflow#57052.) The
            # selects give exactly earlier[first] and pass the gradient to it
            # alone (zeros to the others), so the numerics are unchanged; they
            # cost s - 1 elementwise selects per shared layer, not a forward.
            reused = self._outputs[key, s - 1]
            for j in reversed(range(s - 1)):
                reused = tf.where(tf.equal(first, j), self._outputs[key, j], reused)
            outputs = tf.cond(tf.equal(first, s),
                              lambda: fn(inputs, index, **kwargs),
                              lambda: tf.identity(reused))
        self._outputs[key, s] = outputs
        return outputs


def plan_prefix_sharing(network, rls_layers, num_samples, per_example_override=None,
                        min_repeats=_MIN_REPEATS):
    """A `PrefixSharing` for `num_samples` single-sample calls, or None.

    Reuse is exact only if a layer's input is a deterministic function of
    the images and of the outputs of the RLS layers it depends on: a
    functional network whose RLS layers are each called once, with no
    random weightless layers (dropout, noise, augmentation) and no
    per-example sampling. A layer is shared when at least `min_repeats` of
    the samples are expected to repeat an earlier sample's path up to it
    (1 - E[distinct paths] / S, from the paths' collision probability).

    Args:
        network: the `keras.Model` the samples call.
        rls_layers: its RLS layers (`RLSModel.rls_layers`).
        num_samples: S, the number of single-sample calls.
        per_example_override: None to use each layer's own
            ``per_example_sampling``, or a bool overriding it (the model's
            ``per_example_sampling``).
        min_repeats: the smallest expected share of repeating samples for
            which a layer is shared.

    Returns:
        A `PrefixSharing`, or None where no layer would share (or sharing
        would not be exact).
    """
    if num_samples < 2:
        return None
    layers = list(rls_layers)
    # Keras internals (see the module docstring): the functional graph.
    operations = getattr(network, "_operations", None)
    if not layers or operations is None:
        return None
    for layer in network._flatten_layers(include_self=False):  # pylint: disable=protected-access
        if isinstance(layer, RLSLayer):
            per_example = (per_example_override if per_example_override is not None
                           else layer.per_example_sampling)
            if (per_example or len(layer._inbound_nodes) != 1  # pylint: disable=protected-access
                    or not any(layer is op for op in operations)):
                return None
        elif any(isinstance(v, keras.random.SeedGenerator)
                 for v in vars(layer).values()):
            return None
    memo = {}

    def ancestors(node):  # the RLS layers the node's inputs depend on
        if id(node) not in memo:
            found = {}
            for parent in node.parent_nodes:
                found.update(ancestors(parent))
                if isinstance(parent.operation, RLSLayer):
                    found[id(parent.operation)] = parent.operation
            memo[id(node)] = found
        return memo[id(node)]

    shared = {}
    for layer in layers:
        if layer.num_submodels == 1:
            continue
        above = ancestors(layer._inbound_nodes[0])  # pylint: disable=protected-access
        paths = 1.0  # effective number of paths: 1 / collision probability
        for a in [*above.values(), layer]:
            paths /= float(np.sum(np.square(a.mu)))
        # paths * (1 - (1 - 1/paths)**S), written to stay exact when
        # 1/paths is below float64's resolution (deep layers).
        distinct = -paths * np.expm1(num_samples * np.log1p(-1.0 / paths))
        upstream = tuple(
            key for key, a in above.items() if a.num_submodels > 1)
        # A layer can compare paths only if all its ancestors record theirs.
        if (1.0 - distinct / num_samples >= min_repeats
                and all(key in shared for key in upstream)):
            shared[id(layer)] = upstream
    return PrefixSharing(shared) if shared else None
