"""Classifiers this library did not train, behind the `StochasticClassifier` interface.

`ExternalClassifier` wraps any image classifier the harness should attack:
a Keras model (``.keras`` file or object), a SavedModel signature (for
example the one TF Serving loads from our exports), or a plain callable.
The user states two facts the harness cannot know, and both are checked:

* ``input_range``: the pixel range the model expects, e.g. ``(0, 1)``. The
  harness works in [-1, 1] pixels (its eps are in those units); the wrapper
  maps them to the model's range, so every eps keeps its meaning.
  `check_input_range` compares the clean accuracy under the declared range
  with the other usual ranges and names a better one.
* ``output``: ``"logits"`` or ``"probabilities"``. Logit rows that already
  look like probabilities (in [0, 1], summing to 1: AutoAttack's softmax
  check) and probability rows that do not sum to 1 are errors.

Randomness is detected, not assumed: the wrapper runs the model several
times on one probe batch. A model declared deterministic that is not is an
error. The randomness of such a model cannot be pinned: its draws carry no
information, every forward pass draws afresh (``pinnable`` is False), so
the threat models that attack a fixed sampled model (``paper``,
``multi_sample``, ARC) cannot run on a random one; EOT and score-based
attacks can.

Example:

>>> import keras, numpy as np
>>> net = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
...                         keras.layers.Dense(3)])
>>> model = ExternalClassifier.from_keras(net, input_range=(0, 1), output="logits")
>>> model.is_stochastic
False
>>> model.defend(np.zeros((2, 8, 8, 1), "float32")).shape
TensorShape([2, 3])
"""

import dataclasses
import importlib
import os
from typing import Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from rls_tf.interface import StochasticClassifier
from rls_tf.validation import check_bool, check_choice, check_int

__all__ = ["COMMON_INPUT_RANGES", "OUTPUT_KINDS", "ExternalClassifier", "ExternalOptions",
           "check_input_range", "import_custom_objects", "is_external_source", "load_external"]

OUTPUT_KINDS = ("logits", "probabilities")
# The ranges `check_input_range` tries besides the declared one.
COMMON_INPUT_RANGES = ((-1.0, 1.0), (0.0, 1.0), (0.0, 255.0))

# Forward passes of the probe batch that decide whether a model is random,
# and the score difference (relative to the scores' size) that counts as
# random: far above float32 round-off of repeated deterministic calls.
_PROBE_PASSES = 4
_PROBE_BATCH = 8
_RANDOM_TOLERANCE = 1e-5
# How far from 1 a probability row may sum (float32 softmax round-off).
_SUM_TOLERANCE = 1e-3


def _check_input_range(input_range):
    try:
        if isinstance(input_range, (str, bytes)):
            raise TypeError(input_range)
        low, high = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise ValueError("`input_range` must be a pair (low, high) of numbers. "
                         f"Received: input_range={input_range!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError("`input_range` must be (low, high) with low < high. "
                         f"Received: input_range={input_range!r}")
    return low, high


def _check_image_shape(image_shape):
    shape = tuple(image_shape) if image_shape is not None else ()
    if len(shape) != 3 or not all(isinstance(d, (int, np.integer)) and d > 0 for d in shape):
        raise ValueError("`image_shape` must be (height, width, channels) of positive ints. "
                         f"Received: image_shape={image_shape!r}")
    return tuple(int(d) for d in shape)


