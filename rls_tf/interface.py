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
mean of ``eval_samples`` fresh draws). Drawing itself is shared by every
implementation (`rls_tf.randomness`: `draw_categorical` for RLS copy and
ensemble member indices, `draw_seeds` for noise seeds), and so is the tail
of their train steps (`rls_tf.train_steps`).

This module sits beside the layers: it imports nothing of ``rls_tf`` but
`rls_tf.validation`.

Example:

>>> import numpy as np
>>> import rls_tf
>>> model = rls_tf.models.build_model("small_cnn", input_shape=(28, 28, 1))
>>> x = np.zeros((4, 28, 28, 1), "float32")
>>> draws = model.draw(5, seed=0)              # [5, L] paths, reproducible
>>> probs = model.outputs(x, draws)            # [5, B, 10]
>>> fresh = model.sample(x, 20)                # [20, B, 10], per example
"""

import abc

import tensorflow as tf

from rls_tf.validation import check_int

__all__ = ["StochasticClassifier"]


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

    def inference_outputs(self, x, draws):
        """`outputs` of given draws at inference, by the model's fastest exact path.

        The defender, the exports and the harness's defender view call this
        rather than `outputs`, so that what is evaluated and served costs what
        the model's own ``predict`` costs (an RLS model computes a layer once
        for the draws that share its path prefix). Same values as
        ``outputs(x, draws)``; the default is exactly that.

        Args:
            x: images ``[B, H, W, C]``.
            draws: ``[D, *draw_shape]`` or ``[D, B, *draw_shape]``.
        """
        return self.outputs(x, draws)

    def defender_outputs(self, x, num_samples=None, seed=None):
        """The defender's N sampled outputs, ``[N, B, K]``; `defend` is their mean.

        Fixed `defender_draws` (an ensemble's members) whatever N; a
        deterministic classifier gives one; per-example draws with `sample`.

        Args:
            x: images ``[B, H, W, C]``.
            num_samples: N (``eval_samples`` if None).
            seed: None (fresh draws) or a ``[2]`` stateless key for the N
                draws (a model whose randomness cannot be pinned draws
                fresh whatever the key).
        """
        fixed = self.defender_draws()
        if fixed is not None:
            return self.inference_outputs(x, fixed)
        n = self.eval_samples if num_samples is None else check_int("num_samples", num_samples)
        n = n if self.is_stochastic else 1
        if self.draws_per_example:
            return self.sample(x, n, seed=seed)
        return self.inference_outputs(x, self.draw(n, seed=seed))

    def defend(self, x, num_samples=None):
        """The defender's inference: mean of N fresh draws, ``[B, K]``."""
        return tf.reduce_mean(self.defender_outputs(x, num_samples), axis=0)

    def describe(self):
        """JSON-able facts about the classifier, recorded with results."""
        return {"stochastic": bool(self.is_stochastic), "draw_shape": list(self.draw_shape)}
