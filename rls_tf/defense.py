"""The stochastic-classifier interface every evaluated or exported model speaks.

A *defense* here is a classifier whose output may depend on randomness: RLS
draws a path of weight copies, a noise defense draws noise, an ensemble may
draw a member; a plain network draws nothing. The evaluation harness (threat
models, the defender, interrater agreement, sharding) and both exports see a
defense only through `StochasticClassifier`, so a new kind of randomness
needs a new implementation of three methods, not a new harness:

* ``draw(num_draws, seed=None)``: ``[D, *draw_shape]`` *draws*, tensors that
  fix all of the classifier's randomness for one forward pass (an RLS path:
  one copy index per RLS layer). ``seed=None`` draws fresh entropy (a graph
  op, new values at every call and after every reload); an int seed gives a
  reproducible set, the same at every call; a ``[2]`` int tensor is a
  stateless key (graph op, used for seeded streams such as EOT).
* ``outputs(x, draws)``: ``[D, B, K]`` class probabilities of the D draws,
  deterministic given the draws. ``draws`` is ``[D, *draw_shape]`` (draw d
  on the whole batch) or ``[D, B, *draw_shape]`` (example b of row d uses
  its own draw).
* ``is_stochastic``: False when ``outputs`` ignores the draws (then every
  consumer may use one draw).

The base class derives the rest from those: `sample` (D fresh per-example
draws in one call, the EOT forward), `defend` (the defender's inference: the
mean of ``eval_samples`` fresh draws). `draw_categorical` is the one
implementation of drawing categorical draws (RLS copy indices, ensemble
member indices), `draw_seeds` of drawing noise seeds (noise defenses),
shared by every implementation.

This module sits beside the layers: it imports nothing of ``rls_tf`` but
`rls_tf.validation`.

Example:

>>> import rls_tf
>>> model = rls_tf.models.build_model("small_cnn", input_shape=(28, 28, 1))
>>> draws = model.draw(5, seed=0)              # [5, L] paths, reproducible
>>> probs = model.outputs(x, draws)            # [5, B, 10]
>>> fresh = model.sample(x, 20)                # [20, B, 10], per example
"""

import abc

import numpy as np
import tensorflow as tf
# Keras' own train_step divides the logged loss by the replica count the same
# way; it has no public name (the one private import of the train steps).
from keras.src.losses.loss import unscale_loss_for_distribution

from rls_tf.validation import check_int
from rls_tf.validation import check_seed

__all__ = ["StochasticClassifier", "draw_categorical", "draw_seeds", "is_key", "SeedStream",
           "optimizer_step", "tile_batch", "track_loss", "training_seeds"]

# Seeds drawn as data (noise defenses' draws) are int32 in [0, 2**31 - 1).
_SEED_MAX = 2**31 - 1


def tile_batch(x, times):
    """Stacks `times` copies of the batch: rows [s*B, (s+1)*B) are copy s."""
    return tf.tile(x, [times] + [1] * (len(x.shape) - 1))


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