class ExternalClassifier(StochasticClassifier):
    """An image classifier from elsewhere, wrapped for the evaluation harness.

    Args:
        fn: callable mapping a float32 batch ``[B, H, W, C]`` in the model's
            own pixel range to ``[B, K]`` logits or probabilities.
        image_shape: ``(H, W, C)``.
        input_range: ``(low, high)`` pixels the model expects.
        output: one of `OUTPUT_KINDS`.
        stochastic: None (detect), or the declared randomness (checked).
        eval_samples: N, the forward passes the defender averages when the
            model is random.
        name: shown in results and errors.
        weights: the variables whose values fingerprint the model.
        source: what was loaded (a path), recorded with the results.

    Raises:
        ValueError: a bad argument, outputs that contradict `output`, or a
            model declared deterministic whose outputs vary.
    """

    def __init__(self, fn, *, image_shape, input_range=(-1.0, 1.0), output="logits",
                 stochastic=None, eval_samples=10, name="external", weights=(), source=None):
        if not callable(fn):
            raise ValueError(f"`fn` must be callable. Received: fn={fn!r}")
        self._fn = fn
        self._image_shape = _check_image_shape(image_shape)
        self.input_range = _check_input_range(input_range)
        self.output_kind = check_choice("output", output, OUTPUT_KINDS)
        declared = check_bool("stochastic", stochastic, allow_none=True)
        self.eval_samples = check_int("eval_samples", eval_samples)
        self.name = str(name)
        self.weights = list(weights)
        self.source = source
        self.num_classes, self._stochastic, self.probe_difference = self._probe()
        if declared is not None and declared != self._stochastic:
            if declared is False:
                raise ValueError(
                    f"{self.name} was declared deterministic (stochastic=False) but "
                    f"{_PROBE_PASSES} forward passes of one batch differ by up to "
                    f"{self.probe_difference:.3g} in their scores. Received: stochastic=False. "
                    "Pass stochastic=None (detect) or True.")
            raise ValueError(
                f"{self.name} was declared random (stochastic=True) but {_PROBE_PASSES} "
                "forward passes of one batch gave the same outputs. Received: "
                "stochastic=True. Is its randomness switched off at inference "
                "(e.g. Dropout without training=True)?")

    # -- construction ---------------------------------------------------

    @classmethod
    def from_keras(cls, model, *, custom_objects=None, **kwargs):
        """Wraps a Keras model object or a ``.keras`` / ``.h5`` file.

        Args:
            model: a `keras.Model` or a path.
            custom_objects: ``{name: class}`` for loading a file.
            **kwargs: the constructor's keyword arguments (``image_shape``
                defaults to the model's input shape).
        """
        source = None
        if isinstance(model, (str, os.PathLike)):
            source = os.fspath(model)
            if not os.path.isfile(source):
                raise FileNotFoundError(f"No Keras model file at {source!r}.")
            try:
                model = keras.saving.load_model(source, custom_objects=custom_objects,
                                                compile=False)
            except (TypeError, ValueError) as e:
                raise ValueError(
                    f"Could not load the Keras model {source!r}: {e}. If it uses custom "
                    "layers, pass their module (attack_eval.py --custom_objects=MODULE)."
                ) from e
        if not isinstance(model, keras.Model):
            raise ValueError(f"`model` must be a keras.Model or a path to one. "
                             f"Received: model={model!r}")
        if "image_shape" not in kwargs:
            shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else ()
            if len(shape) != 3 or any(d is None for d in shape):
                raise ValueError("The model has no fixed (H, W, C) input shape; pass "
                                 f"image_shape. Received: input shape {shape!r}")
            kwargs["image_shape"] = shape
        kwargs.setdefault("name", model.name)
        # No `training` argument: Keras then runs inference (batch norm on its
        # moving statistics), yet keeps a layer call the model built with
        # training=True (MC dropout), which an explicit training=False would
        # switch off.
        return cls(lambda x: model(x), weights=model.weights,
                   source=source, **kwargs)

    @classmethod
    def from_saved_model(cls, path, *, signature="serving_default", output_key=None,
                         **kwargs):
        """Wraps a signature of a SavedModel directory (e.g. an export of ours).

        Args:
            path: the SavedModel directory (the one holding saved_model.pb).
            signature: the signature name.
            output_key: which output holds the logits / probabilities (None:
                ``probabilities`` or ``logits`` if present, else the only one).
            **kwargs: the constructor's keyword arguments (``image_shape``
                defaults to the signature's input shape).
        """
        path = os.fspath(path)
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise FileNotFoundError(f"No saved_model.pb in {path!r}: not a SavedModel directory.")
        loaded = tf.saved_model.load(path)
        signatures = dict(loaded.signatures)
        if signature not in signatures:
            raise ValueError(f"The SavedModel has no signature {signature!r}. Received: "
                             f"signature={signature!r}; it has {sorted(signatures)}.")
        concrete = signatures[signature]
        inputs = concrete.structured_input_signature[1]
        if len(inputs) != 1:
            raise ValueError(f"Signature {signature!r} takes {len(inputs)} inputs "
                             f"({sorted(inputs)}); an image classifier takes one.")
        (input_key, spec), = inputs.items()
        if spec.dtype != tf.float32:
            raise ValueError(f"Signature {signature!r} takes {spec.dtype.name} images; the "
                             "harness needs a float32 signature to take gradients.")
        outputs = sorted(concrete.structured_outputs)
        if output_key is None:
            preferred = [k for k in ("probabilities", "logits") if k in outputs]
            if preferred:
                output_key = preferred[0]
            elif len(outputs) == 1:
                output_key = outputs[0]
            else:
                raise ValueError(f"Signature {signature!r} has outputs {outputs}; pass "
                                 "output_key. Received: output_key=None")
        if output_key not in outputs:
            raise ValueError(f"Signature {signature!r} has no output {output_key!r}. "
                             f"Received: output_key={output_key!r}; outputs: {outputs}")
        if "image_shape" not in kwargs:
            kwargs["image_shape"] = tuple(spec.shape[1:])
        if "output" not in kwargs:
            kwargs["output"] = "probabilities" if output_key == "probabilities" else "logits"
        kwargs.setdefault("name", os.path.basename(os.path.normpath(path)))

        def call(x):
            return concrete(**{input_key: x})[output_key]

        wrapped = cls(call, weights=list(loaded.variables), source=path, **kwargs)
        wrapped._loaded = loaded  # keeps the variables the signature reads alive
        return wrapped

    # -- StochasticClassifier --------------------------------------------

    @property
    def is_stochastic(self):
        return self._stochastic

    @property
    def pinnable(self):
        # A draw cannot fix the model's randomness: there is no sampled model
        # to attack apart from the defender's own forward pass.
        return False

    @property
    def draw_shape(self):
        return ()

    @property
    def image_shape(self):
        return self._image_shape

    def draw(self, num_draws, seed=None):
        """``[num_draws]`` placeholders: the model draws its own randomness.

        A seed cannot make an external model's passes repeat; each forward
        pass of `outputs` is a fresh one.
        """
        return tf.zeros([num_draws], tf.int32)

    def _model_pixels(self, x):
        """[-1, 1] pixels mapped to the model's `input_range`."""
        low, high = self.input_range
        if (low, high) == (-1.0, 1.0):
            return x
        return low + (x + 1.0) * ((high - low) / 2.0)

    def probabilities(self, x):
        """One forward pass: ``[B, K]`` probabilities of [-1, 1] images."""
        x = self._model_pixels(tf.convert_to_tensor(x, tf.float32))
        out = tf.cast(self._fn(x), tf.float32)
        return tf.nn.softmax(out) if self.output_kind == "logits" else out

    def outputs(self, x, draws, training=False):
        """``[D, B, K]``: one fresh forward pass per draw (the draws are ignored)."""
        draws = tf.convert_to_tensor(draws)
        num = draws.shape[0]
        if num is not None:
            return tf.stack([self.probabilities(x) for _ in range(num)])
        return tf.map_fn(lambda _: self.probabilities(x), draws,
                         fn_output_signature=tf.float32, parallel_iterations=1)

    def compute_output_shape(self, input_shape):
        """``(batch, num_classes)``, as a Keras model answers it."""
        return (input_shape[0], self.num_classes)

    def describe(self):
        return {**super().describe(), "kind": "external", "name": self.name,
                "source": self.source, "input_range": list(self.input_range),
                "output": self.output_kind, "pinnable": False}

    # -- checks ----------------------------------------------------------

    def _probe(self):
        rng = np.random.default_rng(0)
        x = rng.uniform(-1.0, 1.0, (_PROBE_BATCH, *self._image_shape)).astype("float32")
        pixels = self._model_pixels(tf.constant(x))
        raw = [np.asarray(self._fn(pixels), np.float64) for _ in range(_PROBE_PASSES)]
        first = raw[0]
        if first.ndim != 2 or first.shape[0] != _PROBE_BATCH or first.shape[1] < 2:
            raise ValueError(f"{self.name} must return [batch, classes] scores. Received: "
                             f"outputs of shape {first.shape} for a batch of {_PROBE_BATCH}.")
        looks_like_probabilities = bool(
            np.all(first >= 0.0) and np.all(first <= 1.0)
            and np.allclose(first.sum(axis=1), 1.0, atol=_SUM_TOLERANCE))
        if self.output_kind == "logits" and looks_like_probabilities:
            raise ValueError(
                f"{self.name} was declared to output logits, but its outputs are in [0, 1] "
                "and sum to 1 per row: they look like probabilities (a softmax layer). "
                "Received: output='logits'. Pass output='probabilities', or attack the "
                "model without its softmax (attacks on softmax outputs lose gradient).")
        if self.output_kind == "probabilities" and not looks_like_probabilities:
            raise ValueError(
                f"{self.name} was declared to output probabilities, but its rows do not lie "
                f"in [0, 1] summing to 1 (row sums {np.round(first.sum(axis=1)[:3], 3)}). "
                "Received: output='probabilities'. Pass output='logits'.")
        # Compared as scores (logits, or log-probabilities): a confident model's
        # probabilities saturate at 0 and 1 and can hide its randomness.
        scores = [r if self.output_kind == "logits" else np.log(r + 1e-30) for r in raw]
        difference = float(max(np.max(np.abs(s - scores[0])) for s in scores[1:]))
        scale = 1.0 + float(np.max(np.abs(scores[0])))
        return int(first.shape[1]), difference > _RANDOM_TOLERANCE * scale, difference


