r"""``attack_eval.py`` / ``rls-attack-eval``: flags, then `rls_tf.evaluation.api.evaluate_dirs`.

Evaluates trained run directories under the attacks of `rls_tf.attacks.REGISTRY`
and the threat models of `rls_tf.evaluation.threat_models` and writes
``results.json``, ``results.md`` and ``robustness.png`` (see the top-level
``attack_eval.py`` for usage). The preset-override flags are made from the
declared parameters (`rls_tf.evaluation.presets.override_params`: each
attack's own `Param`s and the evaluation's; one flag each, with its help and
bound), and the recorded command from the flags that were given: neither is
a hand-kept list.
"""

import os

from absl import app
from absl import flags

from rls_tf.attacks.registry import ATTACK_NAMES
from rls_tf.cli import flags as shared
from rls_tf.evaluation import api
from rls_tf.evaluation import presets as rls_presets
from rls_tf.evaluation import threat_models as rls_threat_models
from rls_tf.evaluation.commands import Command
from rls_tf.evaluation.config import DEFAULT_SAMPLE_COUNTS
from rls_tf.models import external as rls_external

__all__ = ["DEFAULTS", "command_line", "define_param_flags", "evaluate_from_flags", "main",
           "preset_overrides", "run"]

FLAGS = flags.FLAGS
PROG = "attack_eval.py"

# This command's defaults of the shared flags.
DEFAULTS = {"dataset": None, "data_dir": None, "model_dir": None, "output_dir": "results",
            "batch_size": 100, "seed": 0, "eval_samples": 10, "verbose": 1}
shared.define(*DEFAULTS)
_HELP = {
    "model_dir": "Directory of the RLS model (model.keras, config.json), as written by train.py.",
    "dataset": "Dataset (default: from the models' config.json).",
    "data_dir": "Directory of the dataset files or TFDS data dir (default: from config.json).",
    "output_dir": "Where results.json, results.md and robustness.png go.",
    "batch_size": "Images per attack batch (EOT runs E times as many rows).",
    "seed": "Seed of all randomness (paths, random starts, TF): runs are repeatable.",
    "eval_samples": "N: sampled models the defender averages.",
    "verbose": "0: quiet; 1: a line per run and progress bars.",
}

flags.DEFINE_string("baseline_dir", None, "Directory of the undefended baseline (M=1) model; "
                    "optional (the column 'baseline').")
flags.DEFINE_list("model_dirs", None, "Several defenses in one run, against the same images, "
                  "attacks and defender repeats: run directories, each DIR (column named after "
                  "the directory) or NAME=DIR, e.g. plain=runs/plain,rls=runs/rls,adp=runs/adp. "
                  "With --baseline_dir / --model_dir the columns are baseline, these, rls.")
# Models from elsewhere (a .keras / .h5 file or a SavedModel directory in
# --model_dirs): what the harness cannot know about them.
flags.DEFINE_list("input_range", "-1,1", "Models from elsewhere: the pixel range they expect, "
                  "LOW,HIGH (e.g. 0,1 or 0,255); the harness's [-1, 1] pixels (and eps) are "
                  "mapped to it. Checked on the first 200 test images.")
flags.DEFINE_enum("model_output", "logits", list(rls_external.OUTPUT_KINDS),
                  "Models from elsewhere: what they return (checked: rows that look like "
                  "probabilities are refused as logits). A SavedModel whose output is named "
                  "'probabilities' is read as such unless --output_key is given.")
flags.DEFINE_enum("randomness", "detect", ["detect", "deterministic", "random"],
                  "Models from elsewhere: detect whether repeated forward passes differ, or "
                  "declare it (a declaration the passes contradict is an error).")
flags.DEFINE_string("custom_objects", None, "Models from elsewhere: a Python module to import "
                    "before loading a .keras file (it registers the custom layers).")
flags.DEFINE_string("signature", "serving_default", "SavedModel directories: the signature to "
                    "attack (our exports: serving_default, float pixels in [-1, 1]).")
flags.DEFINE_string("output_key", None, "SavedModel directories: the signature output with the "
                    "logits or probabilities (default: 'probabilities' or 'logits' if present, "
                    "else the only output).")
flags.DEFINE_bool("indicators", False, "Also run the attack-failure indicators (AutoAttack's "
                  "checks, Pintor et al. 2022) on every model: randomness, zero gradients, "
                  "unstable loss, silent success, incomplete optimisation, unbounded attack.")
flags.DEFINE_integer("indicator_examples", 100, "Images the indicators probe (the first ones).")
flags.DEFINE_list("attacks", ",".join(ATTACK_NAMES),
                  f"Attacks, a subset of {','.join(ATTACK_NAMES)}.")
