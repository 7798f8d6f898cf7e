"""rls-tf: robust ensembles trained by Random Layer Sampling (Keras 3 / TF)."""

import os

# The layers are written against TensorFlow ops (graph-level random draws,
# dynamic partition/stitch, SavedModel/TFLite export); Keras must run on TF.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow's C++ INFO lines (the oneDNN notice, the CPU-feature banner) are
# noise in every command's output; its warnings and errors stay visible. A
# value the user set wins. It must be set before TensorFlow is first imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import keras  # noqa: E402

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        "rls_tf needs the TensorFlow Keras backend. Received: "
        f"KERAS_BACKEND={keras.backend.backend()!r}; set KERAS_BACKEND=tensorflow."
    )

__version__ = "0.1.0"
