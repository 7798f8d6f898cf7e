"""Exporting a train.py run in one call: load it, write the formats, record a manifest.

Owns `export_model_dir` (``model.keras`` of a run directory -> SavedModel
and/or TFLite, plus the ``export.json`` manifest saying what was exported,
from where and with which sampling settings), `FORMATS` and
`check_formats`. The format writers themselves are
`rls_tf.export.saved_model` and `rls_tf.export.tflite`; the command line
(``python -m export``, ``rls-export``) is `rls_tf.cli.export`.
"""

import os

from rls_tf.atomic import write_json_atomic
from rls_tf.export.saved_model import SIGNATURE_KEY
from rls_tf.export.saved_model import UINT8_SIGNATURE_KEY
from rls_tf.export.saved_model import export_saved_model
from rls_tf.export.tflite import export_tflite
from rls_tf.export.tflite import tflite_op_names
from rls_tf.models.loading import load_model_dir
from rls_tf.validation import check_bool
from rls_tf.validation import check_int
from rls_tf.validation import check_seed

__all__ = ["FORMATS", "MANIFEST_NAME", "check_formats", "export_model_dir"]

FORMATS = ("saved_model", "tflite")
MANIFEST_NAME = "export.json"


def check_formats(formats):
    """Returns `formats` as a tuple without repeats, or raises a ValueError naming it.

    Args:
        formats: a non-empty iterable of names from `FORMATS` (a string is
            read as comma-separated names, ``"saved_model,tflite"``).
    """
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    try:
        names = list(formats)
    except TypeError:
        names = None
    if not names or any(not isinstance(f, str) or f not in FORMATS for f in names):
        shown = ",".join(map(str, names)) if names is not None else repr(formats)
        raise ValueError(
            f"`formats` must be a non-empty subset of {','.join(FORMATS)}. "
            f"Received: formats={shown}"
        )
    return tuple(dict.fromkeys(names))


def export_model_dir(model_dir, output_dir, formats=FORMATS, eval_samples=None,
                     per_example_sampling=False, seed=None, version=None,
                     tflite_path=None, log=None):
    """Exports the model of a train.py run directory and writes ``export.json``.

    Writes ``<output_dir>/<version>/`` (a SavedModel, the layout TF Serving
    watches) for "saved_model", `tflite_path` (default
    ``<output_dir>/model.tflite``) for "tflite", then
    ``<output_dir>/export.json`` (atomically). The random layer sampling
    stays in both graphs: with ``seed=None`` every call, and every fresh
    load, draws new, unpredictable sampled models.

    Args:
        model_dir: the run directory (``model.keras``, ``config.json``).
        output_dir: the export base directory.
        formats: names from `FORMATS` (see `check_formats`).
        eval_samples: N, sampled models averaged per request (None: the
            model's ``eval_samples``).
        per_example_sampling: every example of a request draws its own N paths.
        seed: None (fresh paths) or an int in ``[0, 2**31)`` (each load
            replays the same sequence of paths).
        version: SavedModel version (None: the next free one).
        tflite_path: where the TFLite model goes.
        log: optional callable given one line per written artifact.

    Returns:
        The manifest written to ``export.json``: ``model_dir``,
        ``training_config``, ``eval_samples``, ``per_example_sampling``,
        ``seed``, ``randomness``, ``input``, ``outputs``, and per format
        ``saved_model`` (its path) or ``tflite`` and ``tflite_ops``.

    Raises:
        ValueError: a bad argument, or a damaged or non-RLS ``model.keras``.
        FileNotFoundError: `model_dir` or its ``model.keras`` is missing.

    Example:
        (Not run as a doctest: it needs a trained run directory.)

        >>> from rls_tf.export import export_model_dir
        >>> info = export_model_dir("runs/mnist", "serving/rls")  # doctest: +SKIP
        >>> info["saved_model"], info["tflite"]  # doctest: +SKIP
    """
    formats = check_formats(formats)
    if not output_dir:
        raise ValueError(f"`output_dir` must be set. Received: output_dir={output_dir!r}")
    eval_samples = check_int("eval_samples", eval_samples, minimum=1, allow_none=True)
    per_example_sampling = check_bool("per_example_sampling", per_example_sampling)
    seed = check_seed("seed", seed)
    version = check_int("version", version, minimum=1, allow_none=True)
    if tflite_path is not None and not tflite_path:
        raise ValueError(f"`tflite_path` must be None or a path. Received: "
                         f"tflite_path={tflite_path!r}")
    log = log or (lambda line: None)

    model, config = load_model_dir(model_dir)
    settings = dict(eval_samples=eval_samples, per_example_sampling=per_example_sampling,
                    seed=seed)
    info = {
        "model_dir": os.path.abspath(model_dir),
        "training_config": config,
        "eval_samples": eval_samples or model.eval_samples,
        "per_example_sampling": per_example_sampling,
        "seed": seed,
        "randomness": ("seeded: every fresh load replays the same paths" if seed is not None
                       else "unseeded: fresh, unpredictable paths on every call and load"),
        "input": "images: float32 [batch, H, W, C] in [-1, 1] (x / 127.5 - 1); "
                 f"'{UINT8_SIGNATURE_KEY}' takes uint8 0..255",
        "outputs": ["probabilities", "classes", "sample_probabilities"],
    }
    if "saved_model" in formats:
        path = export_saved_model(model, output_dir, version=version, **settings)
        info["saved_model"] = os.path.abspath(path)
        log(f"SavedModel: {path} (signatures {SIGNATURE_KEY}, {UINT8_SIGNATURE_KEY})")
    if "tflite" in formats:
        path = tflite_path or os.path.join(output_dir, "model.tflite")
        export_tflite(model, path, **settings)
        info["tflite"] = os.path.abspath(path)
        info["tflite_ops"] = tflite_op_names(path)
        log(f"TFLite: {path} (ops: {', '.join(info['tflite_ops'])})")
    write_json_atomic(os.path.join(output_dir, MANIFEST_NAME), info)
    return info