flags.DEFINE_list("threat_models", "paper", "Threat models, a subset of "
                  f"{','.join(rls_threat_models.THREAT_MODELS)}.")
flags.DEFINE_list("threat_model_attacks", None, "Restrict a threat model to some of --attacks, "
                  "THREAT_MODEL=ATTACK+ATTACK entries, e.g. paper=fgsm+pgd,eot=fgsm+pgd to run "
                  "APGD under apgd_rand only (threat models not named run every attack).")
flags.DEFINE_integer("num_examples", 1000, "Evaluate on the first this many test images.")
flags.DEFINE_integer("repeats", 5, "R: repeats of the defender's N-sample draw (mean +- std).")
flags.DEFINE_list("sample_counts", ",".join(map(str, DEFAULT_SAMPLE_COUNTS)),
                  "N values of the accuracy-against-N table.")
flags.DEFINE_string("preset", None, f"Attack parameters, one of "
                    f"{','.join(rls_presets.PRESETS)} (default: paper_<dataset>).")
flags.DEFINE_integer("num_shards", 1, "S: split the evaluation into this many shards "
                     "(batch-aligned slices of the --num_examples images); with S > 1 a run "
                     "evaluates shard --shard_index only and writes "
                     "<output_dir>/shard-<i>-of-<S>.json.")
flags.DEFINE_integer("shard_index", 0, "i in [0, --num_shards): the shard this run evaluates.")
flags.DEFINE_list("surrogates", "plain", "Surrogates of the transfer threat model, one "
                  "transfer run each: an evaluated model's name, 'copy' (the defense's own "
                  "independently trained copy, from --surrogate_dirs), or several joined by '+' "
                  "(an ensemble of surrogates), e.g. plain,copy,plain+copy.")
flags.DEFINE_list("surrogate_dirs", None, "Independently trained copies of evaluated defenses, "
                  "NAME=DIR with NAME an entry of --model_dirs (e.g. rls=runs/rls_copy): the "
                  "'copy' surrogates of transfer; they are not evaluated.")
flags.DEFINE_bool("convergence", False, "Also run the convergence sweeps: EOT PGD against the "
                  "number of steps (--convergence_steps), of EOT draws (--convergence_draws) and "
                  "against eps (--sweep_eps), for the masking checks and their plots.")
flags.DEFINE_string("reference", None, "The undefended model the masking checks compare with "
                    "(default: the model named plain, else baseline).")
flags.DEFINE_list("combine", None, "Combine the results.json of these evaluation "
                  "directories (the same protocol, other models: e.g. a new defense's run "
                  "beside a finished comparison) into one report in --output_dir; models in "
                  "several of them must have equal numbers; no model is loaded.")
flags.DEFINE_string("merge", None, "Merge the shard-<i>-of-<S>.json files of this directory "
                    "into results.json, results.md and robustness.png (in this directory, or "
                    "--output_dir when given); no model is loaded.")
flags.DEFINE_bool("allow_missing_shards", False, "With --merge: merge the shards there are of "
                  "an evaluation still running; the numbers are of the images they cover and "
                  "the reports say which shards are missing (Partial).")


# -- one override flag per preset parameter -------------------------------------

def define_param_flags(flag_values=FLAGS):
    """Defines one override flag per preset parameter not yet defined; returns their names.

    The parameters are `rls_tf.evaluation.presets.override_params`: ``eps_units``,
    every registered attack's own `Param`s, then the evaluation's. The flag's
    type, help and parse-time bound come from the `Param`. Run at import for
    the registry's attacks; an attack registered later gets its flags from a
    second call (on `flag_values`).
    """
    names = []
    for param in rls_presets.override_params():
        if param.name in flag_values:
            continue
        help_text = f"{param.help} (overrides the preset)"
        args = (param.name, None, help_text)
        if param.sequence:
            flags.DEFINE_list(*args, flag_values=flag_values)
        elif param.choices is not None:
            flags.DEFINE_enum(param.name, None, list(param.choices), help_text,
                              flag_values=flag_values)
        elif param.kind is bool:
            flags.DEFINE_bool(*args, flag_values=flag_values)
        elif param.kind is int:
            flags.DEFINE_integer(*args, flag_values=flag_values)
            low = 1 if param.minimum is None else param.minimum
            flags.register_validator(param.name, lambda v, low=low: v is None or v >= low,
                                     message=f"--{param.name} must be >= {low:g}.",
                                     flag_values=flag_values)
        elif param.kind is float:
            flags.DEFINE_float(*args, flag_values=flag_values)
        else:
            flags.DEFINE_string(*args, flag_values=flag_values)
        names.append(param.name)
    return tuple(names)


PRESET_FIELDS = define_param_flags()


