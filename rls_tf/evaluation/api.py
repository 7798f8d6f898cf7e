"""`evaluate_dirs`: the evaluation of trained run directories, end to end.

The library function behind ``attack_eval.py`` (the twin of
`rls_tf.training.train`): it loads the models that ``train.py`` wrote,
checks that they and the data fit together, loads the test images, runs the
evaluation (or one shard of it) and writes the reports. `merge_dir` merges
the shard files of a sharded evaluation; `combine_dirs` combines evaluations
of other models on the same protocol into one report. A command line only
parses flags and calls one of them.

Example:

(Not run as a doctest: it needs trained run directories.)

>>> results, paths = evaluate_dirs(  # doctest: +SKIP
...     {"baseline": "runs/mnist_plain", "rls": "runs/mnist_rls"},
...     data_dir="../shared/data", attacks=("fgsm", "pgd"), threat_models=("paper", "eot"),
...     num_examples=500, output_dir="results/mnist")
"""

import dataclasses
import json
import os

import keras

from rls_tf import data as rls_data
from rls_tf.attacks.registry import ATTACK_NAMES
from rls_tf.evaluation import combine as rls_combine
from rls_tf.evaluation import indicators as rls_indicators
from rls_tf.evaluation import presets as rls_presets
from rls_tf.evaluation import report
from rls_tf.evaluation import runner
from rls_tf.evaluation import shards as rls_shards
from rls_tf.evaluation.config import EvalConfig
from rls_tf.evaluation import record_checkpoint
from rls_tf.interface import StochasticClassifier
from rls_tf.models import load_model_dir
from rls_tf.models import external as rls_external
from rls_tf.validation import check_int

__all__ = ["combine_dirs", "eval_config", "evaluate", "evaluate_dirs", "load_classifier",
           "merge_dir", "resolve_preset", "saved_dataset"]


def _resolve_dataset(dataset, configs, labels):
    for key, config in configs.items():
        saved = (config or {}).get("dataset")
        if saved is None:
            continue
        if dataset is None:
            dataset = saved
        elif saved != dataset:
            raise ValueError(
                f"--{labels[key]} holds a model trained on {saved!r}, but the evaluation is on "
                f"{dataset!r} (--dataset or the other model)."
            )
    if dataset is None:
        raise ValueError("--dataset is required (no config.json names the dataset).")
    return dataset


def _resolve_data_dir(data_dir, configs):
    if data_dir:
        return data_dir
    for config in configs.values():
        saved = (config or {}).get("data_dir")
        if saved and os.path.isdir(saved):
            return saved
    return None


def resolve_preset(preset, dataset, overrides=None):
    """The `Preset` to run: a name (or None: the dataset's paper preset) plus overrides.

    Args:
        preset: a `Preset`, a preset name, or None.
        dataset: the evaluated dataset.
        overrides: ``{field: value}`` (None values are ignored).
    """
    if not isinstance(preset, rls_presets.Preset):
        name = preset or rls_presets.default_preset_name(dataset)
        if name is None:
            raise ValueError(
                f"There is no paper preset for dataset {dataset!r}: pass --preset="
                f"{'|'.join(rls_presets.PRESETS)} (and eps/c overrides as needed)."
            )
        if name not in rls_presets.PRESETS:
            raise ValueError(f"unknown preset {name!r}; expected one of "
                             f"{','.join(rls_presets.PRESETS)}.")
        preset = rls_presets.get_preset(name)
    return preset.replace(**(overrides or {}))


def load_classifier(source, flag="model_dirs", external=None, name=None):
    """The classifier a `evaluate_dirs` column names, and its training config.

    Args:
        source: a ``train.py`` run directory; a ``.keras`` / ``.h5`` file or
            a SavedModel directory of a model from elsewhere; a
            `StochasticClassifier`; or a `keras.Model` object.
        flag: the argument's name in error messages.
        external: `rls_tf.models.external.ExternalOptions` for models from
            elsewhere (default: logits on [-1, 1] pixels, randomness detected).
        name: the column's name (recorded for a model from elsewhere).

    Returns:
        ``(classifier, config)``: config is the run's ``config.json`` dict,
        or None.
    """
    external = external or rls_external.ExternalOptions()
    if isinstance(source, StochasticClassifier):
        return source, None
    if isinstance(source, keras.Model):
        return external.wrap(source, name=name), None
    if isinstance(source, (str, os.PathLike)) and rls_external.is_external_source(source):
        return external.load(os.fspath(source), name=name), None
    if not isinstance(source, (str, os.PathLike)) and source is not None:
        raise ValueError(
            f"--{flag}: expected a run directory, a model file, a SavedModel directory, a "
            f"keras.Model or a StochasticClassifier. Received: {source!r} (wrap a plain "
            "callable in rls_tf.models.external.ExternalClassifier).")
    return load_model_dir(source, flag=flag)