def check_input_range(model, x, y, batch_size=100, candidates=COMMON_INPUT_RANGES):
    """Checks a declared input range against the usual ones on labelled images.

    The clean accuracy of the defender's inference under the declared range
    is compared with the same model under each of `candidates`; a candidate
    that is clearly better (twice the accuracy and at least 20 points more)
    means the declared range is wrong.

    Args:
        model: an `ExternalClassifier`.
        x: [-1, 1] images; y: int labels.

    Returns:
        ``{"range": [low, high], "accuracy": float}`` of the declared range.

    Raises:
        ValueError: naming the declared range and the better one.
    """
    def accuracy(candidate):
        clone = object.__new__(ExternalClassifier)
        clone.__dict__.update(model.__dict__, input_range=tuple(candidate))
        right = 0
        for start in range(0, len(x), batch_size):
            probs = clone.defend(x[start:start + batch_size])
            right += int(np.sum(np.argmax(probs, axis=-1) == y[start:start + batch_size]))
        return right / max(len(x), 1)

    declared = accuracy(model.input_range)
    for candidate in candidates:
        if tuple(map(float, candidate)) == model.input_range:
            continue
        try:
            other = accuracy(candidate)
        except tf.errors.InvalidArgumentError:
            # The model refuses pixels in that range (e.g. our exports' range
            # assertions): it cannot be the range it expects.
            continue
        if other >= 2 * declared and other - declared >= 0.2:
            raise ValueError(
                f"{model.name}: clean accuracy is {declared:.1%} with the declared "
                f"input_range={list(model.input_range)} but {other:.1%} with "
                f"{list(candidate)}. Received: input_range={list(model.input_range)}; "
                f"the model probably expects pixels in {list(candidate)}.")
    return {"range": list(model.input_range), "accuracy": declared}


