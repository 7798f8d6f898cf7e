"""Noise defenses whose every random draw is one stateless seed.

A *seeded noise* defense is a Keras functional network (images in [-1, 1]
-> softmax probabilities) with some `SeededNoiseLayer` layers in it: RSE's
Gaussian noise (`rls_tf.defenses.rse`), SAP's activation pruning
(`rls_tf.defenses.sap`). `SeededNoiseModel` wraps such a network as a
`rls_tf.interface.StochasticClassifier`:

* **A draw is a stateless seed**, int32 ``[2]`` (``draw_shape == (2,)``),
  drawn by `rls_tf.randomness.draw_seeds` (None: fresh entropy, a graph op;
  int: reproducible; ``[2]`` tensor: a stateless key). Given the seed, a
  forward pass is deterministic: noise layer j draws its randomness with
  the stateless key ``fold_in(seed, j)`` (j: the layer's position in
  `SeededNoiseModel.noise_layers`), so a traced function takes new draws as
  data and never retraces.
* **How a seed maps onto the batch** is said by a `noise_scope` (thread
  local, like `rls_tf.layers.sampling_scope`): ``seeds`` ``[G, 2]`` split
  the batch into G equal contiguous blocks, block g drawing from
  ``seeds[g]``. One seed for the whole batch (G=1) is one draw of the
  noise of every row; D seeds on the batch tiled D times are D draws;
  D*B seeds on the tiled batch (blocks of one row) are per-example draws,
  and row b then gives exactly what a batch of one with its seed gives.
* **No scope** (training, a plain ``network(x)``): every noise layer draws
  a seed itself. In a training pass (``training=True``) with
  `rls_tf.randomness.training_seeds`, a stateful op that follows the global
  seed as the RLS layers' training draws do, so a seeded ``train.py`` run
  repeats bit for bit (fresh at every call without a global seed);
  otherwise with `draw_seeds` and op seeds (0, 0): entropy of the operating
  system, new at every call, never a seed baked in at trace time, whatever
  global seed is set.

This module builds on `rls_tf.interface`, `rls_tf.randomness`,
`rls_tf.train_steps`, `rls_tf.validation` and (for the adversarial train
step) `rls_tf.adversarial` only.

Example:

>>> import keras, numpy as np
>>> from rls_tf.defenses.rse import RSENoise, RSEModel
>>> inputs = keras.Input((8, 8, 1))
>>> h = keras.layers.Flatten()(RSENoise(0.4)(inputs))   # noise, then the network
>>> outputs = keras.layers.Dense(3, activation="softmax")(h)
>>> model = RSEModel(keras.Model(inputs, outputs))
>>> x = np.zeros((2, 8, 8, 1), "float32")
>>> model.outputs(x, model.draw(5, seed=0)).shape      # [5, B, K], reproducible
TensorShape([5, 2, 3])
>>> model.sample(x, 20).shape                          # [20, B, K], EOT
TensorShape([20, 2, 3])
"""

import contextlib
import dataclasses
from typing import Any, Mapping

import keras
import tensorflow as tf

from rls_tf import adversarial
from rls_tf.interface import StochasticClassifier
from rls_tf.randomness import draw_seeds
from rls_tf.randomness import is_key
from rls_tf.randomness import training_seeds
from rls_tf.scopes import ScopeStack
from rls_tf.train_steps import tile_batch
from rls_tf.validation import check_choice
from rls_tf.validation import check_int

__all__ = ["FORWARDS", "NoiseScope", "SeededNoiseLayer", "SeededNoiseModel",
           "current_noise_scope", "noise_scope"]

FORWARDS = ("loop", "tiled")


# -- the scope -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NoiseScope:
    """What the seeded noise layers called inside a scope draw.

    Attributes:
        seeds: int tensor ``[G, 2]``: block g of the batch (G equal,
            contiguous blocks) draws from ``seeds[g]``.
        indices: ``{id(layer): j}``: layer j folds j into its block's seed.
    """

    seeds: Any
    indices: Mapping[int, int]

    def index_of(self, layer):
        if id(layer) not in self.indices:
            raise ValueError(
                f"The noise layer {layer.name!r} was called inside a noise_scope that does "
                "not index it (a layer outside the scope's network?). Received: "
                f"{len(self.indices)} indexed layers")
        return self.indices[id(layer)]


_STACK = ScopeStack()


def current_noise_scope():
    """The innermost active `NoiseScope`, or None (fresh unseeded noise)."""
    return _STACK.current()


