"""TFLite export with builtin ops only and the layer sampling in the graph."""

import os
import tempfile

import keras
import tensorflow as tf

from rls_tf.atomic import write_bytes_atomic
from rls_tf.export import serving
from rls_tf.export.saved_model import SIGNATURE_KEY

__all__ = ["export_tflite", "tflite_op_names"]


def export_tflite(model, path, eval_samples=None, per_example_sampling=False, seed=None):
    """Writes `model` as a ``.tflite`` flatbuffer that samples on every call.

    The graph uses builtin TFLite ops only (standard interpreters carry no
    Flex kernels): the paths are drawn by ``MULTINOMIAL``, a batch-wide path
    selects its copy of each weight with a one-hot product, and per-example
    paths run every copy of a layer on the whole batch and keep each row's
    own (`routing="select"`, M times the compute of that layer) because
    ``DynamicPartition``/``DynamicStitch`` are not builtins.

    Signature ``serving_default``: input ``images`` float32 ``[batch, H, W, C]``
    in [-1, 1] (not range-checked: TFLite has no assert op); outputs
    ``probabilities``, ``classes`` and ``sample_probabilities`` as in the
    SavedModel. The batch size is dynamic (``resize_tensor_input``).

    Args:
        model: a trained `RLSModel`.
        path: the ``.tflite`` file to write (atomically).
        eval_samples, per_example_sampling, seed: as in `export_saved_model`.

    Returns:
        `path`.

    Example:
        (Not run as a doctest: it needs a trained model.)

        >>> export_tflite(model, "serving/rls/model.tflite")  # doctest: +SKIP
    """
    eval_samples, seed = serving.check_export_args(model, eval_samples, per_example_sampling, seed)
    if not getattr(model, "tflite_builtin_randomness", True):
        # Its randomness (stateless noise seeds) has no builtin TFLite op:
        # converting would need Flex ops or would drop the defense.
        raise ValueError(
            f"{type(model).__name__} cannot be exported to TFLite with builtin ops: its "
            "randomness is drawn with stateless random ops (RandomUniformInt, stateless "
            "normal/uniform), which TFLite has only as Flex ops. Export it as a SavedModel "
            "(--formats=saved_model). Received: model of type " + type(model).__name__)
    if not str(path).endswith(".tflite"):
        raise ValueError(f"`path` must end with .tflite. Received: path={path!r}")
    spec = serving.image_spec(model, tf.float32)

    def serve(images):
        return serving.serving_outputs(model, images, eval_samples, per_example_sampling,
                                       seed, routing="select")

    # Converting from a SavedModel lets the converter freeze the weights
    # into constants (from a bare concrete function it would keep resource
    # variables that the interpreter leaves uninitialised).
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE_KEY, serve, input_signature=[spec])
    with tempfile.TemporaryDirectory(prefix="rls-tflite-") as staging:
        archive.write_out(staging, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            staging, signature_keys=[SIGNATURE_KEY]
        )
        # Builtins only: a Flex op would make the model unusable on the
        # standard interpreters, so conversion must fail instead.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        flatbuffer = converter.convert()
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    write_bytes_atomic(path, flatbuffer)
    return path


def tflite_op_names(flatbuffer_or_path):
    """The builtin/custom op names of a TFLite model, e.g. ``["MULTINOMIAL", ...]``.

    Args:
        flatbuffer_or_path: the model bytes or a ``.tflite`` path.

    Returns:
        Sorted list of distinct op names.
    """
    if isinstance(flatbuffer_or_path, (bytes, bytearray)):
        content = bytes(flatbuffer_or_path)
    else:
        with open(flatbuffer_or_path, "rb") as f:
            content = f.read()
    # pylint: disable=import-outside-toplevel
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import visualize

    fb_model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    names = set()
    for opcode in fb_model.operatorCodes:
        code = max(opcode.builtinCode, opcode.deprecatedBuiltinCode)
        if code == schema.BuiltinOperator.CUSTOM:
            names.add(opcode.customCode.decode())
        else:
            names.add(visualize.BuiltinCodeToName(code))
    return sorted(names)
