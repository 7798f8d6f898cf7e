"""Loading the models that `train.py` writes."""

import json
import os

import keras

from rls_tf.models.rls_model import RLSModel

__all__ = ["load_model_dir"]


def load_model_dir(directory, flag="model_dir"):
    """Loads ``model.keras`` (and ``config.json`` if present) from a train.py directory.

    Args:
        directory: the ``--model_dir`` that `train.py` wrote.
        flag: the name of the argument, used in error messages.

    Returns:
        ``(model, config)``: the `RLSModel` (not compiled) and the training
        configuration dict, or None when the directory has no config.json.

    Raises:
        ValueError: `directory` is empty or the file holds no `RLSModel`.
        FileNotFoundError: the directory or its ``model.keras`` is missing.

    Example:
        >>> model, config = load_model_dir("runs/mnist_rls")  # doctest: +SKIP
    """
    if not directory:
        raise ValueError(f"--{flag} is required. Received: --{flag}={directory!r}")
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"--{flag}={directory} is not a directory.")
    path = os.path.join(directory, "model.keras")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no model.keras in --{flag}={directory} (train.py writes it at the end of training)."
        )
    config = None
    config_path = os.path.join(directory, "config.json")
    if os.path.isfile(config_path):
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    model = keras.models.load_model(path, compile=False)
    if not isinstance(model, RLSModel):
        raise ValueError(
            f"--{flag}={directory}: model.keras holds a {type(model).__name__}, not an RLSModel."
        )
    return model, config
