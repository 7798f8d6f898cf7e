r"""The export command: writes a model trained by train.py for TF Serving and TFLite.

Owns the command line of `rls_tf.export.export_model_dir`: its flags, their
defaults, and the one-line error report. ``python -m export`` (the repo's
top-level shim package) and the ``rls-export`` console script both run `run`.

    rls-export --model_dir=runs/mnist_rls --output_dir=serving/rls \
        --formats=saved_model,tflite --eval_samples=10 [--per_example_sampling] [--seed=S]

writes ``<output_dir>/<version>/`` (a SavedModel, the layout TF Serving
watches), ``<output_dir>/model.tflite`` and ``<output_dir>/export.json``
(what was exported, from where, and with which sampling settings). The
random layer sampling stays in both graphs: without --seed every call, and
every fresh load, draws new, unpredictable sampled models.
"""

from absl import app
from absl import flags

from rls_tf.cli import flags as shared

__all__ = ["DEFAULTS", "export_from_flags", "main", "run"]

FLAGS = flags.FLAGS

# This command's defaults of the shared flags (`rls_tf.cli.flags`).
DEFAULTS = {
    "model_dir": None,
    "output_dir": "serving/rls",
    "eval_samples": None,
    "seed": None,
    "per_example_sampling": False,
}
HELP = {
    "model_dir": "Directory of the trained model (model.keras), as written by train.py.",
    "output_dir": "Export base directory: <output_dir>/<version>/, model.tflite, export.json.",
    "eval_samples": "N: sampled models averaged per request (default: the model's).",
    "seed": "Make the exported sampling reproducible (default: fresh, unpredictable paths).",
    "per_example_sampling": "Every example of a request draws its own N paths.",
}
_prog = "rls-export"  # how error lines name the command (run() sets it)

shared.define(*DEFAULTS)
flags.DEFINE_list("formats", "saved_model,tflite",
                  "Formats to write, a subset of saved_model,tflite.")
flags.DEFINE_integer("version", None, "SavedModel version number (default: the next free one).")
flags.DEFINE_string("tflite_path", None,
                    "Where the TFLite model goes (default: <output_dir>/model.tflite).")


def export_from_flags():
    """Runs the export the flags describe; returns the dict written to export.json."""
    # pylint: disable=import-outside-toplevel  (the export modules load TF's converters)
    from rls_tf.export import export_model_dir

    return export_model_dir(
        model_dir=shared.value("model_dir", DEFAULTS["model_dir"]),
        output_dir=shared.value("output_dir", DEFAULTS["output_dir"]),
        formats=list(FLAGS.formats or []),
        eval_samples=shared.value("eval_samples", DEFAULTS["eval_samples"]),
        per_example_sampling=bool(shared.value("per_example_sampling",
                                               DEFAULTS["per_example_sampling"])),
        seed=shared.value("seed", DEFAULTS["seed"]),
        version=FLAGS.version,
        tflite_path=FLAGS.tflite_path,
        log=print,
    )


def main(argv):
    """Exports as the flags say; bad settings or files end in one error line."""
    shared.check_no_arguments(argv)
    shared.exit_on_errors(_prog, export_from_flags)


def run(prog="rls-export"):
    """Console entry point (``rls-export``); `prog` names the command in error lines."""
    global _prog  # pylint: disable=global-statement
    _prog = prog
    shared.use_command_defaults(__name__, DEFAULTS, HELP)
    app.run(main)
