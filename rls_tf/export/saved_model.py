"""SavedModel export for TF Serving, with the layer sampling in the graph."""

import os
import re
import shutil
import tempfile

import keras
import tensorflow as tf

from rls_tf.atomic import current_umask
from rls_tf.export import serving
from rls_tf.validation import check_int

__all__ = ["SIGNATURE_KEY", "UINT8_SIGNATURE_KEY", "export_saved_model", "next_version"]

SIGNATURE_KEY = "serving_default"
UINT8_SIGNATURE_KEY = "serving_uint8"

# Float requests must be in the training convention, x / 127.5 - 1; this
# margin only absorbs rounding of clients that scale the pixels themselves.
_RANGE_TOLERANCE = 1e-3


def next_version(output_dir):
    """The next TF Serving version number under `output_dir` (1 if none)."""
    if not os.path.isdir(output_dir):
        return 1
    versions = [int(n) for n in os.listdir(output_dir) if re.fullmatch(r"\d+", n)]
    return max(versions, default=0) + 1


def export_saved_model(model, output_dir, version=None, eval_samples=None,
                       per_example_sampling=False, seed=None):
    """Writes `model` as a versioned SavedModel for TF Serving.

    The artifact has two signatures (method ``tensorflow/serving/predict``):

    * ``serving_default``: input ``images`` float32 ``[batch, H, W, C]``,
      pixels in [-1, 1] (``x / 127.5 - 1``, the training convention; values
      outside raise ``InvalidArgumentError``);
    * ``serving_uint8``: input ``images`` uint8 ``[batch, H, W, C]``, raw
      pixels 0..255, scaled inside the graph.

    Both return ``probabilities`` float32 ``[batch, classes]`` (the mean of N
    sampled models), ``classes`` int64 ``[batch]`` and
    ``sample_probabilities`` float32 ``[batch, N, classes]``. Every call
    draws N fresh paths (per example with `per_example_sampling`).

    The version directory is written under a temporary name and renamed, so
    a server polling `output_dir` never loads a half-written model.

    Args:
        model: a trained `RLSModel`.
        output_dir: the model base path TF Serving watches.
        version: positive int; default one more than the largest existing.
        eval_samples: N; default the model's ``eval_samples``.
        per_example_sampling: draw separate paths for every example.
        seed: None (fresh, unpredictable paths on every call and every load)
            or an int (each load replays the same sequence of paths).

    Returns:
        The path of the version directory.

    Example:
        (Not run as a doctest: it needs a trained model.)

        >>> from rls_tf.export import export_saved_model
        >>> path = export_saved_model(model, "serving/rls")  # doctest: +SKIP
        >>> # -> serving/rls/1, ready for tensorflow_model_server
    """
    eval_samples, seed = serving.check_export_args(model, eval_samples, per_example_sampling, seed)
    if version is None:
        version = next_version(output_dir)
    version = check_int("version", version)
    target = os.path.join(output_dir, str(version))
    if os.path.exists(target):
        raise FileExistsError(
            f"{target} exists already; TF Serving versions are immutable. "
            "Choose another `version` (default: the next free one)."
        )
    float_spec = serving.image_spec(model, tf.float32)
    uint8_spec = serving.image_spec(model, tf.uint8)

    image_shape = list(float_spec.shape[1:])

    def outputs(images):
        # A loaded signature does not re-check the shape of a request against
        # its TensorSpec: without this a wrong shape fails deep in a layer.
        check = tf.debugging.assert_equal(
            tf.shape(images)[1:], tf.constant(image_shape, tf.int32),
            message=f"`images` must have shape [batch, {', '.join(map(str, image_shape))}]",
        )
        with tf.control_dependencies([check]):
            images = tf.identity(images)
        return serving.serving_outputs(model, images, eval_samples,
                                       per_example_sampling, seed)

    def serve_float(images):
        checks = [
            tf.debugging.assert_greater_equal(
                images, -1.0 - _RANGE_TOLERANCE,
                message="`images` must be float32 pixels in [-1, 1] (x / 127.5 - 1); "
                f"send raw 0..255 pixels to the '{UINT8_SIGNATURE_KEY}' signature",
            ),
            tf.debugging.assert_less_equal(
                images, 1.0 + _RANGE_TOLERANCE,
                message="`images` must be float32 pixels in [-1, 1] (x / 127.5 - 1); "
                f"send raw 0..255 pixels to the '{UINT8_SIGNATURE_KEY}' signature",
            ),
        ]
        with tf.control_dependencies(checks):
            return outputs(tf.identity(images))

    def serve_uint8(images):
        return outputs(tf.cast(images, tf.float32) / 127.5 - 1.0)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE_KEY, serve_float, input_signature=[float_spec])
    archive.add_endpoint(UINT8_SIGNATURE_KEY, serve_uint8, input_signature=[uint8_spec])
    os.makedirs(output_dir, exist_ok=True)
    staging = tempfile.mkdtemp(dir=output_dir, prefix=".tmp-")
    try:
        archive.write_out(staging, verbose=False)
        # mkdtemp makes the directory 0700; TF Serving may run as another user.
        os.chmod(staging, 0o777 & ~current_umask())
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
