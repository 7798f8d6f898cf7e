r"""The flags the command lines share, defined once, and how a command uses them.

Owns the definitions of the flags that more than one command takes
(`SHARED_FLAGS`), the rule for a command's own defaults of them, and the
command-line conventions every command follows (no stray arguments, one
clean error line). absl keeps one flag registry per process and refuses a
second definition of a name, so the test suite, which imports every command
into one process, needs each shared name defined in one place: here.

A shared flag is defined with the default None, meaning "the running
command's default"; each command reads it through `value` with its own
default, so no command ever sees another command's default, whatever the
import order.

API (``from rls_tf.cli import flags as shared``):

Defining (each function is idempotent: a second call, from another
command, reuses the flag; a validator refuses bad values at parse time):

* ``define_dataset_flags()``: ``--dataset`` (enum of `rls_tf.data.DATASETS`)
  and ``--data_dir`` (string).
* ``define_model_dir_flag()``: ``--model_dir`` (string).
* ``define_output_dir_flag()``: ``--output_dir`` (string).
* ``define_batch_size_flag()``: ``--batch_size`` (int >= 1).
* ``define_seed_flag()``: ``--seed`` (int in ``[0, 2**31)``).
* ``define_eval_samples_flag()``: ``--eval_samples`` (N, int >= 1).
* ``define_verbose_flag()``: ``--verbose`` (int >= 0).
* ``define_per_example_sampling_flag()``: ``--per_example_sampling`` (bool).
* ``define(*names)``: any of the above by flag name, e.g.
  ``define("dataset", "data_dir", "seed")`` (``dataset`` and ``data_dir``
  come together).

Reading (the value set on the command line, by ``FLAGS.name = v`` or by
`absl.testing.flagsaver`, else the command's own default):

* ``value(name, default)``: the given value, else `default`.
* ``given(name)``: the given value, else None.
* ``is_given(name)``: whether a value was given.

Running a command:

* ``use_command_defaults(module_name, defaults, help_texts=None)``: call in
  the command's ``run()`` before `absl.app.run`: sets the shared flags'
  defaults to the command's (so ``--help`` shows them), optionally their
  help texts, and lists the command's flags (those `module_name` defined
  plus the shared ones in `defaults`) in ``--help`` of the program being run
  (``python train.py``, ``rls-train``, ...).
* ``check_no_arguments(argv)``: raises `absl.app.UsageError` on positional
  arguments.
* ``exit_on_errors(prog, function, *args, **kwargs)``: calls `function`; on
  one of `ERRORS` (bad settings, missing or damaged files, unavailable data)
  exits with the single line ``"<prog>: error: <message>"`` (status 1)
  instead of a traceback.

A command then reads, e.g.:

>>> # shared.define_dataset_flags(); shared.define_seed_flag()
>>> # DEFAULTS = {"dataset": "mnist", "data_dir": None, "seed": 0}
>>> # def main(argv):
>>> #     shared.check_no_arguments(argv)
>>> #     shared.exit_on_errors("attack_eval.py", evaluate,
>>> #                           seed=shared.value("seed", DEFAULTS["seed"]))
>>> # def run():
>>> #     shared.use_command_defaults(__name__, DEFAULTS)
>>> #     app.run(main)
"""

import sys

from absl import app
from absl import flags

from rls_tf import data as rls_data
from rls_tf.validation import check_int
from rls_tf.validation import check_seed

__all__ = ["ERRORS", "SHARED_FLAGS", "check_no_arguments", "define", "define_batch_size_flag",
           "define_dataset_flags", "define_eval_samples_flag", "define_model_dir_flag",
           "define_output_dir_flag", "define_per_example_sampling_flag", "define_seed_flag",
           "define_verbose_flag", "exit_on_errors", "given", "is_given",
           "use_command_defaults", "value"]

FLAGS = flags.FLAGS

SHARED_FLAGS = ("dataset", "data_dir", "model_dir", "output_dir", "batch_size", "seed",
                "eval_samples", "verbose", "per_example_sampling")

# What a command reports as one error line rather than a traceback: bad
# settings and files (ValueError, including rls_tf.data.DataFileError and
# rls_tf.callbacks.CheckpointError), missing or unreadable paths (OSError),
# data that can be neither found nor downloaded.
ERRORS = (ValueError, OSError, rls_data.DatasetUnavailableError)

_DEFINED = set()  # the names this module defined


def _validator(name, check):
    """An absl validator applying a `rls_tf.validation` rule to ``--name``."""

    def validate(value):
        try:
            check(f"--{name}", value)
        except ValueError as e:
            raise flags.ValidationError(str(e)) from None
        return True

    return validate


def _define(kind, name, help_text, check=None, **kwargs):
    if name in _DEFINED and name in FLAGS:
        return FLAGS[name]
    # allow_override: a command that still defines its own copy of a shared
    # name (attack_eval.py's `_define`) may come before or after this module
    # in one process; either definition then gives way to the other instead
    # of raising DuplicateFlagError. Commands read shared flags through
    # `value`, so whichever object holds the flag, no other command's default
    # leaks in.
    getattr(flags, f"DEFINE_{kind}")(name, None, help=help_text, allow_override=True,
                                     **kwargs)
    _DEFINED.add(name)
    if check is not None:
        flags.register_validator(name, _validator(name, check))
    return FLAGS[name]