def _run_indicators(models, x, y, config, num_examples, log):
    preset = config.preset
    eps = preset.model_eps(max(preset.pgd_eps))
    n = min(num_examples, len(x))
    settings = {"num_examples": n, "eps": eps, "steps": preset.eot_pgd_steps,
                "eot_samples": preset.eot_samples}
    entries = []
    for key, model in models.items():
        if log:
            log(f"attack-failure indicators [{key}] on {n} images, eps={eps:g}")
        entries += [i.to_json() for i in rls_indicators.run_indicators(
            model, x[:n], y[:n], eps, name=key, steps=settings["steps"],
            eot_samples=settings["eot_samples"], seed=config.seed)]
    return {**settings, "entries": entries}


def _source_name(source):
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else type(source).__name__


def _check_compatible(models, dirs, x, dataset):
    spec = rls_data.dataset_spec(dataset)
    for key, model in models.items():
        expected = tuple(model.image_shape)
        if tuple(x.shape[1:]) != expected:
            raise ValueError(f"{dirs[key]}: the model takes images of shape {expected}, "
                             f"{dataset} has {tuple(x.shape[1:])}.")
        classes = model.compute_output_shape((None, *expected))[-1]
        if classes != spec.num_classes:
            raise ValueError(f"{dirs[key]}: the model has {classes} classes, {dataset} has "
                             f"{spec.num_classes}.")


# Images on which a model from elsewhere has its declared input range checked.
_RANGE_CHECK_EXAMPLES = 200

# The keywords `evaluate_dirs` took before it took an `EvalConfig`: the config's
# fields, the preset (a `Preset`, a name or None) and its overrides. They still work.
_CONFIG_FIELDS = ("attacks", "threat_models", "eval_samples", "repeats", "sample_counts",
                  "batch_size", "seed", "surrogates", "convergence", "reference",
                  "threat_model_attacks")
_PRESET_KEYWORDS = ("preset", "preset_overrides")
# Defaults of the fields that `EvalConfig` leaves to its caller.
_CONFIG_DEFAULTS = {"attacks": ATTACK_NAMES, "threat_models": ("paper",)}


def eval_config(dataset, config=None, *, log=print, **options):
    """The `EvalConfig` of an evaluation on `dataset`: `config` and/or keyword options.

    Args:
        dataset: the evaluated dataset (picks the default preset).
        config: an `EvalConfig`, or None (then one is made from `options`,
            with `evaluate_dirs`' defaults: every attack, ``paper``).
        log: None: the config is quiet (``verbose=0``) when it is made here.
        **options: `EvalConfig` fields (attacks, threat_models, eval_samples,
            repeats, sample_counts, batch_size, seed, surrogates, convergence,
            reference, threat_model_attacks), ``preset`` (a `Preset`, a preset
            name, or None: the dataset's paper preset) and
            ``preset_overrides`` (``{parameter: value}``); with a `config`
            they change it.

    Raises:
        ValueError: an unknown option, or a value the config refuses.
    """
    _check_options(options)
    if config is not None and not isinstance(config, EvalConfig):
        raise ValueError(f"`config` must be an EvalConfig or None. Received: config={config!r}")
    preset = options.pop("preset", None)
    overrides = options.pop("preset_overrides", None)
    fields = {key: _normalised(key, value) for key, value in options.items()}
    if config is None:
        fields = {**{k: _normalised(k, v) for k, v in _CONFIG_DEFAULTS.items()}, **fields}
        return EvalConfig(preset=resolve_preset(preset, dataset, overrides),
                          verbose=1 if log else 0, **fields)
    if preset is not None or overrides:
        fields["preset"] = resolve_preset(preset or config.preset, dataset, overrides)
    return dataclasses.replace(config, **fields)


def _check_options(options):
    unknown = [key for key in options if key not in _CONFIG_FIELDS + _PRESET_KEYWORDS]
    if unknown:
        raise ValueError(f"Unknown option of the evaluation. Received: {unknown[0]}="
                         f"{options[unknown[0]]!r}. Expected one of "
                         f"{_CONFIG_FIELDS + _PRESET_KEYWORDS} (or config=EvalConfig(...)).")


def _normalised(key, value):
    if key in ("attacks", "threat_models"):
        return tuple(dict.fromkeys(value))
    if key in ("sample_counts", "surrogates"):
        return tuple(value)
    if key == "convergence":
        return bool(value)
    return value


