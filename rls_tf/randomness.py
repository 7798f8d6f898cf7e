"""Drawing randomness for stochastic classifiers: categorical draws, noise seeds, key streams.

Every `rls_tf.interface.StochasticClassifier` draws through these, so that
one ``seed`` means the same thing everywhere: None is fresh entropy (a graph
op, new at every call and after every reload; exported graphs seed it from
the operating system), an int a reproducible NumPy draw (the same at every
call), a ``[2]`` int tensor a stateless key (a graph op, for seeded streams
such as EOT).

* `draw_categorical`: independent categorical columns (RLS copy indices,
  ensemble member indices).
* `draw_seeds`: stateless seeds (the draws of the noise defenses).
* `training_seeds`: seeds of a training step (follows the global seed).
* `SeedStream`: a seeded sequence of stateless keys (graph state).

This module imports nothing of ``rls_tf`` but `rls_tf.validation`.

Example:

>>> draws = draw_categorical([(0.5, 0.5), (1.0,)], 4, seed=0)   # [4, 2] int32
>>> keys = draw_seeds(3, seed=0)                                # [3, 2] int32
"""

import numpy as np
import tensorflow as tf

from rls_tf.validation import check_int
from rls_tf.validation import check_seed

__all__ = ["SeedStream", "draw_categorical", "draw_seeds", "is_key", "training_seeds"]

# Seeds drawn as data (noise defenses' draws) are int32 in [0, 2**31 - 1).
_SEED_MAX = 2**31 - 1


def is_key(seed):
    """Whether `seed` is a stateless key (a ``[2]`` int tensor or array)."""
    if tf.is_tensor(seed) or isinstance(seed, (np.ndarray, tf.Variable)):
        return tuple(seed.shape) == (2,)
    return False


def draw_categorical(probabilities, num, seed=None, stream=None):
    """Draws ``num`` rows of independent categorical columns: int32 ``[num, C]``.

    Column j is drawn from Categorical(``probabilities[j]``). Columns with
    one category are all zeros and use no randomness.

    Args:
        probabilities: sequence of C probability vectors (e.g. each RLS
            layer's ``mu``).
        num: number of rows (int, or a scalar int tensor unless `seed` is
            an int).
        seed: None: fresh entropy, a graph op (``Multinomial`` with op seeds
            (0, 0), which TF and TFLite seed from the operating system on
            every load, whatever global seed is set); an int: a reproducible
            draw, the same for the same seed (NumPy's PCG64, column after
            column, so results recorded by earlier versions reproduce); a
            ``[2]`` int tensor: a stateless key, column j of the columns with
            more than one category keyed on ``fold_in(key, j)`` (a graph op).
        stream: with ``seed=None`` only: an int op seed: every load of an
            exported graph replays the same sequence of draws, call after
            call (column j's op seeds are ``(stream, j + 1)``).

    Returns:
        int32 tensor ``[num, C]``.
    """
    probabilities = [tuple(float(p) for p in probs) for probs in probabilities]
    if seed is not None and not is_key(seed):
        seed = check_seed("seed", seed)
        num = check_int("num", num, minimum=0)
        rng = np.random.default_rng(seed)
        columns = [rng.choice(len(p), size=num, p=p) for p in probabilities]
        if not columns:
            return tf.zeros([num, 0], tf.int32)
        return tf.constant(np.stack(columns, axis=1).astype(np.int32))
    if stream is not None:
        if seed is not None:
            raise ValueError("`stream` applies to unseeded draws only. "
                             f"Received: seed={seed!r}, stream={stream!r}")
        stream = check_seed("stream", stream)
    columns = []
    rank = 0
    for probs in probabilities:
        if len(probs) == 1:
            columns.append(tf.zeros(tf.reshape(num, [1]), tf.int32))
            continue
        with np.errstate(divide="ignore"):
            logits = tf.constant(np.log(np.asarray([probs], np.float32)))
        if seed is not None:
            indices = tf.random.stateless_categorical(
                logits, num, tf.random.experimental.stateless_fold_in(
                    tf.cast(seed, tf.int64), rank), dtype=tf.int32)
        else:
            # The raw op keeps the op seeds exactly as given: the public
            # wrapper would derive fixed seeds from a global seed if one
            # were set, and every server would replay the same draws.
            seed1, seed2 = (0, 0) if stream is None else (stream, rank + 1)
            indices = tf.raw_ops.Multinomial(logits=logits, num_samples=num, seed=seed1,
                                             seed2=seed2, output_dtype=tf.int32)
        columns.append(tf.reshape(indices, [-1]))
        rank += 1
    if not columns:
        return tf.zeros(tf.stack([num, 0]), tf.int32)
    return tf.stack(columns, axis=1)


