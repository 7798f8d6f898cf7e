r"""Evaluates an RLS model and its undefended baseline under adversarial attacks.

Runs FGSM, PGD, APGD, DeepFool, C&W-L2 and EAD under the threat models of
`rls_tf.evaluation.threat_models` (``paper``: the attacker gets one random
sampled model, as in Lee et al. 4.2; ``multi_sample``: the mean of S sampled
models; ``eot``: every gradient averaged over E fresh draws; ``apgd_rand``:
AutoAttack's APGD-CE + APGD-DLR with EOT) and writes ``results.json``,
``results.md`` (the paper's table layout, one column block per threat model)
and ``robustness.png`` into --output_dir. Every robust accuracy is the
defender's (N fresh sampled models), as mean +- std over --repeats draws.

    python attack_eval.py --model_dir=runs/rls --baseline_dir=runs/plain \
        --dataset=mnist --data_dir=../shared/data --preset=paper_mnist \
        --attacks=fgsm,pgd,deepfool,cw,ead,apgd --threat_models=paper,eot \
        --num_examples=1000 --eval_samples=10 --output_dir=results/mnist

**Sharding.** ``--num_shards=S --shard_index=i`` evaluates shard i of the
first --num_examples images (a contiguous run of whole --batch_size batches)
and writes only ``<output_dir>/shard-<i>-of-<S>.json``; once all S shards
are in one directory, ``attack_eval.py --merge=DIR`` (no model needed)
checks that they are the S shards of one evaluation and writes
``results.json``, ``results.md`` and ``robustness.png`` into DIR (or
--output_dir when given): the numbers of one unsharded run with the same
seed (exactly, EOT threat models included, for models with the default
per-batch sampling), timings summed over the shards
(`rls_tf.evaluation.shards`).

    for i in 0 1 2 3; do  # one per machine
      python attack_eval.py --model_dir=runs/rls ... --num_shards=4 --shard_index=$i \
          --output_dir=results/mnist
    done
    python attack_eval.py --merge=results/mnist

The models are the ``model.keras`` files that ``train.py`` writes into its
--model_dir (with ``config.json``, from which --dataset and --data_dir are
taken when not given). Presets hold the paper's per-dataset parameters
(Tables 1-2); eps are applied to the model's [-1, 1] pixels as given
(``--eps_units=unit`` reads them as [0, 1] fractions and doubles them).
"""

import os
import sys

from absl import app
from absl import flags

from rls_tf import data as rls_data
from rls_tf.evaluation import presets as rls_presets
from rls_tf.evaluation import runner as rls_runner
from rls_tf.evaluation import shards as rls_shards
from rls_tf.evaluation import threat_models as rls_threat_models
from rls_tf.models import load_model_dir

FLAGS = flags.FLAGS

# Names also defined by train.py. When both modules are imported into one
# process (the test suite) the first definition is shared: a flag defined here
# may be overridden by train.py's identical one, and one train.py defined is
# reused, so neither import fails. main() re-checks every value itself.
_SHARED = ("dataset", "data_dir", "model_dir", "batch_size", "seed", "eval_samples", "verbose")


_OWN = set()  # the flags this module defined (validators go on these only).


def _define(kind, name, default, help_text, enum_values=None):
    if name in _SHARED and name in FLAGS:
        return
    definer = getattr(flags, f"DEFINE_{kind}")
    args = (name, default, enum_values, help_text) if kind == "enum" else (name, default, help_text)
    definer(*args, allow_override=name in _SHARED)
    _OWN.add(name)


