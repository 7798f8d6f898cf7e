"""Loading the models that `train.py` writes: ``model.keras`` and ``config.json``.

Owns `load_model_dir`, the one place that turns a run directory into an
rls_tf classifier (an `RLSModel` or another defense) with clear errors
(missing, damaged, or not one of ours).
"""

import json
import os

import keras

from rls_tf.checkpoints import keras_file_problem
from rls_tf.interface import StochasticClassifier

__all__ = ["load_model_dir"]


def load_model_dir(directory, flag="model_dir"):
    """Loads ``model.keras`` (and ``config.json`` if present) from a train.py directory.

    Args:
        directory: the ``--model_dir`` that `train.py` wrote.
        flag: the name of the argument, used in error messages.

    Returns:
        ``(model, config)``: the classifier (not compiled) and the training
        configuration dict, or None when the directory has no config.json.

    Raises:
        ValueError: `directory` is empty, ``model.keras`` or ``config.json``
            is damaged, or the file holds no `RLSModel`.
        FileNotFoundError: the directory or its ``model.keras`` is missing.

    Example:
        (Not run as a doctest: it needs a trained run directory.)

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
    problem = keras_file_problem(path)
    if problem is not None:
        raise ValueError(
            f"--{flag}={directory}: model.keras is damaged ({problem}). Received: {path}. "
            "Rerun train.py with the run's settings (it resumes from its checkpoints and "
            "writes model.keras again), or restore the file from a backup."
        )
    config = None
    config_path = os.path.join(directory, "config.json")
    if os.path.isfile(config_path):
        try:
            with open(config_path, encoding="utf-8") as f:
                config = json.load(f)
        except ValueError as e:
            raise ValueError(
                f"--{flag}={directory}: config.json is not valid JSON ({e}). "
                f"Received: {config_path}."
            ) from None
    # Registers the defenses' classes (ensemble, ADP, RSE, SAP) for loading.
    from rls_tf.models import defenses  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import

    model = keras.models.load_model(path, compile=False)
    if not isinstance(model, StochasticClassifier):
        raise ValueError(
            f"--{flag}={directory}: model.keras holds a {type(model).__name__}, not an rls_tf "
            "classifier (an RLSModel or another defense of rls_tf.models.DEFENSES)."
        )
    return model, config