def preset_overrides(flag_values=FLAGS):
    """``{parameter: value}`` of the override flags that are set (lists as numbers)."""
    overrides = {}
    for param in rls_presets.override_params():
        if param.name not in flag_values or flag_values[param.name].value is None:
            continue
        value = flag_values[param.name].value
        if param.sequence:
            value = _numbers(param.name, value, param.kind,
                             minimum=1 if param.kind is int else None)
        overrides[param.name] = value
    return overrides


def _numbers(name, values, kind, minimum=None):
    what = "integers" if kind is int else "numbers"
    try:
        out = [kind(v) for v in values]
    except ValueError:
        raise ValueError(f"--{name} must be {what}. Received: --{name}={','.join(values)}") \
            from None
    if minimum is not None and (not out or min(out) < minimum):
        raise ValueError(f"--{name} must be {what} >= {minimum}. "
                         f"Received: --{name}={','.join(values)}")
    return out


# -- parse-time checks --------------------------------------------------------------

for _name in ("num_examples", "repeats", "num_shards"):
    flags.register_validator(_name, lambda v, n=_name: v is not None and v >= 1,
                             message=f"--{_name} must be >= 1.")
flags.register_validator("shard_index", lambda v: v is not None and v >= 0,
                         message="--shard_index must be >= 0.")


@flags.multi_flags_validator(["num_shards", "shard_index"])
def _check_shard_flags(values):
    num_shards, shard_index = values["num_shards"], values["shard_index"]
    if (num_shards is not None and shard_index is not None and num_shards >= 1
            and not 0 <= shard_index < num_shards):
        raise flags.ValidationError(
            f"--shard_index must be in [0, --num_shards={num_shards}). "
            f"Received: --shard_index={shard_index}"
        )
    return True


def _subset_validator(name, choices, what):
    def check(values):
        unknown = [v for v in (values or []) if v not in choices]
        if unknown:
            raise flags.ValidationError(
                f"--{name}: unknown {what} {','.join(unknown)}; expected a subset of "
                f"{','.join(choices)}."
            )
        if not values:
            raise flags.ValidationError(f"--{name} must name at least one {what}.")
        return True

    flags.register_validator(name, check)


_subset_validator("attacks", ATTACK_NAMES, "attack")
_subset_validator("threat_models", rls_threat_models.THREAT_MODELS, "threat model")


@flags.validator("preset")
def _check_preset(value):
    if value is not None and value not in rls_presets.PRESETS:
        raise flags.ValidationError(
            f"--preset: unknown preset {value!r}; expected one of {','.join(rls_presets.PRESETS)}."
        )
    return True


# -- the command --------------------------------------------------------------------

# The flags that describe an evaluation, in the order the command is recorded.
_COMMAND_FLAGS = ("model_dir", "baseline_dir", "model_dirs", "dataset", "data_dir", "attacks",
                  "threat_models", "threat_model_attacks", "surrogates", "surrogate_dirs",
                  "convergence", "reference",
                  "indicators", "indicator_examples", "input_range", "model_output", "randomness",
                  "custom_objects", "signature",
                  "output_key", "num_examples", "eval_samples", "repeats",
                  "sample_counts", "preset", "output_dir", "batch_size", "seed",
                  *PRESET_FIELDS, "num_shards", "shard_index")


def command_line():
    """The command that reproduces this run (the flags that are set), as text."""
    flags = []
    for name in _COMMAND_FLAGS:
        if name in DEFAULTS:
            value = shared.value(name, DEFAULTS[name])
            present = shared.is_given(name)
        else:
            value, present = FLAGS[name].value, not FLAGS[name].using_default_value
        if value is None or (not present and name not in ("seed", "num_examples")):
            continue
        if name in ("num_shards", "shard_index") and FLAGS.num_shards == 1:
            continue
        flags.append((name, value))
    return Command.from_flags(flags).to_text()