_define("string", "model_dir", None, "Directory of the RLS model (model.keras, config.json), as written by train.py.")
_define("string", "baseline_dir", None, "Directory of the undefended baseline (M=1) model; optional.")
_define("enum", "dataset", None, "Dataset (default: from the models' config.json).", enum_values=list(rls_data.DATASETS))
_define("string", "data_dir", None, "Directory of the dataset files or TFDS data dir (default: from config.json).")
_define("list", "attacks", "fgsm,pgd,deepfool,cw,ead,apgd", f"Attacks, a subset of {','.join(rls_runner.ATTACKS)}.")
_define("list", "threat_models", "paper", f"Threat models, a subset of {','.join(rls_threat_models.THREAT_MODELS)}.")
_define("integer", "num_examples", 1000, "Evaluate on the first this many test images.")
_define("integer", "eval_samples", 10, "N: sampled models the defender averages.")
_define("integer", "repeats", 5, "R: repeats of the defender's N-sample draw (mean +- std).")
_define("list", "sample_counts", "1,3,5,10,15", "N values of the accuracy-against-N table.")
_define("string", "preset", None, f"Attack parameters, one of {','.join(rls_presets.PRESETS)} (default: paper_<dataset>).")
_define("enum", "eps_units", None, "model: eps applied to [-1, 1] pixels as given; unit: eps are [0, 1] fractions, doubled (default: the preset's, model).", enum_values=list(rls_presets.EPS_UNITS))
_define("string", "output_dir", "results", "Where results.json, results.md and robustness.png go.")
_define("integer", "batch_size", 100, "Images per attack batch (EOT runs E times as many rows).")
_define("integer", "seed", 0, "Seed of all randomness (paths, random starts, TF): runs are repeatable.")
_define("integer", "verbose", 1, "0: quiet; 1: a line per run and progress bars.")
# Overrides of the preset's parameters.
_define("list", "fgsm_eps", None, "FGSM eps values (override the preset).")
_define("list", "pgd_eps", None, "PGD/APGD eps values (override the preset).")
_define("list", "cw_c", None, "C&W constants c (override the preset).")
_define("list", "ead_c", None, "EAD constants c (override the preset).")
_define("integer", "pgd_steps", None, "PGD steps under paper/multi_sample (paper: 10).")
_define("integer", "cw_steps", None, "C&W Adam steps (paper: 1000).")
_define("integer", "ead_steps", None, "EAD steps (paper setting: 1000).")
_define("integer", "cw_binary_search_steps", None, "C&W values of c tried, starting from each --cw_c (paper: 1, c constant).")
_define("integer", "ead_binary_search_steps", None, "EAD values of c tried, starting from each --ead_c (paper: 1, c constant).")
_define("integer", "deepfool_max_iter", None, "DeepFool iterations at most (50).")
_define("integer", "apgd_steps", None, "APGD steps (100).")
_define("integer", "apgd_restarts", None, "APGD-CE restarts under paper/multi_sample/eot (1).")
_define("integer", "eot_samples", None, "E: fresh draws per gradient under eot/apgd_rand (20).")
_define("integer", "eot_pgd_steps", None, "PGD steps under eot (100).")
_define("integer", "eot_pgd_restarts", None, "PGD random restarts under eot (3).")
_define("bool", "eot_min_norm", None, "Also run DeepFool/C&W/EAD under eot (on the EOT mean).")
_define("integer", "eot_min_norm_steps", None, "C&W/EAD steps under eot (100).")
_define("float", "eot_kappa", None, "Extra C&W/EAD confidence margin under eot (> 0; 1.0).")
_define("list", "multi_sample_paths", None, "S values of multi_sample (1,5,10,15).")
# Sharding.
_define("integer", "num_shards", 1, "S: split the evaluation into this many shards (batch-aligned "
        "slices of the --num_examples images); with S > 1 a run evaluates shard --shard_index "
        "only and writes <output_dir>/shard-<i>-of-<S>.json.")
_define("integer", "shard_index", 0, "i in [0, --num_shards): the shard this run evaluates.")
_define("string", "merge", None, "Merge the shard-<i>-of-<S>.json files of this directory into "
        "results.json, results.md and robustness.png (in this directory, or --output_dir when "
        "given); no model is loaded.")


def _register_min(name, minimum, optional=False):
    if name not in _OWN:
        return
    flags.register_validator(
        name,
        lambda v: (optional and v is None) or (v is not None and v >= minimum),
        message=f"--{name} must be >= {minimum}.",
    )


for _name in ("num_examples", "eval_samples", "repeats", "batch_size"):
    _register_min(_name, 1)
_register_min("seed", 0)
_register_min("num_shards", 1)
_register_min("shard_index", 0)


