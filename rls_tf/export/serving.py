"""The serving computation: N freshly sampled models, inside the graph.

Both export formats run the same function. Every call draws new copy
indices with a ``Multinomial`` op (a TFLite builtin, ``MULTINOMIAL``) and pins
them into the RLS layers through a `sampling_scope`, so the randomness is a
graph op of the exported artifact, not something decided when it was written.

Why the exporter draws the paths itself instead of letting each layer draw:

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

import numpy as np
import tensorflow as tf

from rls_tf.layers.sampling import sampling_scope
from rls_tf.models.rls_model import RLSModel
from rls_tf.validation import check_int

__all__ = ["check_export_args", "check_seed", "draw_paths", "image_spec",
           "sampled_probabilities", "serving_outputs"]


def check_seed(seed):
    """Returns `seed` as an int (or None), or raises a clear ValueError."""
    if seed is None:
        return None
    if (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
            or not 0 <= seed < 2**31):
        raise ValueError(
            f"`seed` must be None or an int in [0, 2**31). Received: seed={seed!r}"
        )
    return int(seed)


def check_export_args(model, eval_samples, per_example_sampling, seed):
    """Validates the arguments shared by both export formats.

    Returns:
        ``(eval_samples, seed)`` as ints (seed may be None).
    """
    if not isinstance(model, RLSModel):
        raise ValueError(
            f"`model` must be an rls_tf RLSModel. Received: model of type "
            f"{type(model).__name__}"
        )
    if eval_samples is None:
        eval_samples = model.eval_samples
    eval_samples = check_int("eval_samples", eval_samples)
    if not isinstance(per_example_sampling, bool):
        raise ValueError(
            "`per_example_sampling` must be a bool. "
            f"Received: per_example_sampling={per_example_sampling!r}"
        )
    return eval_samples, check_seed(seed)


def image_spec(model, dtype, name="images"):
    """The `tf.TensorSpec` ``[None, H, W, C]`` of the model's images."""
    shape = tuple(model.network.input_shape[1:])
    if any(d is None for d in shape):
        raise ValueError(
            "The network must have a fully known image shape to be exported. "
            f"Received: input_shape={model.network.input_shape}"
        )
    return tf.TensorSpec((None, *shape), dtype, name=name)


def draw_paths(layers, num, seed=None):
    """Draws `num` sampled paths over `layers` as a graph op.

    Args:
        layers: the RLS layers (each with ``num_submodels`` and ``mu``).
        num: number of paths (int or scalar int32 tensor).
        seed: None (entropy-seeded on every load) or an int (reproducible).

    Returns:
        int32 tensor ``[num, len(layers)]``: the copy index of each layer.
    """
    columns = []
    for j, layer in enumerate(layers):
        if layer.num_submodels == 1:
            columns.append(tf.zeros(tf.reshape(num, [1]), tf.int32))
            continue
        # The raw op keeps the seeds exactly as given: the public wrapper
        # would derive non-zero seeds from a global seed if one were set.
        seed1, seed2 = (0, 0) if seed is None else (seed, j + 1)
        indices = tf.raw_ops.Multinomial(
            logits=tf.constant(layer.logits), num_samples=num, seed=seed1, seed2=seed2,
            output_dtype=tf.int32,
        )
        columns.append(tf.reshape(indices, [-1]))
    return tf.stack(columns, axis=1)


def sampled_probabilities(model, images, eval_samples, per_example=False,
                          seed=None, routing="partition"):
    """Class probabilities of `eval_samples` freshly drawn sampled models.

    Args:
        model: an `RLSModel`.
        images: float32 ``[B, H, W, C]`` in the model's pixel convention.
        eval_samples: N, sampled models per call (static int >= 1).
        per_example: if True every example gets its own N paths; else the
            whole batch shares each of the N paths.
        seed: None or an int, see `draw_paths`.
        routing: "partition" (SavedModel) or "select" (builtin TFLite ops);
            see `rls_tf.layers.SamplingScope`.

    Returns:
        float tensor ``[B, N, num_classes]``.
    """
    layers = [layer for layer in model.rls_layers if layer.num_submodels > 1]
    batch = tf.shape(images)[0]
    if layers:
        num = eval_samples * batch if per_example else eval_samples
        paths = draw_paths(layers, num, seed)
        if per_example:
            paths = tf.reshape(paths, tf.stack([eval_samples, batch, len(layers)]))
        else:
            paths = tf.reshape(paths, [eval_samples, 1, len(layers)])
    samples = []
    for s in range(eval_samples if layers else 1):
        pinned = None
        if layers:
            pinned = {id(layer): paths[s, :, j] for j, layer in enumerate(layers)}
        with sampling_scope(pinned=pinned, per_example=per_example,
                            routing=routing):
            samples.append(model.network(images, training=False))
    # M=1 everywhere: the N samples are the same network; compute it once.
    samples = samples * (eval_samples // len(samples))
    return tf.cast(tf.stack(samples, axis=1), tf.float32)


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