def define_dataset_flags():
    """Defines ``--dataset`` and ``--data_dir``."""
    # Choices and help come from the dataset registry (`rls_tf.data.registry`).
    specs = rls_data.DATASET_SPECS.values()
    _define("enum", "dataset", "Dataset: " + ", ".join(
        f"{spec.name} ({spec.title})" for spec in specs) + ".",
            enum_values=list(rls_data.DATASETS))
    _define("string", "data_dir",
            "Directory of the dataset files (" + ", ".join(["npz"] + list(dict.fromkeys(
                spec.files.format.title for spec in specs if spec.files is not None)))
            + ") or a TFDS data dir.")


def define_model_dir_flag():
    """Defines ``--model_dir``: a run directory written by train.py."""
    _define("string", "model_dir",
            "Run directory, as written by train.py (checkpoints, model.keras, config.json, "
            "logs, metrics).")


def define_output_dir_flag():
    """Defines ``--output_dir``."""
    _define("string", "output_dir", "Where the command writes its results.")


def define_batch_size_flag():
    """Defines ``--batch_size`` (an int >= 1)."""
    _define("integer", "batch_size", "Batch size.",
            check=lambda n, v: check_int(n, v, minimum=1, allow_none=True))


def define_seed_flag():
    """Defines ``--seed`` (an int in ``[0, 2**31)``)."""
    _define("integer", "seed", "Seed of the command's randomness.",
            check=lambda n, v: check_seed(n, v))


def define_eval_samples_flag():
    """Defines ``--eval_samples`` (N, an int >= 1)."""
    _define("integer", "eval_samples", "N: sampled models averaged at test time.",
            check=lambda n, v: check_int(n, v, minimum=1, allow_none=True))


def define_verbose_flag():
    """Defines ``--verbose`` (an int >= 0)."""
    _define("integer", "verbose", "Verbosity (0: quiet).",
            check=lambda n, v: check_int(n, v, minimum=0, allow_none=True))


def define_per_example_sampling_flag():
    """Defines ``--per_example_sampling`` (a bool)."""
    _define("bool", "per_example_sampling", "Every example draws its own path.")


_DEFINERS = {
    "dataset": define_dataset_flags,
    "data_dir": define_dataset_flags,
    "model_dir": define_model_dir_flag,
    "output_dir": define_output_dir_flag,
    "batch_size": define_batch_size_flag,
    "seed": define_seed_flag,
    "eval_samples": define_eval_samples_flag,
    "verbose": define_verbose_flag,
    "per_example_sampling": define_per_example_sampling_flag,
}


def define(*names):
    """Defines the shared flags called `names` (each one of `SHARED_FLAGS`)."""
    for name in names:
        if name not in _DEFINERS:
            raise ValueError(f"`name` must be one of {SHARED_FLAGS}. Received: name={name!r}")
        _DEFINERS[name]()


def is_given(name):
    """Whether ``--name`` was set (command line, ``FLAGS.name = v``, flagsaver)."""
    return not FLAGS[name].using_default_value


def value(name, default):
    """The value given for ``--name``, else the running command's `default`."""
    return FLAGS[name].value if is_given(name) else default


def given(name):
    """The value given for ``--name``, else None."""
    return value(name, None)


def use_command_defaults(module_name, defaults, help_texts=None):
    """Prepares the flags for the command about to parse the command line.

    Args:
        module_name: the command's module (its ``__name__``); the flags it
            defined are listed by ``--help``.
        defaults: ``{shared flag name: the command's default}``: set as the
            flags' defaults (shown by ``--help``) and listed by ``--help``.
        help_texts: optional ``{flag name: help text}`` for this command.
    """
    for name, default in defaults.items():
        define(name)
        FLAGS.set_default(name, default)
    for name, text in (help_texts or {}).items():
        FLAGS[name].help = text
    # --help lists the key flags of the main program (sys.argv[0]): the
    # shim or console script, which defines none itself.
    main = sys.argv[0] if sys.argv else "__main__"
    for flag in FLAGS.get_key_flags_for_module(module_name):
        FLAGS.register_key_flag_for_module(main, flag)
    for name in defaults:
        FLAGS.register_key_flag_for_module(main, FLAGS[name])


def check_no_arguments(argv):
    """Raises `absl.app.UsageError` when `argv` holds positional arguments."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")


def exit_on_errors(prog, function, *args, **kwargs):
    """Returns ``function(*args, **kwargs)``; exits with one error line on `ERRORS`."""
    try:
        return function(*args, **kwargs)
    except ERRORS as e:
        message = " ".join(str(e).split("\n")).strip() or type(e).__name__
        sys.exit(f"{prog}: error: {message}")