def _check_shard_flags(values):
    num_shards, shard_index = values["num_shards"], values["shard_index"]
    if (num_shards is not None and shard_index is not None and num_shards >= 1
            and not 0 <= shard_index < num_shards):
        raise flags.ValidationError(
            f"--shard_index must be in [0, --num_shards={num_shards}). "
            f"Received: --shard_index={shard_index}"
        )
    return True


flags.register_multi_flags_validator(["num_shards", "shard_index"], _check_shard_flags)
for _name in ("pgd_steps", "cw_steps", "ead_steps", "cw_binary_search_steps",
              "ead_binary_search_steps", "deepfool_max_iter", "apgd_steps",
              "apgd_restarts", "eot_samples", "eot_pgd_steps", "eot_pgd_restarts",
              "eot_min_norm_steps"):
    _register_min(_name, 1, optional=True)


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


_subset_validator("attacks", rls_runner.ATTACKS, "attack")
_subset_validator("threat_models", rls_threat_models.THREAT_MODELS, "threat model")


def _check_preset(value):
    if value is not None and value not in rls_presets.PRESETS:
        raise flags.ValidationError(
            f"--preset: unknown preset {value!r}; expected one of {','.join(rls_presets.PRESETS)}."
        )
    return True


flags.register_validator("preset", _check_preset)


# -- helpers ------------------------------------------------------------------


def _floats(name, values):
    if values is None:
        return None
    try:
        return [float(v) for v in values]
    except ValueError:
        raise ValueError(f"--{name} must be numbers. Received: --{name}={','.join(values)}") from None


def _ints(name, values):
    if values is None:
        return None
    try:
        out = [int(v) for v in values]
    except ValueError:
        raise ValueError(f"--{name} must be integers. Received: --{name}={','.join(values)}") from None
    if not out or min(out) < 1:
        raise ValueError(f"--{name} must be integers >= 1. Received: --{name}={','.join(values)}")
    return out


def _check_min(name, value, minimum):
    if value is None or isinstance(value, bool) or value < minimum:
        raise ValueError(f"--{name} must be >= {minimum}. Received: --{name}={value}")


def _resolve_dataset(configs):
    dataset = FLAGS.dataset
    for flag, config in configs.items():
        saved = (config or {}).get("dataset")
        if saved is None:
            continue
        if dataset is None:
            dataset = saved
        elif saved != dataset:
            raise ValueError(
                f"--{flag} holds a model trained on {saved!r}, but the evaluation is on "
                f"{dataset!r} (--dataset or the other model)."
            )
    if dataset is None:
        raise ValueError("--dataset is required (no config.json names the dataset).")
    return dataset


def _resolve_data_dir(configs):
    if FLAGS.data_dir:
        return FLAGS.data_dir
    for config in configs.values():
        saved = (config or {}).get("data_dir")
        if saved and os.path.isdir(saved):
            return saved
    return None


def _preset(dataset):
    name = FLAGS.preset or rls_presets.default_preset_name(dataset)
    if name is None:
        raise ValueError(
            f"There is no paper preset for dataset {dataset!r}: pass --preset="
            f"{'|'.join(rls_presets.PRESETS)} (and eps/c overrides as needed)."
        )
    preset = rls_presets.get_preset(name)
    return preset.replace(
        eps_units=FLAGS.eps_units,
        fgsm_eps=_floats("fgsm_eps", FLAGS.fgsm_eps),
        pgd_eps=_floats("pgd_eps", FLAGS.pgd_eps),
        cw_c=_floats("cw_c", FLAGS.cw_c),
        ead_c=_floats("ead_c", FLAGS.ead_c),
        pgd_steps=FLAGS.pgd_steps,
        cw_steps=FLAGS.cw_steps,
        ead_steps=FLAGS.ead_steps,
        cw_binary_search_steps=FLAGS.cw_binary_search_steps,
        ead_binary_search_steps=FLAGS.ead_binary_search_steps,
        deepfool_max_iter=FLAGS.deepfool_max_iter,
        apgd_steps=FLAGS.apgd_steps,
        apgd_restarts=FLAGS.apgd_restarts,
        eot_samples=FLAGS.eot_samples,
        eot_pgd_steps=FLAGS.eot_pgd_steps,
        eot_pgd_restarts=FLAGS.eot_pgd_restarts,
        eot_min_norm=FLAGS.eot_min_norm,
        eot_min_norm_steps=FLAGS.eot_min_norm_steps,
        eot_kappa=FLAGS.eot_kappa,
        multi_sample_paths=_ints("multi_sample_paths", FLAGS.multi_sample_paths),
    )


