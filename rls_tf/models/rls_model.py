"""`RLSModel`: group training of K sampled models, N-sample inference.

The model (structure, the StochasticClassifier interface, the sampled
forward, serialization) is here; its training steps are its base
`rls_tf.models.rls_training.RLSTraining`.
"""

import warnings

import keras
import numpy as np
import tensorflow as tf

from rls_tf.interface import StochasticClassifier
from rls_tf.randomness import draw_categorical
from rls_tf.train_steps import TRAIN_FORWARDS
from rls_tf.train_steps import tile_batch
from rls_tf.layers.base import RLSLayer
from rls_tf.layers.sampling import current_scope
from rls_tf.layers.sampling import sampling_scope
from rls_tf.models.prefix_sharing import plan_prefix_sharing
from rls_tf.models.rls_training import RLSTraining
from rls_tf.validation import check_int

__all__ = ["RLSModel", "TRAIN_FORWARDS"]


@keras.saving.register_keras_serializable(package="rls_tf")
class RLSModel(RLSTraining, keras.Model, StochasticClassifier):
    """An ensemble of sampled models built from one network of RLS layers.

    Implements `rls_tf.interface.StochasticClassifier`: a draw is a *path*,
    one copy index per RLS layer (``draw_shape == (L,)``, column j:
    ``rls_layers[j]``), so the harness and the exports see RLS like any
    other defense.

    Wraps a network whose weighted layers are RLS layers and which outputs
    class probabilities (softmax). Each forward pass of the network is one
    *sampled model*: every RLS layer picks one of its M weight copies.

    * Training (`fit` / `train_step`): K sampled models run on the same batch
      under one `tf.GradientTape`; the loss compiled into the model is applied
      to their mean prediction ``F(x) = mean_k f_k(x)`` (the paper's group
      optimization, eq. 6-8). With the default
      ``sparse_categorical_crossentropy`` this is the cross-entropy of the
      mean of the K softmax outputs; `rls_tf.losses.GroupMSE` gives eq. 7's
      MSE form. Extra metric ``diversity``: mean pairwise disagreement of the
      K samples' predicted classes (of the N samples in `evaluate`).
    * Inference (`predict`, `evaluate`, ``model(x)``): the mean of N sampled
      models (``eval_samples``), in one graph call: N network calls
      (``eval_forward="loop"``, default, measured faster on CPU) or one call
      on the batch tiled N times (``"tiled"``).

    * Adversarial training (`rls_tf.adversarial.enable`, ``train.py
      --adv_train=pgd``): the step draws its K paths once, crafts PGD
      examples against the mean prediction of those K sampled models (or
      one of them) with the network in inference mode, then takes the
      group loss of the same K paths on the adversarial batch.

    ``train_forward="loop"`` (default) calls the network K times inside the
    tape, each call one sampled model; ``"tiled"`` runs the K forwards as one
    network call on the batch tiled K times (each block one sampled model,
    routed through the per-copy partitioning of the RLS layers).
    `benchmarks/train_step_benchmark.py` measures both against a naive
    reference; on CPU the loop is the faster (the partitioning copies every
    activation), see benchmarks/README.md. In the tiled form a
    copy's batch-norm statistics are computed over all the rows routed to it,
    across the K samples; in the loop form over each sample separately.

    When every RLS layer has M=1 the samples are identical, so K and N are
    treated as 1: the model trains and predicts exactly like the plain Keras
    network (the undefended baseline).

    Args:
        network: a `keras.Model` made of RLS (and weightless Keras) layers
            that maps images to class probabilities.
        num_samples: K, sampled models per training step.
        eval_samples: N, sampled models averaged at inference.
        train_forward: "tiled" or "loop", see above.
        per_example_sampling: None to use each layer's own setting, or a bool
            to override it (True: every example draws its own path).
        share_prefixes: in the "loop" forwards, reuse a layer's output
            between the sampled models of one step whose sampled copies agree
            up to that layer (exact, gradients included; only the batch-norm
            moving statistics of a copy are updated once per distinct prefix).
            Off automatically where reuse would not be exact (see
            `_prefix_sharing`).
        eval_forward: "loop" or "tiled", how the N inference samples run.
        **kwargs: `keras.Model` arguments (e.g. `name`).

    Example:

    >>> import numpy as np
    >>> from rls_tf.models import RLSModel, build_network
    >>> network = build_network("small_cnn", num_submodels=2, num_classes=10,
    ...                         input_shape=(28, 28, 1))
    >>> model = RLSModel(network, num_samples=3, eval_samples=10)
    >>> model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
    ...               metrics=["accuracy"])
    >>> # model.fit(train_ds, epochs=5); model.predict(x_test)
    >>> x = np.zeros((4, 28, 28, 1), "float32")
    >>> probs = model.outputs(x, model.draw(5, seed=0))   # [5, 4, 10], 5 given draws
    """

    def __init__(
        self,
        network,
        num_samples=3,
        eval_samples=10,
        train_forward="loop",
        per_example_sampling=None,
        eval_forward="loop",
        share_prefixes=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(network, keras.Model):
            raise ValueError(
                "`network` must be a keras.Model. "
                f"Received: network={type(network).__name__}"
            )
        self.network = network
        self.num_samples = check_int("num_samples", num_samples)
        self.eval_samples = check_int("eval_samples", eval_samples)
        self.train_forward = self._check_train_forward(train_forward)
        self.eval_forward = self._check_train_forward(eval_forward, "eval_forward")
        if per_example_sampling is not None and not isinstance(
            per_example_sampling, bool
        ):
            raise ValueError(
                "`per_example_sampling` must be None or a bool. "
                f"Received: per_example_sampling={per_example_sampling!r}"
            )
        self.per_example_sampling = per_example_sampling
        self.share_prefixes = bool(share_prefixes)
        self.diversity_tracker = keras.metrics.Mean(name="diversity")
        # The wrapper adds no weights: it is built when its network is.
        self.built = network.built

    @staticmethod
    def _check_train_forward(value, name="train_forward"):
        if value not in TRAIN_FORWARDS:
            raise ValueError(
                f"`{name}` must be one of {TRAIN_FORWARDS}. "
                f"Received: {name}={value!r}"
            )
        return value

    # -- structure ----------------------------------------------------------

    @property
    def rls_layers(self):
        """The network's RLS layers in a fixed order (the columns of a path)."""
        return [
            layer for layer in self.network._flatten_layers(include_self=False)
            if isinstance(layer, RLSLayer)
        ]

    @property
    def num_submodels(self):
        """M (the largest number of copies of any RLS layer; 1 if none)."""
        return max([layer.num_submodels for layer in self.rls_layers] or [1])

    @property
    def is_stochastic(self):
        """Whether two forward passes can differ (some layer has M > 1)."""
        return self.num_submodels > 1

    def compile(self, *args, num_samples=None, eval_samples=None,
                train_forward=None, eval_forward=None, **kwargs):
        """`keras.Model.compile`, plus the number of sampled models.

        Args:
            *args: passed to `keras.Model.compile`.
            num_samples: optional K for training (kept if None).
            eval_samples: optional N for inference (kept if None).
            train_forward: optional "tiled" or "loop" (kept if None).
            eval_forward: optional "tiled" or "loop" for inference.
            **kwargs: passed to `keras.Model.compile`.
        """
        if num_samples is not None:
            self.num_samples = check_int("num_samples", num_samples)
        if eval_samples is not None:
            self.eval_samples = check_int("eval_samples", eval_samples)
        if train_forward is not None:
            self.train_forward = self._check_train_forward(train_forward)
        if eval_forward is not None:
            self.eval_forward = self._check_train_forward(eval_forward, "eval_forward")
        super().compile(*args, **kwargs)

    # -- sampling -----------------------------------------------------------

    def _check_images(self, x):
        expected = self.network.input_shape[1:]
        shape = tuple(x.shape[1:])
        if len(shape) != len(expected) or any(
            e is not None and s is not None and e != s
            for e, s in zip(expected, shape)
        ):
            raise ValueError(
                f"Images must have shape [batch, {', '.join(map(str, expected))}]. "
                f"Received: x.shape={tuple(x.shape)}"
            )

    # -- the StochasticClassifier interface ---------------------------------

    @property
    def draw_shape(self):
        return (len(self.rls_layers),)

    @property
    def image_shape(self):
        return tuple(self.network.input_shape[1:])

    @property
    def draws_per_example(self):
        if self.per_example_sampling is not None:
            return self.per_example_sampling
        return any(layer.per_example_sampling for layer in self.rls_layers)

    def draw(self, num_draws, seed=None, stream=None):
        """Draws ``num_draws`` random paths, int32 ``[num_draws, L]``.

        Args:
            num_draws: number of paths.
            seed: None (fresh entropy, a graph op), an int (reproducible) or
                a ``[2]`` stateless key; see `rls_tf.randomness.draw_categorical`.
            stream: op seed of an unseeded draw in an exported graph.
        """
        return draw_categorical([layer.mu for layer in self.rls_layers], num_draws,
                                seed=seed, stream=stream)

    def describe(self):
        return {
            "num_submodels": int(self.num_submodels),
            "stochastic": bool(self.is_stochastic),
            "rls_layers": [layer.name for layer in self.rls_layers],
        }

    def outputs(self, x, draws, training=False, forward="tiled"):
        """Outputs of the sampled models the paths `draws` name, ``[D, B, K]``.

        Args:
            x: images ``[B, H, W, C]``.
            draws: int ``[D, L]`` (path d on the whole batch) or ``[D, B, L]``
                (example b of row d on its own path); D must be static.
            training: passed to the network (batch-norm mode).
            forward: "tiled" (one network call on the batch tiled D times)
                or "loop" (D network calls); same outputs.

        Returns:
            Tensor ``[D, B, num_classes]``.
        """
        self._check_train_forward(forward, "forward")
        x = tf.convert_to_tensor(x)
        self._check_images(x)
        draws = tf.convert_to_tensor(draws, dtype=tf.int32)
        layers = self.rls_layers
        if draws.shape.rank not in (2, 3) or draws.shape[-1] != len(layers):
            raise ValueError(
                f"`draws` must have shape [num_draws, {len(layers)}] "
                f"(one column per RLS layer) or [num_draws, batch, {len(layers)}]. "
                f"Received: draws.shape={draws.shape}"
            )
        num = draws.shape[0]
        if num is None:
            raise ValueError(f"The number of draws must be static. Received: "
                             f"draws.shape={draws.shape}")
        if not self.is_stochastic:
            # Every path is the same network: compute it once.
            out = self.network(x, training=training)
            return tf.broadcast_to(out[None], tf.concat([[num], tf.shape(out)], axis=0))
        per_example = draws.shape.rank == 3
        routing = current_scope().routing
        if forward == "loop" and num > 1:
            # Prefix sharing for given draws (inference only, so training's
            # batch-norm statistics stay one update per draw): a draw whose
            # copies agree with an earlier draw's up to a layer reuses that
            # draw's output there. Exact; per-example draws never share.
            share = (self._prefix_sharing(num)
                     if not per_example and not training else None)
            outputs = []
            for d in range(num):
                if share is not None:
                    share.sample = d
                outputs.append(self._pinned_forward(x, draws[d:d + 1], training, routing,
                                                    share)[0])
            return tf.stack(outputs)
        return self._pinned_forward(x, draws, training, routing)

    def inference_outputs(self, x, draws):
        """`outputs` of given draws by ``eval_forward`` (prefix sharing in "loop").

        What `predict` costs for fresh draws, the defender, the harness and
        the exports pay for given ones: bitwise the same outputs as the
        tiled forward on the networks tested
        (``tests/models/test_prefix_sharing.py``).
        """
        return self.outputs(x, draws, forward=self.eval_forward)

    def _pinned_forward(self, x, draws, training, routing, share=None):
        """One network call on `x` tiled per draw, each block on its given draw."""
        num = draws.shape[0]
        per_example = draws.shape.rank == 3
        batch = tf.shape(x)[0]
        inputs = x if num == 1 else tile_batch(x, num)
        pinned = {id(layer): tf.reshape(draws[..., j], [-1])
                  for j, layer in enumerate(self.rls_layers)}
        with sampling_scope(num_groups=1 if per_example else num, pinned=pinned,
                            per_example=True if per_example else None, routing=routing,
                            share=share):
            out = self.network(inputs, training=training)
        return tf.reshape(out, [num, batch, out.shape[-1]])

    def sample_outputs(self, x, num_samples, training=False, paths=None,
                       forward="tiled", _share=None):
        """Outputs of `num_samples` freshly sampled models (the sampled forward).

        Each of the S models draws its path inside the network (one per
        block of the tiled batch, or per example with per-example sampling);
        `outputs` takes given draws instead.

        Args:
            x: images ``[B, H, W, C]``.
            num_samples: S, number of sampled models (static int).
            training: passed to the network (batch-norm mode).
            paths: deprecated: ``outputs(x, draws)`` (the same result) with
                ``[S, L]`` draws.
            forward: "tiled" runs one network call on the batch tiled S
                times; "loop" runs S network calls (one graph either way
                when traced). Same distribution of outputs.

        Returns:
            Tensor ``[S, B, num_classes]``.
        """
        self._check_train_forward(forward, "forward")
        if paths is not None:
            warnings.warn("`RLSModel.sample_outputs(x, S, paths=draws)` is deprecated: use "
                          "`outputs(x, draws)`.", DeprecationWarning, stacklevel=2)
            draws = tf.convert_to_tensor(paths, dtype=tf.int32)
            if (draws.shape.rank == 2 and draws.shape[1] == len(self.rls_layers)
                    and draws.shape[0] is not None and draws.shape[0] != num_samples):
                raise ValueError(
                    f"`draws` has {draws.shape[0]} rows for "
                    f"num_samples={num_samples}. Received: draws.shape={draws.shape}"
                )
            if draws.shape.rank != 2:
                raise ValueError(
                    f"`draws` must have shape [num_samples, {len(self.rls_layers)}] "
                    f"(one column per RLS layer). Received: draws.shape={draws.shape}"
                )
            return self.outputs(x, draws, training=training, forward=forward)
        x = tf.convert_to_tensor(x)
        self._check_images(x)
        outer = current_scope()
        # An enclosing scope's per-example setting and routing apply unless
        # the model sets its own (e.g. EOT attacks wrap the model in one).
        per_example = (self.per_example_sampling if self.per_example_sampling is not None
                       else outer.per_example)
        if forward == "loop" and num_samples > 1:
            share = (self._prefix_sharing(num_samples)
                     if not per_example else None)
            outputs = []
            for s in range(num_samples):
                if share is not None:
                    share.sample = s
                outputs.append(self.sample_outputs(
                    x, 1, training=training, _share=share,
                )[0])
            return tf.stack(outputs)
        batch = tf.shape(x)[0]
        inputs = x if num_samples == 1 else tile_batch(x, num_samples)
        with sampling_scope(
            num_groups=num_samples,
            per_example=per_example,
            share=_share,
            routing=outer.routing,
        ):
            outputs = self.network(inputs, training=training)
        return tf.reshape(outputs, [num_samples, batch, outputs.shape[-1]])

    def sample_paths(self, num_paths, seed=None):
        """Deprecated: ``np.asarray(draw(num_draws, seed))``, ``[num_paths, L]``."""
        warnings.warn("`RLSModel.sample_paths` is deprecated: use `draw(num_draws, seed)` "
                      "(np.asarray of it for NumPy).", DeprecationWarning, stacklevel=2)
        num_paths = check_int("num_draws", num_paths)
        return np.asarray(self.draw(num_paths, seed=seed))

    def _effective(self, num_samples):
        return num_samples if self.is_stochastic else 1

    def _prefix_sharing(self, num_samples):
        """A `PrefixSharing` for `num_samples` single-sample calls, or None.

        Off unless ``share_prefixes``; the plan (where reuse is exact, which
        layers share) is `rls_tf.models.prefix_sharing.plan_prefix_sharing`.
        """
        if not self.share_prefixes:
            return None
        return plan_prefix_sharing(self.network, self.rls_layers, num_samples,
                                   per_example_override=self.per_example_sampling)

    def call(self, inputs, training=False):
        if training:
            return self.sample_outputs(inputs, 1, training=True)[0]
        return tf.reduce_mean(
            self.sample_outputs(inputs, self._effective(self.eval_samples),
                                forward=self.eval_forward),
            axis=0,
        )

    # -- serialization ------------------------------------------------------

    def compile_from_config(self, config):
        # Keras skips recompiling a model whose compile() is overridden;
        # ours only adds keyword arguments, so the saved config applies as is.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "network": keras.saving.serialize_keras_object(self.network),
            "num_samples": self.num_samples,
            "eval_samples": self.eval_samples,
            "train_forward": self.train_forward,
            "eval_forward": self.eval_forward,
            "share_prefixes": self.share_prefixes,
            "per_example_sampling": self.per_example_sampling,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(
            config["network"], custom_objects=custom_objects
        )
        return cls(**config)

    def build(self, input_shape):
        # The network is built already; building the wrapper only marks it so.
        self.built = True

    def compute_output_shape(self, input_shape):
        return self.network.compute_output_shape(input_shape)
