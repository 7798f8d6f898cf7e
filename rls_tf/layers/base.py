"""`RLSLayer`: the machinery every Random Layer Sampling layer shares.

A layer holds M independently initialised copies of each of its weights
(shape ``[M, ...]``) and, on every forward pass, picks the copy each sampled
model uses with a categorical draw over ``mu`` (Lee et al., eq. 1-3). Thin
subclasses (`RLSDense`, `RLSConv2D`, ...) only say how to build their weights
and how to compute their output from one copy.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from rls_tf.layers.sampling import current_scope
from rls_tf.validation import check_bool
from rls_tf.validation import check_int
from rls_tf.validation import check_seed

__all__ = ["RLSLayer"]

# Per-copy initializer seeds are spread by this prime so that a user-seeded
# initializer still gives M different copies (Keras re-uses an int seed).
_COPY_SEED_STRIDE = 7919


def _check_mu(mu, num_submodels):
    """``mu`` as a tuple of M probabilities summing to 1 (None: uniform).

    A vector rule, so it lives here rather than in `rls_tf.validation`
    (whose `check_probability` is for one number); the messages follow the
    same "`name` must ... Received: name=..." form. Also used by the
    backbones and the training config.
    """
    if mu is None:
        return tuple([1.0 / num_submodels] * num_submodels)
    try:
        values = [float(v) for v in mu]
    except (TypeError, ValueError):
        raise ValueError(
            f"`mu` must be a sequence of {num_submodels} probabilities. "
            f"Received: mu={mu!r}"
        ) from None
    if len(values) != num_submodels:
        raise ValueError(
            f"`mu` must have one probability per sub-model "
            f"(num_submodels={num_submodels}). Received: mu={mu!r} "
            f"of length {len(values)}"
        )
    if any(not (math.isfinite(v) and 0.0 <= v <= 1.0) for v in values):
        raise ValueError(
            f"`mu` must hold probabilities in [0, 1]. Received: mu={mu!r}"
        )
    if abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(
            f"`mu` must sum to 1. Received: mu={mu!r} (sum={sum(values)!r})"
        )
    return tuple(values)


def _copy_initializer(initializer, copy):
    """Returns an initializer that gives copy `copy` its own random draw."""
    config = initializer.get_config()
    if "seed" not in config:
        return initializer  # deterministic (zeros, ones, constant)
    if config["seed"] is not None:
        config["seed"] = int(config["seed"]) + _COPY_SEED_STRIDE * copy
    # A fresh instance with seed=None draws its own default seed.
    return initializer.__class__.from_config(config)


class _CopiesInitializer(keras.initializers.Initializer):
    """Initialises each of the M copies independently, with per-copy fans.

    Initialising the stacked ``[M, ...]`` tensor directly would compute
    Glorot/He fans from the wrong shape and, with a seeded initializer, give
    identical copies.
    """

    def __init__(self, initializer, num_copies):
        self.initializer = keras.initializers.get(initializer)
        self.num_copies = num_copies

    def __call__(self, shape, dtype=None):
        if shape[0] != self.num_copies:
            raise ValueError(
                f"Expected a leading copy axis of size {self.num_copies}. "
                f"Received: shape={shape}"
            )
        return keras.ops.stack(
            [
                _copy_initializer(self.initializer, m)(tuple(shape[1:]), dtype=dtype)
                for m in range(self.num_copies)
            ]
        )

    def get_config(self):
        return {
            "initializer": keras.initializers.serialize(self.initializer),
            "num_copies": self.num_copies,
        }


@keras.saving.register_keras_serializable(package="rls_tf")
class RLSLayer(keras.layers.Layer):
    """Base class of the Random Layer Sampling layers.

    Owns what all RLS layers share: the number of copies M, the sampling
    probabilities ``mu``, the seed, and the drawing and routing of copy
    indices. Subclasses create their weights with `add_copies` and implement
    `apply_copy`; `call` is `self.route(inputs, self.apply_copy, ...)`.

    How the copy index reaches the computation:

    * one sampled model for the whole batch (the paper's per-batch sampling):
      the layer draws one index ``r`` and uses ``w = one_hot(r) . W`` (eq. 3),
      which keeps the gradient dense for the optimizer;
    * several sampled models in one batch (``sampling_scope(num_groups=G)``,
      per-example sampling, or pinned groups): the batch is split by index
      with ``tf.dynamic_partition``, each copy runs on its share, and
      ``tf.dynamic_stitch`` puts the rows back in order. The work is that of
      one plain pass over the batch, not M passes.

    Randomness: with ``seed=None`` the draw is ``tf.random.categorical`` with
    no op seed, so every call (and every process that loads a saved or
    exported model) draws fresh, unpredictable paths. Keras' own
    ``keras.random`` is not used there because with ``seed=None`` it bakes a
    seed in at trace time. With an integer seed the layer draws from a
    ``keras.random.SeedGenerator`` and is reproducible.

    Args:
        num_submodels: M, the number of weight copies (int >= 1). M=1 is the
            plain Keras layer.
        mu: optional sequence of M non-negative probabilities summing to 1;
            default uniform.
        seed: None (unpredictable draws) or an int in ``[0, 2**31)``
            (reproducible).
        per_example_sampling: if True every example draws its own copy
            instead of the whole batch sharing one.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).
    """

    def __init__(
        self,
        num_submodels=2,
        mu=None,
        seed=None,
        per_example_sampling=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_submodels = check_int("num_submodels", num_submodels)
        self.mu = _check_mu(mu, self.num_submodels)
        self.seed = check_seed("seed", seed)
        self.per_example_sampling = check_bool("per_example_sampling",
                                               per_example_sampling)
        with np.errstate(divide="ignore"):
            self._logits = np.log(np.asarray([self.mu], dtype=np.float32))
        if self.seed is not None:
            self._seed_generator = keras.random.SeedGenerator(
                self.seed, name="path_seed_generator"
            )

    # -- weights ------------------------------------------------------------

    def add_copies(self, name, shape, initializer, regularizer=None, trainable=True,
                   dtype=None, autocast=True):
        """Adds a weight of shape ``[M, *shape]`` with independent copies.

        Args:
            name: weight name.
            shape: shape of one copy.
            initializer: Keras initializer (name, dict or instance) for one copy.
            regularizer: optional regularizer applied to all copies.
            trainable: whether the weight is trained.
            dtype: optional dtype.
            autocast: whether reads inside a mixed-precision layer are cast to
                the compute dtype (False for statistics that must stay float32).

        Returns:
            The Keras variable.
        """
        return self.add_weight(
            name=name,
            shape=(self.num_submodels, *shape),
            initializer=_CopiesInitializer(initializer, self.num_submodels),
            regularizer=regularizer,
            trainable=trainable,
            dtype=dtype,
            autocast=autocast,
        )

    @staticmethod
    def select(weight, index, num_copies):
        """Returns one copy of `weight`: ``weight[index]``.

        Args:
            weight: variable or tensor of shape ``[M, ...]``.
            index: a Python int (static) or a scalar int tensor.
            num_copies: M.
        """
        if isinstance(index, (int, np.integer)):
            return weight[index]
        value = tf.convert_to_tensor(weight)
        one_hot = tf.one_hot(index, num_copies, dtype=value.dtype)
        return tf.tensordot(one_hot, value, axes=[[0], [0]])

    @staticmethod
    def assign_moving(variable, index, value, momentum):
        """Moving-average update of copy `index` of `variable` only.

        ``variable[index] = variable[index] * momentum + value * (1 - momentum)``;
        the other copies are untouched.
        """
        num_copies = variable.shape[0]
        dtype = variable.dtype
        if isinstance(index, (int, np.integer)):
            mask = np.zeros((num_copies,), dtype=dtype)
            mask[index] = 1.0
            mask = tf.constant(mask)
        else:
            mask = tf.one_hot(index, num_copies, dtype=dtype)
        value = tf.cast(value, dtype)
        mask = tf.reshape(mask, [num_copies] + [1] * (len(variable.shape) - 1))
        current = tf.convert_to_tensor(variable)
        variable.assign(current - mask * (1.0 - momentum) * (current - value[None]))

    # -- sampling -----------------------------------------------------------

    @property
    def logits(self):
        """float32 array ``[1, M]``: ``log(mu)``, the categorical logits of a draw."""
        return self._logits

    def draw_indices(self, num):
        """Draws `num` copy indices from Categorical(mu) as int32 ``[num]``.

        Under a tf.distribute strategy every replica draws its own indices
        (seeded layers fold the replica id into their seed).
        """
        logits = tf.constant(self._logits)
        replica = tf.distribute.get_replica_context()
        if self.seed is None:
            indices = tf.random.categorical(logits, num, dtype=tf.int32)
        elif replica is not None and replica.num_replicas_in_sync > 1:
            # The seed state is one variable mirrored on every replica, so
            # each replica folds in its id: replicas must draw different
            # paths, reproducibly.
            seed = tf.cast(self._seed_generator.next(), tf.int64)
            seed = tf.random.experimental.stateless_fold_in(
                seed, tf.cast(replica.replica_id_in_sync_group, tf.int64)
            )
            indices = tf.random.stateless_categorical(logits, num, seed, dtype=tf.int32)
        else:
            indices = keras.random.categorical(
                logits, num, dtype="int32", seed=self._seed_generator
            )
        return tf.reshape(indices, [-1])

    def sample_indices(self, inputs):
        """Returns the copy index of each group for this forward pass.

        Returns None when M == 1 (copy 0, no draw), else an int32 tensor of
        shape ``[G]``: G is the scope's ``num_groups``, or the batch size
        under per-example sampling, or the length of the pinned indices.
        """
        if self.num_submodels == 1:
            return None
        scope = current_scope()
        if scope.pinned and id(self) in scope.pinned:
            pinned = tf.reshape(tf.cast(scope.pinned[id(self)], tf.int32), [-1])
            tf.debugging.assert_less(
                pinned, self.num_submodels,
                message=f"{self.name}: pinned copy index out of range",
            )
            tf.debugging.assert_non_negative(
                pinned, message=f"{self.name}: pinned copy index out of range"
            )
            return pinned
        per_example = (
            self.per_example_sampling
            if scope.per_example is None
            else scope.per_example
        )
        num = tf.shape(inputs)[0] if per_example else scope.num_groups
        return self.draw_indices(num)

    def route(self, inputs, fn, **kwargs):
        """Runs ``fn(x, copy_index, **kwargs)`` with each group's sampled copy.

        Args:
            inputs: the layer's input batch.
            fn: computes the layer output for a batch that uses one copy;
                ``copy_index`` is a Python int or a scalar int tensor.
            **kwargs: passed to `fn` (e.g. ``training``).

        Returns:
            The outputs, in the order of `inputs`.
        """
        share = current_scope().share
        if share is not None and self.num_submodels > 1:
            outputs = share.route(self, fn, inputs, **kwargs)
            if outputs is not None:
                return outputs
        indices = self.sample_indices(inputs)
        if indices is None:
            return fn(inputs, 0, **kwargs)
        if indices.shape.rank == 1 and indices.shape[0] == 1:
            return fn(inputs, indices[0], **kwargs)
        if current_scope().routing == "select":
            return self._route_select(inputs, indices, fn, **kwargs)
        batch = tf.shape(inputs)[0]
        # An empty batch (a replica's share of a short last batch) has no groups.
        groups = tf.maximum(tf.shape(indices)[0], 1)
        tf.debugging.assert_equal(
            batch % groups, 0,
            message=f"{self.name}: batch size must be a multiple of the number "
            "of sampled groups",
        )
        per_example = tf.repeat(indices, batch // groups)
        parts = tf.dynamic_partition(inputs, per_example, self.num_submodels)
        positions = tf.dynamic_partition(
            tf.range(batch), per_example, self.num_submodels
        )
        dynamic = tf.shape(inputs)
        in_shape = tuple(
            dynamic[i] if d is None else d for i, d in enumerate(inputs.shape)
        )
        out_shape = tuple(self.compute_output_shape(in_shape))[1:]
        outputs = []
        for m, part in enumerate(parts):
            # TF's CPU convolution returns a wrongly shaped result for an empty
            # batch, so a copy that no row uses is skipped, not run on zero rows.
            empty = tf.zeros(tf.stack([0, *out_shape]), dtype=self.compute_dtype)
            outputs.append(
                tf.cond(
                    tf.shape(part)[0] > 0,
                    lambda part=part, m=m: fn(part, m, **kwargs),
                    lambda empty=empty: empty,
                )
            )
        return tf.dynamic_stitch(positions, outputs)

    def _route_select(self, inputs, indices, fn, **kwargs):
        """Routing by selection: every copy on every row, one kept per row.

        Uses only ops the builtin TFLite runtime has (no dynamic partition,
        stitch or cond). Inference only: in training a copy's batch-norm
        statistics would be computed over rows that are not its own.
        """
        if kwargs.get("training"):
            raise ValueError(
                f"{self.name}: routing='select' is for inference only. "
                f"Received: training={kwargs['training']!r}"
            )
        batch = tf.shape(inputs)[0]
        groups = tf.shape(indices)[0]
        # Group g covers rows [g*B/G, (g+1)*B/G), as in the partition routing.
        per_row = tf.reshape(
            tf.broadcast_to(indices[:, None], tf.stack([groups, batch // groups])),
            [-1],
        )
        mask = tf.one_hot(per_row, self.num_submodels, dtype=self.compute_dtype)
        outputs = None
        for m in range(self.num_submodels):
            out = fn(inputs, m, **kwargs)
            weight = tf.reshape(mask[:, m], [-1] + [1] * (len(out.shape) - 1))
            outputs = out * weight if outputs is None else outputs + out * weight
        return outputs

    def get_config(self):
        base_config = super().get_config()
        config = {
            "num_submodels": self.num_submodels,
            "mu": list(self.mu),
            "seed": self.seed,
            "per_example_sampling": self.per_example_sampling,
        }
        return {**base_config, **config}