class StochasticClassifier(abc.ABC):
    """Interface of a classifier whose forward pass may be random.

    Implementations (mixed into a `keras.Model`) define `is_stochastic`,
    `draw_shape`, `image_shape`, `draw`, `outputs` and an ``eval_samples``
    attribute (N, the draws the defender averages); `sample`, `defend` and
    `draws_per_example` come from here. Outputs are class probabilities.

    Contract (checked for every implementation by
    ``tests/test_defense_contract.py``): outputs of the same draws are equal;
    fresh draws differ for a stochastic classifier; per-example draws equal
    the per-draw outputs row by row; a deterministic classifier ignores its
    draws.
    """

    @property
    @abc.abstractmethod
    def is_stochastic(self):
        """Whether two forward passes can differ."""

    @property
    @abc.abstractmethod
    def draw_shape(self):
        """Shape of one draw (a tuple of ints)."""

    @property
    @abc.abstractmethod
    def image_shape(self):
        """``(H, W, C)`` of the images."""

    @abc.abstractmethod
    def draw(self, num_draws, seed=None):
        """``[num_draws, *draw_shape]`` int32 draws (see the module docstring)."""

    @abc.abstractmethod
    def outputs(self, x, draws, training=False):
        """``[D, B, K]`` probabilities of the given draws (deterministic)."""

    @property
    def draws_per_example(self):
        """Whether the defender's own inference draws per example."""
        return False

    @property
    def pinnable(self):
        """Whether one draw is a sub-model other than the defender's inference.

        True for every stochastic classifier (a draw is one sampled model)
        and for a deterministic ensemble whose draws name its members: the
        ``paper`` and ``multi_sample`` threat models then attack S pinned
        draws. False (a plain network): every threat model is white-box.
        """
        return self.is_stochastic

    def defender_draws(self):
        """Fixed draws the defender always averages (e.g. every member), or None.

        None (the default): the defender averages ``eval_samples`` fresh
        draws (one repeat if deterministic). A tensor ``[N, *draw_shape]``:
        the defender is exactly the mean of those draws' outputs, and its
        accuracy against N is that of their first n.
        """
        return None

    def sample(self, x, num_draws, seed=None):
        """``[D, B, K]``: D fresh draws per example, in one call (EOT).

        Args:
            x: images ``[B, H, W, C]``.
            num_draws: D (static int).
            seed: None (fresh) or a ``[2]`` stateless key.
        """
        num_draws = check_int("num_draws", num_draws)
        x = tf.convert_to_tensor(x)
        batch = tf.shape(x)[0]
        draws = self.draw(num_draws * batch, seed)
        draws = tf.reshape(draws, tf.concat([[num_draws, batch], tf.constant(
            self.draw_shape, tf.int32)], axis=0))
        return self.outputs(x, draws)

    def defend(self, x, num_samples=None):
        """The defender's inference: mean of N fresh draws, ``[B, K]``."""
        fixed = self.defender_draws()
        if fixed is not None:
            return tf.reduce_mean(self.outputs(x, fixed), axis=0)
        n = self.eval_samples if num_samples is None else check_int("num_samples", num_samples)
        n = n if self.is_stochastic else 1
        if self.draws_per_example:
            return tf.reduce_mean(self.sample(x, n), axis=0)
        return tf.reduce_mean(self.outputs(x, self.draw(n)), axis=0)

    def describe(self):
        """JSON-able facts about the classifier, recorded with results."""
        return {"stochastic": bool(self.is_stochastic), "draw_shape": list(self.draw_shape)}


def track_loss(model, loss, batch):
    """Logs `loss` in the model's loss tracker (per replica, weighted by the batch size).

    Args:
        model: a `keras.Model` (its ``_loss_tracker``, as Keras' own steps).
        loss: scalar loss of the step.
        batch: the step's input batch (its first dimension weighs the mean).
    """
    model._loss_tracker.update_state(  # pylint: disable=protected-access
        unscale_loss_for_distribution(loss), sample_weight=tf.shape(batch)[0])


def optimizer_step(model, loss_fn, batch):
    """One optimizer step on ``loss_fn()`` under one `tf.GradientTape`.

    The tail every classifier's ``train_step`` shares (Keras' TensorFlow
    trainer order): compute the loss under the tape, log it unscaled
    (`track_loss`), scale it for the optimizer (loss scaling), then the
    gradients of every trainable weight and ``optimizer.apply``.

    Args:
        model: the `keras.Model` being trained (compiled).
        loss_fn: ``() -> (loss, aux)``, run under the tape; `aux` is
            anything the caller needs afterwards (e.g. the predictions).
        batch: the step's input batch (weighs the logged loss).

    Returns:
        `aux`.

    Example:

    >>> aux = optimizer_step(model, lambda: (loss_of(x), None), x)  # doctest: +SKIP
    """
    with tf.GradientTape() as tape:
        loss, aux = loss_fn()
        track_loss(model, loss, batch)
        if model.optimizer is not None:
            loss = model.optimizer.scale_loss(loss)
    gradients = tape.gradient(loss, model.trainable_weights)
    model.optimizer.apply(gradients, model.trainable_weights)
    return aux