@contextlib.contextmanager
def noise_scope(seeds, indices):
    """Seeds the noise layers called inside the block (see the module docstring).

    Args:
        seeds: int ``[G, 2]`` tensor or array (G static or dynamic).
        indices: ``{id(layer): j}`` for every noise layer that may be called.
    """
    seeds = tf.cast(tf.convert_to_tensor(seeds), tf.int64)
    if seeds.shape.rank != 2 or seeds.shape[-1] != 2:
        raise ValueError(f"`seeds` must have shape [num_blocks, 2]. "
                         f"Received: seeds.shape={seeds.shape}")
    with _STACK.push(NoiseScope(seeds=seeds, indices=dict(indices))) as scope:
        yield scope


def _fold_in(seed, index):
    return tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), index)


# -- the layer -------------------------------------------------------------------


class SeededNoiseLayer(keras.layers.Layer):
    """Base class of a weightless layer whose randomness comes from one seed.

    Subclasses implement `apply_block` (and `get_config`); this class maps
    the scope's seeds onto the batch (see the module docstring): one seed
    for the whole batch calls `apply_block` once; G seeds call it on each of
    the G blocks (``tf.map_fn``); no scope calls it with a fresh seed. The
    randomness is on in training and at inference alike.
    """

    @property
    def is_random(self):
        """False when the layer is the identity (e.g. a noise std of 0)."""
        return True

    def apply_block(self, inputs, seed):
        """Applies the randomness to `inputs` (one block) from ONE stateless key.

        Args:
            inputs: the block ``[n, ...]``.
            seed: int64 ``[2]`` stateless key.

        Returns:
            A tensor of the shape and dtype of `inputs`; the same for the
            same inputs and seed.
        """
        raise NotImplementedError

    def call(self, inputs, training=None):
        if not self.is_random:
            return inputs
        scope = current_noise_scope()
        if scope is None:
            # A training pass follows the global seed (a seeded run repeats);
            # any other unscoped call (e.g. a direct `network(x)` that
            # someone exports) never bakes a seed into its graph.
            seeds = training_seeds(1) if training else draw_seeds(1)
            return self.apply_block(inputs, tf.cast(seeds[0], tf.int64))
        index = scope.index_of(self)
        seeds = scope.seeds
        if seeds.shape[0] == 1:
            return self.apply_block(inputs, _fold_in(seeds[0], index))
        shape = tf.shape(inputs)
        blocks = tf.reshape(inputs, tf.concat([[tf.shape(seeds)[0], -1], shape[1:]], axis=0))
        outputs = tf.map_fn(
            lambda args: self.apply_block(args[0], _fold_in(args[1], index)),
            (blocks, seeds), fn_output_signature=tf.TensorSpec(None, inputs.dtype))
        return tf.reshape(outputs, shape)

    def compute_output_shape(self, input_shape):
        return input_shape


# -- the model -------------------------------------------------------------------



