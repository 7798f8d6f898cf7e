"""The serving computation: N fresh draws of a defense, inside the graph.

Both export formats run the same function, written against
`rls_tf.interface.StochasticClassifier` only: every call draws N new draws
with the classifier's ``draw`` (for RLS: copy indices from a ``Multinomial``
op, a TFLite builtin, ``MULTINOMIAL``) and runs ``outputs`` on them, so the
randomness is a graph op of the exported artifact, not something decided
when it was written.

Why the exporter draws itself instead of letting each layer draw:

* **Unpredictable by construction.** An unseeded export uses
  ``Multinomial(seed=0, seed2=0)``, which TensorFlow and TFLite both seed from
  the operating system's entropy each time the model is loaded. A
  ``tf.random.categorical`` traced while a global seed is set (e.g. after
  ``keras.utils.set_random_seed`` in a training script) would instead bake a
  fixed op seed into the graph, and every server would replay the same paths.
* **One switch for reproducibility.** ``seed=int`` fixes the op seeds: each
  freshly loaded artifact then replays the same sequence of paths, call after
  call, whatever seeds the layers were trained with.
"""

import tensorflow as tf

from rls_tf.interface import StochasticClassifier
from rls_tf.layers.sampling import sampling_scope
from rls_tf.validation import check_bool
from rls_tf.validation import check_int
from rls_tf.validation import check_seed as _check_seed

__all__ = ["check_export_args", "check_seed", "image_spec", "sampled_probabilities",
           "serving_outputs"]


def check_seed(seed):
    """Returns `seed` as an int (or None), or raises a clear ValueError."""
    return _check_seed("seed", seed)


def check_export_args(model, eval_samples, per_example_sampling, seed):
    """Validates the arguments shared by both export formats.

    Returns:
        ``(eval_samples, seed)`` as ints (seed may be None).
    """
    if not isinstance(model, StochasticClassifier):
        raise ValueError(
            "`model` must be an rls_tf classifier (rls_tf.interface.StochasticClassifier, "
            f"e.g. an RLSModel). Received: model of type {type(model).__name__}"
        )
    if eval_samples is None:
        eval_samples = model.eval_samples
    eval_samples = check_int("eval_samples", eval_samples)
    check_bool("per_example_sampling", per_example_sampling)
    return eval_samples, check_seed(seed)


def image_spec(model, dtype, name="images"):
    """The `tf.TensorSpec` ``[None, H, W, C]`` of the model's images."""
    shape = tuple(model.image_shape)
    if any(d is None for d in shape):
        raise ValueError(
            "The network must have a fully known image shape to be exported. "
            f"Received: input_shape={(None, *shape)}"
        )
    return tf.TensorSpec((None, *shape), dtype, name=name)


def sampled_probabilities(model, images, eval_samples, per_example=False,
                          seed=None, routing="partition"):
    """Class probabilities of `eval_samples` fresh draws of `model`.

    Args:
        model: a `StochasticClassifier`.
        images: float32 ``[B, H, W, C]`` in the model's pixel convention.
        eval_samples: N, draws per call (static int >= 1).
        per_example: if True every example gets its own N draws; else the
            whole batch shares each of the N draws.
        seed: None (entropy-seeded on every load) or an int: the op seed of
            a stream that every load replays (``draw(..., stream=seed)``).
        routing: "partition" (SavedModel) or "select" (builtin TFLite ops);
            see `rls_tf.layers.SamplingScope`.

    Returns:
        float tensor ``[B, N, num_classes]``.
    """
    fixed = model.defender_draws()
    if fixed is not None:
        # The inference is exactly these draws (an ensemble's members): the
        # samples are the members, whatever N.
        samples = model.inference_outputs(images, fixed)
    elif not model.is_stochastic:
        # Deterministic: the N samples are the same network; compute it once.
        samples = tf.tile(model.defend(images)[None], [eval_samples, 1, 1])
    else:
        batch = tf.shape(images)[0]
        num = eval_samples * batch if per_example else eval_samples
        draws = model.draw(num, seed=None, stream=seed)
        if per_example:
            draws = tf.reshape(draws, tf.concat([[eval_samples, batch], tf.constant(
                model.draw_shape, tf.int32)], axis=0))
        with sampling_scope(routing=routing):
            # The model's inference path for given draws, i.e. what its
            # `predict` runs (an RLS model: one call per draw, sharing the
            # layers whose path prefix repeats).
            samples = model.inference_outputs(images, draws)
    return tf.cast(tf.transpose(samples, [1, 0, 2]), tf.float32)


def serving_outputs(model, images, eval_samples, per_example=False, seed=None,
                    routing="partition"):
    """The outputs of the serving signature for float images.

    Returns:
        dict with ``probabilities`` float32 ``[B, classes]`` (mean of the N
        sampled models), ``classes`` int64 ``[B]`` and
        ``sample_probabilities`` float32 ``[B, N, classes]``.
    """
    samples = sampled_probabilities(model, images, eval_samples, per_example,
                                    seed, routing)
    probabilities = tf.reduce_mean(samples, axis=1)
    return {
        "probabilities": probabilities,
        "classes": tf.argmax(probabilities, axis=-1),
        "sample_probabilities": samples,
    }
