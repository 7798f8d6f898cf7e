"""`evaluate_dirs`: the evaluation of trained run directories, end to end.

The library function behind ``attack_eval.py`` (the twin of
`rls_tf.training.train`): it loads the models that ``train.py`` wrote,
checks that they and the data fit together, loads the test images, runs the
evaluation (or one shard of it) and writes the reports. `merge_dir` merges
the shard files of a sharded evaluation; `combine_dirs` combines evaluations
of other models on the same protocol into one report. A command line only
parses flags and calls one of them.

Example:

>>> results, paths = evaluate_dirs(  # doctest: +SKIP
...     {"baseline": "runs/mnist_plain", "rls": "runs/mnist_rls"},
...     data_dir="../shared/data", attacks=("fgsm", "pgd"), threat_models=("paper", "eot"),
...     num_examples=500, output_dir="results/mnist")
"""

import os

from rls_tf import data as rls_data
from rls_tf.attacks.registry import ATTACK_NAMES
from rls_tf.evaluation import combine as rls_combine
from rls_tf.evaluation import presets as rls_presets
from rls_tf.evaluation import report
from rls_tf.evaluation import runner
from rls_tf.evaluation import shards as rls_shards
from rls_tf.evaluation.config import DEFAULT_SAMPLE_COUNTS
from rls_tf.evaluation.config import EvalConfig
from rls_tf.models import load_model_dir
from rls_tf.validation import check_int

__all__ = ["evaluate_dirs", "merge_dir", "resolve_preset"]


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


def evaluate_dirs(model_dirs, *, dataset=None, data_dir=None, attacks=ATTACK_NAMES,
                  threat_models=("paper",), num_examples=1000, preset=None,
                  preset_overrides=None, eval_samples=10, repeats=5,
                  sample_counts=DEFAULT_SAMPLE_COUNTS, batch_size=100, seed=0,
                  output_dir="results", num_shards=1, shard_index=0, command=None,
                  labels=None, log=print, surrogate_dirs=None, surrogates=("plain",),
                  convergence=False, reference=None):
    """Evaluates the models of some run directories; writes the reports.

    Args:
        model_dirs: ``{key: directory}`` in column order, e.g.
            ``{"baseline": "runs/plain", "rls": "runs/rls"}``; each holds
            the ``model.keras`` (and ``config.json``) that train.py wrote.
        dataset: the dataset (default: from the models' config.json).
        data_dir: the dataset files (default: from config.json if present).
        attacks: registry names (`rls_tf.attacks.ATTACK_NAMES`).
        threat_models: threat-model names.
        num_examples: evaluate on the first this many test images.
        preset: a `Preset` or preset name (default: the dataset's paper one).
        preset_overrides: ``{preset field: value}``.
        eval_samples, repeats, sample_counts, batch_size, seed: see
            `rls_tf.evaluation.EvalConfig`.
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
        surrogates, convergence, reference: see `EvalConfig`.

    Returns:
        ``(results, paths)``: the results dict and the written files
        (``{"json", "markdown", "plot"}``, or ``{"shard"}``).
    """
    if not model_dirs:
        raise ValueError("At least one model directory is needed. Received: model_dirs={}")
    labels = {key: key for key in model_dirs} | dict(labels or {})
    num_examples = check_int("num_examples", num_examples)
    num_shards = check_int("num_shards", num_shards)
    shard_index = check_int("shard_index", shard_index, minimum=0, maximum=num_shards - 1)
    models, configs = {}, {}
    for key, directory in model_dirs.items():
        models[key], configs[key] = load_model_dir(directory, flag=labels[key])
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
    preset = resolve_preset(preset, dataset, preset_overrides)
    if preset.dataset != dataset and log:
        log(f"note: preset {preset.name} was made for {preset.dataset}, evaluating on {dataset}.")
    x, y = rls_data.load_numpy(dataset, "test", data_dir=data_dir, max_examples=num_examples)
    _check_compatible(models, model_dirs, x, dataset)
    if log and len(x) < num_examples:
        log(f"note: only {len(x)} test images available (--num_examples={num_examples}).")
    if num_shards > 1:
        # Fails early (before any attack) when a shard would be empty.
        start, stop = rls_shards.shard_range(len(x), batch_size, num_shards, shard_index)
        if log:
            log(f"shard {shard_index} of {num_shards}: examples [{start}, {stop}) of {len(x)}")

    config = EvalConfig(
        attacks=tuple(dict.fromkeys(attacks)),
        threat_models=tuple(dict.fromkeys(threat_models)),
        preset=preset, eval_samples=eval_samples, repeats=repeats,
        sample_counts=tuple(sample_counts), batch_size=batch_size, seed=seed,
        verbose=1 if log else 0, surrogates=tuple(surrogates), convergence=bool(convergence),
        reference=reference,
    )
    x = rls_data.to_model_range(x)
    if num_shards > 1:
        results = rls_shards.run_shard(models, x, y, config, num_shards, shard_index, log=log,
                                       surrogate_models=surrogate_models)
    else:
        results = runner.run_evaluation(models, x, y, config, log=log,
                                        surrogate_models=surrogate_models)
    results["data"] = {"dataset": dataset, "split": "test", "data_dir": data_dir,
                       "num_examples": int(len(x)), "first_examples": True}
    for key in models:
        results["models"][key]["dir"] = model_dirs[key]
        results["models"][key]["train_config"] = configs[key]
    if surrogate_dirs:
        results["surrogates"] = {key: {"dir": directory, **surrogate_models[key].describe()}
                                 for key, directory in surrogate_dirs.items()}
    if num_shards > 1:
        results["command"] = command
        path = rls_shards.write_shard(results, output_dir)
        if log:
            log(f"wrote {path} ({results['timings']['total']:.0f}s); merge the "
                f"{num_shards} shards with: python attack_eval.py --merge={output_dir}")
        return results, {"shard": path}
    paths = report.write_reports(results, output_dir, command=command)
    if log:
        log(f"wrote {paths['json']}, {paths['markdown']}, {paths['plot']} "
            f"({results['timings']['total']:.0f}s)")
    return results, paths


def merge_dir(directory, output_dir=None, log=print):
    """Merges the shard files of `directory`; returns ``(results, paths)``."""
    results, paths = rls_shards.merge_directory(directory, output_dir=output_dir)
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