@keras.saving.register_keras_serializable(package="rls_tf")
class SeededNoiseModel(keras.Model, StochasticClassifier):
    """A network with seeded noise layers, as a `StochasticClassifier`.

    * ``draw(D, seed)``: D stateless seeds ``[D, 2]`` (`draw_seeds`).
    * ``outputs(x, draws)``: ``[D, B, K]``, deterministic given the draws;
      draws ``[D, 2]`` (draw d on the whole batch) or ``[D, B, 2]`` (example
      b of row d on its own seed, equal to a batch of one with that seed).
    * ``sample(x, D, seed)``: D fresh per-example draws in one network call
      on the batch tiled D times under ONE key (None: a fresh one): every
      row's noise is independent of every other's.
    * Inference (``model(x)``, `predict`, `evaluate`, `defend`): the mean
      softmax of ``eval_samples`` fresh draws (``eval_forward``: "loop", the
      default, a graph loop of N network calls on the batch: the memory of
      one pass and one copy of the network in the graph; or "tiled", one
      call on the batch tiled N times).
    * Training (`fit`, Keras' own ``train_step``): ``model(x,
      training=True)`` is one network pass with fresh noise in every layer.
      Adversarial training (`rls_tf.adversarial.enable`): the step draws
      one seed; PGD examples are crafted against the network with that
      noise (inference mode), and the loss is taken with the same noise.

    The defender's draws are whole-batch seeds (``draws_per_example``
    False), so the evaluation's defender pins reproducible draws; within one
    seed every example's noise is independent anyway.

    Exports: `rls_tf.export.export_saved_model` works (stateless random ops
    in the SavedModel graph). ``tflite_builtin_randomness = False``: the
    ops of this randomness are not TFLite builtins (the converter asks for
    Flex kernels for ``RandomUniformInt``, `draw_seeds`' fresh seeds, and
    for the stateless random ops: ``StatelessRandomGetKeyCounter`` /
    ``StatelessRandomUniformFullIntV2`` of ``fold_in``, RSE's
    ``StatelessRandomNormalV2``, SAP's ``StatelessRandomUniformV2``), so a
    builtin-only TFLite export cannot hold it.

    Args:
        network: a functional `keras.Model`, images -> class probabilities,
            containing `SeededNoiseLayer` layers.
        eval_samples: N, fresh draws averaged at inference.
        eval_forward: "loop" or "tiled" (see above).
        **kwargs: `keras.Model` arguments (e.g. `name`).
    """

    tflite_builtin_randomness = False
    defense_name = "seeded_noise"
    _noise_layer_class = SeededNoiseLayer

    def __init__(self, network, eval_samples=10, eval_forward="loop", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(network, keras.Model):
            raise ValueError("`network` must be a keras.Model. "
                             f"Received: network of type {type(network).__name__}")
        self.network = network
        self.eval_samples = check_int("eval_samples", eval_samples)
        self.eval_forward = check_choice("eval_forward", eval_forward, FORWARDS)
        cls = self._noise_layer_class
        if not self.noise_layers:
            raise ValueError(
                f"`network` must contain {cls.__name__} layers ({type(self).__name__}). "
                f"Received: network {network.name!r} without any")
        self.built = network.built

    # -- structure ---------------------------------------------------------------

    @property
    def noise_layers(self):
        """The network's noise layers in a fixed order (layer j folds in j)."""
        return [layer for layer in self.network._flatten_layers(include_self=False)
                if isinstance(layer, self._noise_layer_class)]

    def _indices(self):
        return {id(layer): j for j, layer in enumerate(self.noise_layers)}

    def _check_images(self, x):
        expected = self.network.input_shape[1:]
        shape = tuple(x.shape[1:])
        if len(shape) != len(expected) or any(
                e is not None and s is not None and e != s for e, s in zip(expected, shape)):
            raise ValueError(
                f"Images must have shape [batch, {', '.join(map(str, expected))}]. "
                f"Received: x.shape={tuple(x.shape)}")

    # -- the StochasticClassifier interface ----------------------------------------

    @property
    def is_stochastic(self):
        return any(layer.is_random for layer in self.noise_layers)

    @property
    def draw_shape(self):
        return (2,)

    @property
    def image_shape(self):
        return tuple(self.network.input_shape[1:])

    def draw(self, num_draws, seed=None, stream=None):
        """``[num_draws, 2]`` int32 seeds; see `rls_tf.randomness.draw_seeds`.

        Args:
            num_draws: number of draws (int, or a scalar int tensor).
            seed: None (fresh entropy, a graph op), an int (reproducible)
                or a ``[2]`` stateless key.
            stream: op seed of an unseeded draw in an exported graph.
        """
        return draw_seeds(num_draws, seed=seed, stream=stream)

    def _run(self, x, seeds, training=False):
        """One network call on `x` with ``seeds`` ``[G, 2]`` over G blocks."""
        with noise_scope(seeds, self._indices()):
            return self.network(x, training=training)

    def _broadcast(self, x, num, training):
        out = self.network(x, training=training)
        return tf.broadcast_to(out[None], tf.concat([[num], tf.shape(out)], axis=0))

    def outputs(self, x, draws, training=False, forward="loop"):
        """Outputs of the given draws, ``[D, B, K]`` (deterministic).

        Args:
            x: images ``[B, H, W, C]``.
            draws: int ``[D, 2]`` (draw d on the whole batch) or ``[D, B, 2]``
                (example b of row d on its own seed); D must be static.
            training: passed to the network (batch-norm mode).
            forward: "loop" (D network calls on the batch, a ``tf.map_fn``
                over the draws) or "tiled" (one call on the batch tiled D
                times); the same outputs.

        Returns:
            Tensor ``[D, B, num_classes]``.
        """
        check_choice("forward", forward, FORWARDS)
        x = tf.convert_to_tensor(x)
        self._check_images(x)
        draws = tf.convert_to_tensor(draws)
        if (not draws.dtype.is_integer or draws.shape.rank not in (2, 3)
                or draws.shape[-1] != 2):
            raise ValueError(
                "`draws` must be int seeds of shape [num_draws, 2] or [num_draws, batch, 2]. "
                f"Received: draws.shape={draws.shape}, dtype={draws.dtype.name}")
        num = draws.shape[0]
        if num is None:
            raise ValueError(f"The number of draws must be static. Received: "
                             f"draws.shape={draws.shape}")
        per_example = draws.shape.rank == 3
        if per_example and None not in (draws.shape[1], x.shape[0]) and (
                draws.shape[1] != x.shape[0]):
            raise ValueError(
                f"Per-example draws need one seed per image. Received: "
                f"draws.shape={draws.shape} for x.shape={tuple(x.shape)}")
        if not self.is_stochastic:
            return self._broadcast(x, num, training)
        draws = tf.cast(draws, tf.int64)
        if num == 1:
            return self._run(x, draws[0] if per_example else draws[0][None], training)[None]
        if forward == "loop":
            # A graph loop over the draws: one copy of the network in the
            # graph whatever D (an unrolled loop would trace D copies).
            return tf.map_fn(
                lambda d: self._run(x, d if per_example else d[None], training), draws,
                fn_output_signature=tf.TensorSpec((None, *self.network.output_shape[1:]),
                                                  self.network.outputs[0].dtype))
        batch = tf.shape(x)[0]
        out = self._run(tile_batch(x, num), tf.reshape(draws, [-1, 2]), training)
        return tf.reshape(out, [num, batch, out.shape[-1]])

    def _key(self, seed):
        if seed is None:
            return tf.cast(draw_seeds(1)[0], tf.int64)
        if is_key(seed):
            return tf.cast(seed, tf.int64)
        return tf.cast(draw_seeds(1, seed=seed)[0], tf.int64)

    def _fresh(self, x, num, seed=None, forward="tiled", training=False):
        """``[num, B, K]``: `num` independent per-example draws from one key."""
        x = tf.convert_to_tensor(x)
        self._check_images(x)
        if not self.is_stochastic:
            return self._broadcast(x, num, training)
        key = self._key(seed)
        if forward == "loop" or num == 1:
            return self.outputs(x, draw_seeds(num, seed=key), training=training, forward="loop")
        batch = tf.shape(x)[0]
        out = self._run(tile_batch(x, num), key[None], training)
        return tf.reshape(out, [num, batch, out.shape[-1]])

    def sample(self, x, num_draws, seed=None):
        """``[D, B, K]``: D fresh per-example draws in one call (EOT).

        The batch tiled D times runs under one key (`seed`, or a fresh one
        if None), so the noise of every row of every draw is independent;
        the same key gives the same outputs.

        Args:
            x: images ``[B, H, W, C]``.
            num_draws: D (static int).
            seed: None (fresh), a ``[2]`` stateless key, or an int.
        """
        num_draws = check_int("num_draws", num_draws)
        return self._fresh(x, num_draws, seed=seed, forward="tiled")

    def defend(self, x, num_samples=None):
        """The defender's inference: mean of N fresh draws, ``[B, K]``."""
        n = self.eval_samples if num_samples is None else check_int("num_samples", num_samples)
        n = n if self.is_stochastic else 1
        return tf.reduce_mean(self._fresh(x, n, forward=self.eval_forward), axis=0)

    def describe(self):
        return {"defense": self.defense_name, "stochastic": bool(self.is_stochastic),
                "draw_shape": list(self.draw_shape), "eval_samples": int(self.eval_samples),
                "noise_layers": [layer.name for layer in self.noise_layers]}

    # -- Keras ---------------------------------------------------------------------

    # Supported by `rls_tf.adversarial` (see `train_step`); SAP refuses it.
    adversarial_training_support = True

    def train_step(self, data):
        switch = adversarial.active(self)
        if switch is None:
            return super().train_step(data)
        return adversarial.train_step(self, data, switch)

    # -- adversarial training (`rls_tf.adversarial.train_step`) ---------------
    # One noise draw for the step, the same for the crafting (inference mode)
    # and for the loss; ``craft_on`` has no effect (one draw per step).

    def adversarial_draws(self, x, craft_on):  # pylint: disable=unused-argument
        return tf.cast(training_seeds(1), tf.int64)

    def adversarial_probs(self, images, draws, craft_on):  # pylint: disable=unused-argument
        return self._run(images, draws, training=False)

    def adversarial_loss(self, x, y, sample_weight, draws):
        y_pred = self._run(x, draws, training=True)
        return self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                 training=True), y_pred

    def adversarial_logs(self, x_adv, y, sample_weight, aux):
        return self.compute_metrics(x_adv, y, aux, sample_weight=sample_weight)

    def call(self, inputs, training=False):
        if training:
            # One pass, fresh noise in every layer (no scope).
            return self.network(inputs, training=True)
        return self.defend(inputs)

    def build(self, input_shape):
        # The network is built already; building the wrapper only marks it so.
        self.built = True

    def compute_output_shape(self, input_shape):
        return self.network.compute_output_shape(input_shape)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "network": keras.saving.serialize_keras_object(self.network),
            "eval_samples": self.eval_samples,
            "eval_forward": self.eval_forward,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(
            config["network"], custom_objects=custom_objects)
        return cls(**config)