def saved_dataset(model_dirs, dataset=None):
    """`dataset`, else the first ``config.json`` of `model_dirs` that names one, else None.

    Reads only the ``config.json`` files that exist (no model is loaded, nothing
    is checked: `evaluate_dirs` checks the directories and that their datasets agree).
    """
    if dataset is not None:
        return dataset
    for directory in model_dirs.values():
        path = os.path.join(directory or "", "config.json")
        try:
            with open(path, encoding="utf-8") as f:
                saved = json.load(f).get("dataset")
        except (OSError, ValueError, AttributeError):
            continue
        if saved:
            return saved
    return None


def evaluate_dirs(model_dirs, config=None, *, dataset=None, data_dir=None, num_examples=1000,
                  output_dir="results", num_shards=1, shard_index=0, command=None,
                  labels=None, log=print, surrogate_dirs=None, external=None,
                  indicators=False, indicator_examples=100, **options):
    """Evaluates classifiers (run directories or models from elsewhere); writes the reports.

    Args:
        model_dirs: ``{key: source}`` in column order, e.g.
            ``{"baseline": "runs/plain", "rls": "runs/rls"}``. A source is a
            directory holding the ``model.keras`` (and ``config.json``) that
            train.py wrote, or a model from elsewhere (see `load_classifier`:
            a ``.keras`` / ``.h5`` file, a SavedModel directory, a
            `keras.Model`, a `StochasticClassifier`).
        config: what to run, an `EvalConfig` (its `Preset` included; see
            `eval_config`), or None: made from `options` once the dataset
            is known.
        dataset: the dataset (default: from the models' config.json).
        data_dir: the dataset files (default: from config.json if present).
        num_examples: evaluate on the first this many test images.
        output_dir: where results.json, results.md and robustness.png go
            (or the shard file).
        num_shards, shard_index: evaluate shard `shard_index` of
            `num_shards` only (then a ``shard-<i>-of-<S>.json`` is written).
        command: the command line recorded with the results.
        labels: ``{key: argument name}`` used in error messages (default:
            the keys).
        log: function printing one line (None: silent).
        surrogate_dirs: ``{defense key: directory}`` of independently
            trained copies of the evaluated defenses: the ``copy``
            surrogates of the ``transfer`` threat model (not evaluated).
        external: `rls_tf.models.external.ExternalOptions`: the input range,
            output kind (logits / probabilities), custom objects and
            SavedModel signature of the models from elsewhere. Their declared
            range is checked against the usual ones on the first 200 images.
        indicators: also run the attack-failure indicators
            (`rls_tf.evaluation.indicators`) on every model, on the first
            `indicator_examples` images at the largest PGD eps (EOT-PGD with
            the preset's ``eot_pgd_steps`` and ``eot_samples``); a sharded
            evaluation runs them in shard 0, and its merge reports them.
        **options: the former keywords, still accepted: `EvalConfig` fields
            (attacks, threat_models, eval_samples, repeats, sample_counts,
            batch_size, seed, surrogates, convergence, reference,
            threat_model_attacks), ``preset``
            (a `Preset` or preset name; default: the dataset's paper one) and
            ``preset_overrides`` (``{parameter: value}``); with a `config`
            they change it. See `eval_config`.

    Returns:
        ``(results, paths)``: the results dict and the written files
        (``{"json", "markdown", "plot"}``, or ``{"shard"}``).

    Raises:
        ValueError: an unknown keyword (naming it), or what the models, the
            data or the config refuse.
    """
    if not model_dirs:
        raise ValueError("At least one model directory is needed. Received: model_dirs={}")
    _check_options(options)  # before any model is loaded
    labels = {key: key for key in model_dirs} | dict(labels or {})
    num_examples = check_int("num_examples", num_examples)
    num_shards = check_int("num_shards", num_shards)
    indicator_examples = check_int("indicator_examples", indicator_examples)
    shard_index = check_int("shard_index", shard_index, minimum=0, maximum=num_shards - 1)
    models, configs = {}, {}
    for key, directory in model_dirs.items():
        models[key], configs[key] = load_classifier(directory, flag=labels[key],
                                                    external=external, name=key)
    surrogate_models = {}
    for key, directory in (surrogate_dirs or {}).items():
        if key not in models:
            raise ValueError(f"--surrogate_dirs names {key!r}, which is not an evaluated model "
                             f"(expected one of {tuple(models)}). Received: "
                             f"surrogate_dirs={dict(surrogate_dirs)!r}")
        surrogate_models[key], _ = load_model_dir(directory, flag="surrogate_dirs")
    if log:
        for key, model in models.items():
            if key == "baseline" and model.is_stochastic:
                log(f"note: --{labels[key]}={model_dirs[key]} is stochastic "
                    f"({model.describe()}); it is evaluated like the other models.")
            if key != "baseline" and not model.is_stochastic:
                log(f"note: --{labels[key]}={model_dirs[key]} is deterministic (M=1).")

    dataset = _resolve_dataset(dataset, configs, labels)
    data_dir = _resolve_data_dir(data_dir, configs)
    config = eval_config(dataset, config, log=log, **options)
    preset = config.preset
    if preset.dataset != dataset and log:
        log(f"note: preset {preset.name} was made for {preset.dataset}, evaluating on {dataset}.")
    x, y = rls_data.load_numpy(dataset, "test", data_dir=data_dir, max_examples=num_examples)
    _check_compatible(models, {k: _source_name(v) for k, v in model_dirs.items()}, x, dataset)
    range_checks = {}
    for key, model in models.items():
        if isinstance(model, rls_external.ExternalClassifier):
            # The declared pixel range against the usual ones, on the first
            # (up to) 200 images: a wrong range makes every number wrong.
            sample = slice(0, min(len(x), _RANGE_CHECK_EXAMPLES))
            range_checks[key] = rls_external.check_input_range(
                model, rls_data.to_model_range(x[sample]), y[sample])
    if log and len(x) < num_examples:
        log(f"note: only {len(x)} test images available (--num_examples={num_examples}).")
    batch_size = config.batch_size
    if num_shards > 1:
        # Fails early (before any attack) when a shard would be empty.
        start, stop = rls_shards.shard_range(len(x), batch_size, num_shards, shard_index)
        if log:
            log(f"shard {shard_index} of {num_shards}: examples [{start}, {stop}) of {len(x)}")

    x = rls_data.to_model_range(x)
    if num_shards > 1:
        # Finished records are kept in output_dir as they come: the same
        # command resumes an interrupted shard (record_checkpoint).
        results = rls_shards.run_shard(models, x, y, config, num_shards, shard_index, log=log,
                                       surrogate_models=surrogate_models,
                                       checkpoint_dir=output_dir)
    else:
        results = runner.run_evaluation(models, x, y, config, log=log,
                                        surrogate_models=surrogate_models)
    if indicators and (num_shards == 1 or shard_index == 0):
        # On the first images of the whole evaluation: a sharded run probes
        # them in shard 0, and the merge carries its section over.
        results["indicators"] = _run_indicators(models, x, y, config, indicator_examples, log)
    elif indicators and log:
        log("the attack-failure indicators run in shard 0 (on the first images of the "
            "whole evaluation); the merge reports them")
    results["data"] = {"dataset": dataset, "split": "test", "data_dir": data_dir,
                       "num_examples": int(len(x)), "first_examples": True}
    for key in models:
        results["models"][key]["dir"] = _source_name(model_dirs[key])
        results["models"][key]["train_config"] = configs[key]
        if key in range_checks:
            results["models"][key]["input_range_check"] = range_checks[key]
    if surrogate_dirs:
        results["surrogates"] = {key: {"dir": directory, **surrogate_models[key].describe()}
                                 for key, directory in surrogate_dirs.items()}
    if num_shards > 1:
        results["command"] = command
        path = rls_shards.write_shard(results, output_dir)
        record_checkpoint.discard(output_dir, shard_index, num_shards)
        if log:
            log(f"wrote {path} ({results['timings']['total']:.0f}s); merge the "
                f"{num_shards} shards with: python attack_eval.py --merge={output_dir}")
        return results, {"shard": path}
    paths = report.write_reports(results, output_dir, command=command)
    if log:
        log(f"wrote {paths['json']}, {paths['markdown']}, {paths['plot']} "
            f"({results['timings']['total']:.0f}s)")
    return results, paths


def merge_dir(directory, output_dir=None, log=print, allow_missing=False):
    """Merges the shard files of `directory`; returns ``(results, paths)``.

    ``allow_missing=True`` merges the shards there are of an unfinished
    evaluation (`rls_tf.evaluation.shard_merge.merge_shards`).
    """
    results, paths = rls_shards.merge_directory(directory, output_dir=output_dir,
                                                allow_missing=allow_missing)
    if log:
        log(f"merged {results['merged']['num_shards']} shards: wrote {paths['json']}, "
            f"{paths['markdown']}, {paths['plot']}")
    return results, paths


def combine_dirs(directories, output_dir, log=print):
    """Combines evaluations of other models on the same protocol; returns ``(results, paths)``.

    See `rls_tf.evaluation.combine`.
    """
    results, paths = rls_combine.combine_directories(directories, output_dir)
    if log:
        log(f"combined {results['combined']['num_parts']} evaluations "
            f"({', '.join(results['models'])}): wrote {paths['json']}, {paths['markdown']}, "
            f"{paths['plot']}")
    return results, paths


# The general name: `evaluate_dirs` takes models from elsewhere as well as run directories.
evaluate = evaluate_dirs
