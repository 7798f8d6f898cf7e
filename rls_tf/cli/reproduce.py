r"""The reproduction command: trains, evaluates and reports a suite, resumably.

Owns the command line of `rls_tf.reproduction.reproduce`; ``python -m
rls_tf.reproduce`` and the ``rls-reproduce`` console script run `run`.

    python -m rls_tf.reproduce --suite=cpu --data_dir=../shared/data \
        --output_dir=docs/reproduction/cpu [--stages=cifar10] [--plan]

``--suite`` is a built-in suite (smoke, cpu, paper) or a suite JSON file.
Rerun after an interruption, it skips every finished stage. ``--stages``
runs some evaluation stages (and the training they need) now, the rest in a
later run on the same ``--output_dir``.
"""

from absl import app
from absl import flags

from rls_tf.cli import flags as shared

__all__ = ["DEFAULTS", "main", "reproduce_from_flags", "run"]

FLAGS = flags.FLAGS

DEFAULTS = {"data_dir": "../shared/data", "output_dir": None}
HELP = {
    "data_dir": "Directory of the dataset files (train.py's --data_dir).",
    "output_dir": "Where runs/, eval/, stages/ and REPORT.md go (default: "
                  "results/reproduction/<suite>).",
}
_prog = "python -m rls_tf.reproduce"

shared.define(*DEFAULTS)
flags.DEFINE_string("suite", "smoke", "A built-in suite (smoke, cpu, paper) or a suite JSON file.")
flags.DEFINE_list("stages", None, "Evaluation stages to run now, with the training they "
                                  "need (default: every stage not done yet).")
flags.DEFINE_bool("plan", False, "Print the stages, what is done and the time estimate; run "
                                 "nothing.")


def reproduce_from_flags():
    """Runs (or, with --plan, lists) the suite the flags name; returns REPORT.md's path."""
    # pylint: disable=import-outside-toplevel  (the runner loads TensorFlow)
    from rls_tf.reproduction import load_suite, plan, reproduce

    suite = load_suite(FLAGS.suite)
    output_dir = shared.value("output_dir", DEFAULTS["output_dir"]) or \
        f"results/reproduction/{suite.name}"
    if FLAGS.plan:
        for stage, status in plan(suite, output_dir, stages=FLAGS.stages):
            print(f"{status}  {stage.kind:<8} {stage.name}  ~{stage.estimate_s:.0f}s")
        return None
    return reproduce(suite, output_dir, data_dir=shared.value("data_dir", DEFAULTS["data_dir"]),
                     stages=FLAGS.stages)


def main(argv):
    """Runs the suite; bad settings or files end in one error line."""
    shared.check_no_arguments(argv)
    shared.exit_on_errors(_prog, reproduce_from_flags)


def run(prog="python -m rls_tf.reproduce"):
    """Console entry point; `prog` names the command in error lines."""
    global _prog  # pylint: disable=global-statement
    _prog = prog
    shared.use_command_defaults(__name__, DEFAULTS, HELP)
    app.run(main)