def evaluate_from_flags():
    """Runs the evaluation the flags describe; returns ``(results, report paths)``."""
    verbose = shared.value("verbose", DEFAULTS["verbose"])
    log = print if verbose else None
    if FLAGS.merge and FLAGS.combine:
        raise ValueError(f"--merge and --combine are exclusive (merge the shards first, then "
                         f"combine). Received: --merge={FLAGS.merge} "
                         f"--combine={','.join(FLAGS.combine)}")
    if FLAGS.allow_missing_shards and not FLAGS.merge:
        raise ValueError("--allow_missing_shards applies to --merge=DIR only. Received: "
                         "--allow_missing_shards without --merge")
    if FLAGS.merge:
        output_dir = shared.given("output_dir")
        return api.merge_dir(FLAGS.merge, output_dir=output_dir, log=log,
                             allow_missing=FLAGS.allow_missing_shards)
    if FLAGS.combine:
        return api.combine_dirs(FLAGS.combine, shared.given("output_dir"), log=log)
    model_dirs, labels = {}, {}
    if FLAGS.baseline_dir:
        model_dirs["baseline"], labels["baseline"] = FLAGS.baseline_dir, "baseline_dir"
    for name, directory in _named_dirs("model_dirs", FLAGS.model_dirs, taken=model_dirs,
                                       bare=True).items():
        model_dirs[name], labels[name] = directory, "model_dirs"
    if shared.is_given("model_dir") or not FLAGS.model_dirs:
        model_dirs["rls"], labels["rls"] = shared.value("model_dir", None), "model_dir"
    options = {
        "attacks": FLAGS.attacks, "threat_models": FLAGS.threat_models,
        "preset": FLAGS.preset, "preset_overrides": preset_overrides(),
        "eval_samples": shared.value("eval_samples", DEFAULTS["eval_samples"]),
        "repeats": FLAGS.repeats,
        "sample_counts": _numbers("sample_counts", FLAGS.sample_counts, int, minimum=1),
        "batch_size": shared.value("batch_size", DEFAULTS["batch_size"]),
        "seed": shared.value("seed", DEFAULTS["seed"]),
        "surrogates": FLAGS.surrogates, "convergence": FLAGS.convergence,
        "reference": FLAGS.reference,
        "threat_model_attacks": _threat_model_attacks(FLAGS.threat_model_attacks),
    }
    config = None
    # The typed configuration, built once here. Without --preset the preset is the
    # dataset's paper one: when no --dataset or config.json names a dataset that has
    # one, evaluate_dirs builds the config from the same options after loading the
    # models (and reports a missing --dataset or model as before).
    dataset = api.saved_dataset(model_dirs, shared.given("dataset"))
    if FLAGS.preset or rls_presets.default_preset_name(dataset):
        config, options = api.eval_config(dataset, log=log, **options), {}
    return api.evaluate_dirs(
        model_dirs, config,
        dataset=shared.given("dataset"),
        data_dir=shared.given("data_dir"),
        num_examples=FLAGS.num_examples,
        output_dir=shared.value("output_dir", DEFAULTS["output_dir"]),
        num_shards=FLAGS.num_shards,
        shard_index=FLAGS.shard_index,
        command=command_line(),
        labels=labels,
        log=log,
        surrogate_dirs=_named_dirs("surrogate_dirs", FLAGS.surrogate_dirs),
        external=_external_options(),
        indicators=FLAGS.indicators, indicator_examples=FLAGS.indicator_examples,
        **options,
    )


def _external_options():
    """The `ExternalOptions` of --input_range, --model_output, ... (models from elsewhere)."""
    bounds = _numbers("input_range", FLAGS.input_range, float)
    if len(bounds) != 2 or not bounds[0] < bounds[1]:
        raise ValueError("--input_range must be LOW,HIGH with LOW < HIGH. Received: "
                         f"--input_range={','.join(FLAGS.input_range)}")
    return rls_external.ExternalOptions(
        input_range=tuple(bounds), output=FLAGS.model_output,
        stochastic={"detect": None, "deterministic": False, "random": True}[FLAGS.randomness],
        custom_objects=FLAGS.custom_objects, signature=FLAGS.signature,
        output_key=FLAGS.output_key,
        eval_samples=shared.value("eval_samples", DEFAULTS["eval_samples"]))


def _threat_model_attacks(entries):
    """``{threat model: attacks}`` of --threat_model_attacks (None when not given)."""
    pairs = _named_dirs("threat_model_attacks", entries, form="THREAT_MODEL=ATTACK+ATTACK")
    return {name: tuple(attacks.split("+")) for name, attacks in pairs.items()} or None


def _named_dirs(flag, entries, taken=(), bare=False, form="NAME=DIR"):
    """``{NAME: DIR}`` of a list flag of ``NAME=DIR`` entries (the one parser of all).

    ``bare``: a plain ``DIR`` is named by its last path component (--model_dirs).
    Names must be distinct, also from `taken`. ``form``: the entry's form in
    the error (--threat_model_attacks: ``THREAT_MODEL=ATTACK+ATTACK``).
    """
    out = {}
    for entry in entries or []:
        name, sep, directory = entry.partition("=")
        if not sep and bare:
            name, directory = os.path.basename(os.path.normpath(entry)), entry
        if not name or not directory or name in out or name in taken:
            raise ValueError(f"--{flag}: every entry is {form} with its own NAME"
                             f"{' (or a DIR named by its last component)' if bare else ''}. "
                             f"Received: {entry!r}")
        out[name] = directory
    return out


def main(argv):
    shared.check_no_arguments(argv)
    shared.exit_on_errors(PROG, evaluate_from_flags)


def run():
    """Console-script entry point (``rls-attack-eval``)."""
    shared.use_command_defaults(__name__, DEFAULTS, _HELP)
    app.run(main)