_COMMAND_FLAGS = (
    "model_dir", "baseline_dir", "dataset", "data_dir", "attacks", "threat_models",
    "num_examples", "eval_samples", "repeats", "sample_counts", "preset", "eps_units",
    "output_dir", "batch_size", "seed", "fgsm_eps", "pgd_eps", "cw_c", "ead_c", "pgd_steps",
    "cw_steps", "ead_steps", "cw_binary_search_steps", "ead_binary_search_steps",
    "deepfool_max_iter", "apgd_steps", "apgd_restarts",
    "eot_samples", "eot_pgd_steps", "eot_pgd_restarts", "eot_min_norm",
    "eot_min_norm_steps", "eot_kappa", "multi_sample_paths", "num_shards", "shard_index",
)


def command_line():
    """The command that reproduces this run (flags that are set)."""
    parts = ["python attack_eval.py"]
    for name in _COMMAND_FLAGS:
        value = FLAGS[name].value
        if value is None or (FLAGS[name].present == 0 and value == FLAGS[name].default
                             and name not in ("seed", "num_examples")):
            continue
        if name in ("num_shards", "shard_index") and FLAGS.num_shards == 1:
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        parts.append(f"--{name}={value}")
    return " ".join(parts)


def _check_shards():
    _check_min("num_shards", FLAGS.num_shards, 1)
    index = FLAGS.shard_index
    if index is None or isinstance(index, bool) or not 0 <= index < FLAGS.num_shards:
        raise ValueError(f"--shard_index must be in [0, --num_shards={FLAGS.num_shards}). "
                         f"Received: --shard_index={index}")


def merge_from_flags():
    """Merges the shard files of --merge; returns (results, report paths)."""
    output_dir = None if FLAGS["output_dir"].using_default_value else FLAGS.output_dir
    results, paths = rls_shards.merge_directory(FLAGS.merge, output_dir=output_dir)
    verbose = FLAGS.verbose if FLAGS.verbose is not None else 1
    if verbose:
        print(f"merged {results['merged']['num_shards']} shards: wrote {paths['json']}, "
              f"{paths['markdown']}, {paths['plot']}")
    return results, paths