def import_custom_objects(module_name):
    """``{name: object}`` of a module's public Keras-serialisable names.

    Importing the module also runs its ``register_keras_serializable``
    decorators, which is what most custom layers need.
    """
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"Could not import the custom objects module. Received: "
                         f"custom_objects={module_name!r} ({e})") from e
    return {name: value for name, value in vars(module).items()
            if not name.startswith("_") and isinstance(value, type)}


def load_external(path, **kwargs):
    """An `ExternalClassifier` from a ``.keras``/``.h5`` file or a SavedModel directory.

    Args:
        path: the file or directory.
        **kwargs: for `ExternalClassifier.from_keras` / `from_saved_model`
            (``signature`` and ``output_key`` only for a SavedModel).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return ExternalClassifier.from_saved_model(path, **kwargs)
    for key in ("signature", "output_key"):
        if kwargs.pop(key, None) not in (None, "serving_default"):
            raise ValueError(f"`{key}` applies to SavedModel directories only. "
                             f"Received: {key} for the file {path!r}")
    return ExternalClassifier.from_keras(path, **kwargs)


@dataclasses.dataclass(frozen=True)
class ExternalOptions:
    """How to load and wrap models from elsewhere (``attack_eval.py``'s flags of them).

    Attributes:
        input_range: the pixels the models expect, ``(low, high)``.
        output: one of `OUTPUT_KINDS`.
        stochastic: None (detect) or the declared randomness (checked).
        custom_objects: a module whose import registers the custom layers
            of a ``.keras`` file (its public classes are passed too).
        signature: the SavedModel signature to attack.
        output_key: the signature output with the scores (None: see
            `ExternalClassifier.from_saved_model`).
        eval_samples: N, forward passes the defender averages.
    """

    input_range: Tuple[float, float] = (-1.0, 1.0)
    output: str = "logits"
    stochastic: Optional[bool] = None
    custom_objects: Optional[str] = None
    signature: str = "serving_default"
    output_key: Optional[str] = None
    eval_samples: int = 10

    def load(self, path, name=None):
        """`load_external` of `path` with these options."""
        kwargs = {"input_range": self.input_range, "stochastic": self.stochastic,
                  "eval_samples": self.eval_samples}
        if name is not None:
            kwargs["name"] = name
        if os.path.isdir(path):
            kwargs.update(signature=self.signature, output_key=self.output_key)
            if self.output_key is not None or self.output != "logits":
                kwargs["output"] = self.output
        else:
            kwargs["output"] = self.output
            if self.custom_objects:
                kwargs["custom_objects"] = import_custom_objects(self.custom_objects)
        return load_external(path, **kwargs)

    def wrap(self, model, name=None):
        """A `keras.Model` object wrapped with these options."""
        return ExternalClassifier.from_keras(
            model, input_range=self.input_range, output=self.output,
            stochastic=self.stochastic, eval_samples=self.eval_samples,
            **({"name": name} if name is not None else {}))


def is_external_source(path):
    """Whether `path` is a model file or a SavedModel directory (not a train.py run)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return (os.path.isfile(os.path.join(path, "saved_model.pb"))
                and not os.path.isfile(os.path.join(path, "model.keras")))
    return os.path.isfile(path) and path.endswith((".keras", ".h5"))