def draw_seeds(num, seed=None, stream=None):
    """Draws ``num`` stateless seeds, int32 ``[num, 2]`` (draws of noise defenses).

    Same `seed` / `stream` semantics as `draw_categorical`: None is fresh
    entropy (a ``RandomUniformInt`` op with op seeds (0, 0), or
    ``(stream, 1)``), an int a reproducible NumPy draw, a ``[2]`` tensor a
    stateless key.
    """
    if seed is not None and not is_key(seed):
        seed = check_seed("seed", seed)
        num = check_int("num", num, minimum=0)
        values = np.random.default_rng(seed).integers(0, _SEED_MAX, size=(num, 2))
        return tf.constant(values.astype(np.int32))
    shape = tf.stack([num, 2])
    if seed is not None:
        if stream is not None:
            raise ValueError("`stream` applies to unseeded draws only. "
                             f"Received: seed={seed!r}, stream={stream!r}")
        return tf.random.stateless_uniform(shape, tf.cast(seed, tf.int64), minval=0,
                                           maxval=_SEED_MAX, dtype=tf.int32)
    seed1, seed2 = (0, 0) if stream is None else (check_seed("stream", stream), 1)
    return tf.raw_ops.RandomUniformInt(shape=shape, minval=tf.constant(0, tf.int32),
                                       maxval=tf.constant(_SEED_MAX, tf.int32),
                                       seed=seed1, seed2=seed2)


def training_seeds(num):
    """``[num, 2]`` int32 stateless seeds for the noise of a training step.

    A stateful ``tf.random.uniform``: it follows the global seed, as RLS
    layers' ``tf.random.categorical`` path draws do, so a seeded ``train.py``
    run repeats bit for bit; with no global seed it is fresh at every call
    (`draw_seeds`' ``RandomUniformInt(0, 0)`` ignores the global seed, which is
    right for inference and exports but made seeded RSE training
    unrepeatable).
    """
    return tf.random.uniform(tf.stack([num, 2]), minval=0, maxval=_SEED_MAX, dtype=tf.int32)


class SeedStream:
    """A seeded sequence of stateless keys, one per call (graph state).

    Every `next_key` returns ``fold_in([0, seed], n)`` for the n-th call since
    the last `reseed`: fresh keys at every call of a traced function, the
    same sequence for the same seed (EOT draws that shards repeat exactly).

    Args:
        seed: initial seed (int).
    """

    def __init__(self, seed=0):
        self.seed = tf.Variable([0, check_seed("seed", seed, allow_none=False)],
                                dtype=tf.int64, trainable=False, name="stream_seed")
        self.calls = tf.Variable(0, dtype=tf.int64, trainable=False, name="stream_calls")

    def reseed(self, seed):
        """Restarts the sequence from `seed`."""
        self.seed.assign([0, check_seed("seed", seed, allow_none=False)])
        self.calls.assign(0)

    def next_key(self):
        """The next ``[2]`` int64 key (advances the stream)."""
        return tf.random.experimental.stateless_fold_in(
            tf.convert_to_tensor(self.seed), self.calls.assign_add(1))