def evaluate_from_flags():
    """Runs the evaluation the flags describe; returns (results, report paths).

    With --merge, merges shard files instead (`merge_from_flags`). With
    --num_shards > 1, evaluates shard --shard_index only and returns
    ``(shard payload, {"shard": path})``.
    """
    if FLAGS.merge:
        return merge_from_flags()
    _check_min("num_examples", FLAGS.num_examples, 1)
    for name in ("eval_samples", "repeats", "batch_size"):
        _check_min(name, FLAGS[name].value, 1)
    _check_min("seed", FLAGS.seed, 0)
    _check_shards()
    for name, choices in (("attacks", rls_runner.ATTACKS),
                          ("threat_models", rls_threat_models.THREAT_MODELS)):
        values = FLAGS[name].value or []
        unknown = [v for v in values if v not in choices]
        if unknown or not values:
            raise ValueError(f"--{name}: unknown or missing {','.join(unknown) or 'value'}; "
                             f"expected a subset of {','.join(choices)}.")
    _check_preset(FLAGS.preset)
    sample_counts = _ints("sample_counts", FLAGS.sample_counts)
    verbose = FLAGS.verbose if FLAGS.verbose is not None else 1
    log = print if verbose else None

    models, configs, dirs = {}, {}, {}
    if FLAGS.baseline_dir:
        models["baseline"], configs["baseline_dir"] = load_model_dir(FLAGS.baseline_dir,
                                                                     flag="baseline_dir")
        dirs["baseline"] = FLAGS.baseline_dir
    models["rls"], configs["model_dir"] = load_model_dir(FLAGS.model_dir, flag="model_dir")
    dirs["rls"] = FLAGS.model_dir
    if "baseline" in models and models["baseline"].is_stochastic and log:
        log(f"note: --baseline_dir={FLAGS.baseline_dir} is stochastic "
            f"(M={models['baseline'].num_submodels}); it is evaluated like the RLS model.")
    if not models["rls"].is_stochastic and log:
        log(f"note: --model_dir={FLAGS.model_dir} is deterministic (M=1).")

    dataset = _resolve_dataset(configs)
    data_dir = _resolve_data_dir(configs)
    preset = _preset(dataset)
    if preset.dataset != dataset and log:
        log(f"note: preset {preset.name} was made for {preset.dataset}, evaluating on {dataset}.")
    x, y = rls_data.load_numpy(dataset, "test", data_dir=data_dir,
                               max_examples=FLAGS.num_examples)
    spec = rls_data.dataset_spec(dataset)
    for key, model in models.items():
        expected = tuple(model.network.input_shape[1:])
        if tuple(x.shape[1:]) != expected:
            raise ValueError(f"{dirs[key]}: the model takes images of shape {expected}, "
                             f"{dataset} has {tuple(x.shape[1:])}.")
        if model.network.output_shape[-1] != spec.num_classes:
            raise ValueError(f"{dirs[key]}: the model has {model.network.output_shape[-1]} "
                             f"classes, {dataset} has {spec.num_classes}.")
    if log and len(x) < FLAGS.num_examples:
        log(f"note: only {len(x)} test images available (--num_examples={FLAGS.num_examples}).")
    if FLAGS.num_shards > 1:
        # Fails early (before any attack) when a shard would be empty.
        start, stop = rls_shards.shard_range(len(x), FLAGS.batch_size, FLAGS.num_shards,
                                             FLAGS.shard_index)
        if log:
            log(f"shard {FLAGS.shard_index} of {FLAGS.num_shards}: examples [{start}, {stop}) "
                f"of {len(x)}")

    config = rls_runner.EvalConfig(
        attacks=tuple(dict.fromkeys(FLAGS.attacks)),
        threat_models=tuple(dict.fromkeys(FLAGS.threat_models)),
        preset=preset,
        eval_samples=FLAGS.eval_samples,
        repeats=FLAGS.repeats,
        sample_counts=tuple(sample_counts),
        batch_size=FLAGS.batch_size,
        seed=FLAGS.seed,
        verbose=verbose,
    )
    x = rls_data.to_model_range(x)
    if FLAGS.num_shards > 1:
        results = rls_shards.run_shard(models, x, y, config, FLAGS.num_shards,
                                       FLAGS.shard_index, log=log)
    else:
        results = rls_runner.run_evaluation(models, x, y, config, log=log)
    results["data"] = {"dataset": dataset, "split": "test", "data_dir": data_dir,
                       "num_examples": int(len(x)), "first_examples": True}
    for key in models:
        results["models"][key]["dir"] = dirs[key]
        results["models"][key]["train_config"] = configs["baseline_dir" if key == "baseline"
                                                         else "model_dir"]
    if FLAGS.num_shards > 1:
        results["command"] = command_line()
        path = rls_shards.write_shard(results, FLAGS.output_dir)
        if log:
            log(f"wrote {path} ({results['timings']['total']:.0f}s); merge the "
                f"{FLAGS.num_shards} shards with: python attack_eval.py "
                f"--merge={FLAGS.output_dir}")
        return results, {"shard": path}
    from rls_tf.evaluation import report  # pylint: disable=import-outside-toplevel

    paths = report.write_reports(results, FLAGS.output_dir, command=command_line())
    if log:
        log(f"wrote {paths['json']}, {paths['markdown']}, {paths['plot']} "
            f"({results['timings']['total']:.0f}s)")
    return results, paths


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        evaluate_from_flags()
    except (ValueError, FileNotFoundError, rls_data.DatasetUnavailableError) as e:
        sys.exit(f"attack_eval.py: error: {e}")


if __name__ == "__main__":
    app.run(main)
