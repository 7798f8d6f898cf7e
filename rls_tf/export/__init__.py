"""Deployable exports of RLS models: SavedModel (TF Serving) and TFLite.

Both keep the random layer sampling inside the exported graph: every call
draws fresh sampled models (see `rls_tf.export.serving`).
`export_model_dir` (`rls_tf.export.api`) exports a train.py run directory in
one call and writes its ``export.json`` manifest.
"""

from rls_tf.export.saved_model import SIGNATURE_KEY
from rls_tf.export.saved_model import UINT8_SIGNATURE_KEY
from rls_tf.export.saved_model import export_saved_model
from rls_tf.export.saved_model import next_version
from rls_tf.export.serving import serving_outputs
from rls_tf.export.tflite import export_tflite
from rls_tf.export.tflite import tflite_op_names
from rls_tf.export.api import FORMATS
from rls_tf.export.api import export_model_dir

__all__ = ["FORMATS", "SIGNATURE_KEY", "UINT8_SIGNATURE_KEY", "export_model_dir",
           "export_saved_model", "export_tflite", "next_version", "serving_outputs",
           "tflite_op_names"]
