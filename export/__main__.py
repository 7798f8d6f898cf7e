r"""Exports a model trained by train.py for TF Serving and TFLite.

    python -m export --model_dir=runs/mnist_rls --output_dir=serving/rls \
        --formats=saved_model,tflite --eval_samples=10 [--per_example_sampling] [--seed=S]

writes ``<output_dir>/<version>/`` (a SavedModel, the layout TF Serving
watches), ``<output_dir>/model.tflite`` and ``<output_dir>/export.json``
(what was exported, from where, and with which sampling settings). The
random layer sampling stays in both graphs: without --seed every call, and
every fresh load, draws new, unpredictable sampled models.
"""

import os
import sys

from absl import app
from absl import flags

from rls_tf.export import FORMATS

FLAGS = flags.FLAGS

# Names train.py and attack_eval.py define too: in one process (the tests)
# the first definition is shared, so main() reads whether a value was given
# (`using_default_value`) rather than trusting another module's default.
_SHARED = ("model_dir", "output_dir", "eval_samples", "seed", "per_example_sampling")
_DEFAULT_OUTPUT_DIR = "serving/rls"


def _define(kind, name, default, help_text):
    if name in _SHARED and name in FLAGS:
        return
    getattr(flags, f"DEFINE_{kind}")(name, default, help_text,
                                     allow_override=name in _SHARED)


_define("string", "model_dir", None, "Directory of the trained model (model.keras), as written by train.py.")
_define("string", "output_dir", _DEFAULT_OUTPUT_DIR, "Export base directory: <output_dir>/<version>/ and model.tflite.")
_define("list", "formats", "saved_model,tflite", f"Formats to write, a subset of {','.join(FORMATS)}.")
_define("integer", "eval_samples", None, "N: sampled models averaged per request (default: the model's).")
_define("bool", "per_example_sampling", False, "Every example of a request draws its own N paths.")
_define("integer", "seed", None, "Make the exported sampling reproducible (default: fresh, unpredictable paths).")
_define("integer", "version", None, "SavedModel version number (default: the next free one).")
_define("string", "tflite_path", None, "Where the TFLite model goes (default: <output_dir>/model.tflite).")


def _given(name):
    """The flag's value if it was set on the command line (or in a test), else None."""
    flag = FLAGS[name]
    return None if flag.using_default_value else flag.value


def export_from_flags():
    """Runs the export the flags describe; returns the dict written to export.json."""
    # pylint: disable=import-outside-toplevel  (TF starts only after flags parse)
    from rls_tf import export as rls_export
    from rls_tf.callbacks import write_json_atomic
    from rls_tf.models import load_model_dir

    formats = list(FLAGS.formats or [])
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(
            f"--formats must be a non-empty subset of {','.join(FORMATS)}. "
            f"Received: --formats={','.join(formats)}"
        )
    output_dir = _given("output_dir")
    if output_dir is None:
        output_dir = _DEFAULT_OUTPUT_DIR
    if not output_dir:
        raise ValueError(f"--output_dir must not be empty. Received: --output_dir={output_dir!r}")
    model_dir = _given("model_dir")
    model, config = load_model_dir(model_dir)
    eval_samples = _given("eval_samples")
    seed = _given("seed")
    per_example = bool(_given("per_example_sampling") or False)
    settings = dict(eval_samples=eval_samples, per_example_sampling=per_example, seed=seed)
    info = {
        "model_dir": os.path.abspath(model_dir),
        "training_config": config,
        "eval_samples": eval_samples or model.eval_samples,
        "per_example_sampling": per_example,
        "seed": seed,
        "randomness": ("seeded: every fresh load replays the same paths" if seed is not None
                       else "unseeded: fresh, unpredictable paths on every call and load"),
        "input": "images: float32 [batch, H, W, C] in [-1, 1] (x / 127.5 - 1); "
                 f"'{rls_export.UINT8_SIGNATURE_KEY}' takes uint8 0..255",
        "outputs": ["probabilities", "classes", "sample_probabilities"],
    }
    if "saved_model" in formats:
        path = rls_export.export_saved_model(
            model, output_dir, version=FLAGS.version, **settings)
        info["saved_model"] = os.path.abspath(path)
        print(f"SavedModel: {path} (signatures {rls_export.SIGNATURE_KEY}, "
              f"{rls_export.UINT8_SIGNATURE_KEY})")
    if "tflite" in formats:
        path = FLAGS.tflite_path or os.path.join(output_dir, "model.tflite")
        rls_export.export_tflite(model, path, **settings)
        info["tflite"] = os.path.abspath(path)
        info["tflite_ops"] = rls_export.tflite_op_names(path)
        print(f"TFLite: {path} (ops: {', '.join(info['tflite_ops'])})")
    write_json_atomic(os.path.join(output_dir, "export.json"), info)
    return info


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    export_from_flags()


def run():
    """Console entry point."""
    app.run(main)


if __name__ == "__main__":
    sys.exit(run())
