"""End-to-end training of any registered defense: data, model, `fit`, resume, results.

Owns `train` (one run in a model directory, resumed after its last usable
checkpoint); its settings, `TrainConfig`, live in `rls_tf.training_config`
(re-exported here). The command
line `train.py` / ``rls-train`` (`rls_tf.cli.train`) is a thin layer over
`train`; user code can call it too.
"""

import json
import os
import shutil
import tempfile
import time

import keras
import tensorflow as tf

from rls_tf import adversarial
from rls_tf import data as rls_data
from rls_tf import distribute as rls_distribute
from rls_tf.atomic import save_model_atomic
from rls_tf.atomic import write_json_atomic
from rls_tf.checkpoints import AtomicCheckpoint
from rls_tf.checkpoints import find_checkpoints
from rls_tf.checkpoints import restore_checkpoint
from rls_tf.defenses.registry import build_defense
from rls_tf.defenses.registry import get_defense
from rls_tf.losses import GroupCrossEntropy
from rls_tf.losses import GroupMSE
from rls_tf.models.loading import load_model_dir
from rls_tf.schedules import learning_rate as scheduled_learning_rate
from rls_tf import training_config
from rls_tf.training_config import ADV_TRAIN
from rls_tf.training_config import LOSSES
from rls_tf.training_config import TrainConfig
from rls_tf.training_config import defaults as config_defaults
from rls_tf.training_config import paper_epochs
from rls_tf.training_config import resume_keys

__all__ = ["ADV_TRAIN", "TrainConfig", "train", "LOSSES", "paper_epochs"]

# Wong et al.'s early-stopping batch (`TrainConfig.guard_examples`).
GUARD_EXAMPLES = training_config.GUARD_EXAMPLES


def _build(config, spec):
    """The uncompiled model of the run (`rls_tf.models.build_defense`)."""
    defense = get_defense(config.defense)
    options = {name: getattr(config, name) for name in defense.uses}
    for param in defense.params:
        value = getattr(config, param.key)
        options[param.option_name] = param.load(value) if param.load is not None else value
    return build_defense(config.defense, config.backbone, num_classes=spec.num_classes,
                         input_shape=spec.input_shape, weight_decay=config.weight_decay,
                         backbone_options=config.backbone_options(), **options)


def _learning_rate(config, steps_per_epoch):
    """SGD learning rate of the run (`rls_tf.schedules.learning_rate`)."""
    return scheduled_learning_rate(
        config.lr_schedule, config.learning_rate, config.resolved_epochs(), steps_per_epoch,
        decay_epochs=config.lr_decay_epochs, decay_factor=config.lr_decay_factor,
        warmup_epochs=config.lr_warmup_epochs)


def _compiled_loss(config):
    """The loss compiled into rls / plain / rse models."""
    if config.loss == "mse":
        return GroupMSE()
    if config.label_smoothing:
        return GroupCrossEntropy(label_smoothing=config.label_smoothing)
    return "sparse_categorical_crossentropy"


def _overfit_guard(config, recipe, state_dir):
    """The run's `OverfitGuard` on its first training images, or None.

    It keeps its state in `state_dir` (the run's checkpoints/) after every
    epoch, so that a resumed run continues it (`OverfitGuard.restore`).
    """
    examples = config.guard_examples()
    if recipe is None or examples == 0:
        return None
    x, y = rls_data.load_numpy(config.dataset, "train", config.data_dir, examples)
    return adversarial.OverfitGuard(rls_data.to_model_range(x), y, eps=recipe.eps,
                                    state_dir=state_dir)


def _check_resume(config, model_dir):
    path = os.path.join(model_dir, "config.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        saved = json.load(f)
    current = config.to_json()
    # A setting newer than the saved run reads as its default there.
    defaults = config_defaults()
    different = {
        k: (saved.get(k, defaults.get(k)), current[k]) for k in resume_keys(config)
        if saved.get(k, defaults.get(k)) != current[k]
    }
    if different:
        details = ", ".join(f"{k}: saved {a!r} vs now {b!r}" for k, (a, b) in different.items())
        raise ValueError(
            f"--model_dir={model_dir} holds a checkpoint of a different run ({details}). "
            "Use a new --model_dir, or rerun with the same settings to resume."
        )


def _warm_start(model, config):
    """Copies the weights of ``config.init_from``'s model.keras into `model`."""
    directory = config.init_from
    source, source_config = load_model_dir(directory, flag="init_from")
    problems = []
    if source_config is not None:
        current = config.to_json()
        defaults = config_defaults()
        keys = ["dataset", "backbone", "defense", *get_defense(config.defense).architecture]
        for key in keys:
            saved = source_config.get(key, defaults.get(key))
            if saved != current[key]:
                problems.append(f"{key}: {saved!r} there vs {current[key]!r} here")
    if not problems and type(source) is not type(model):
        problems.append(f"a {type(source).__name__} there vs a {type(model).__name__} here")
    if not problems:
        theirs, ours = source.weights, model.weights
        if len(theirs) != len(ours):
            problems.append(f"{len(theirs)} weights there vs {len(ours)} here")
        else:
            for a, b in zip(theirs, ours):
                if tuple(a.shape) != tuple(b.shape):
                    problems.append(f"weight {b.path!r}: shape {tuple(a.shape)} there vs "
                                    f"{tuple(b.shape)} here")
                    break
    if problems:
        raise ValueError(
            f"--init_from={directory} does not hold the model of this run "
            f"({'; '.join(problems)}). Warm-start from a run of the same defense, dataset, "
            f"backbone and architecture settings. Received: init_from={directory!r}")
    model.set_weights(source.get_weights())
    print(f"Initialised the weights from {os.path.join(directory, 'model.keras')}.")


def train(config):
    """Trains, checkpoints, evaluates and saves an RLS model.

    Writes into ``config.model_dir``: ``config.json``, ``checkpoints/``
    (the last two complete epochs, ``latest.keras`` and ``previous.keras``,
    atomically; see `rls_tf.checkpoints`), ``logs/`` (TensorBoard),
    ``model.keras`` (final model) and ``metrics.json`` (per-epoch history and
    the test accuracy of the N-sample ensemble). Rerunning with the same
    settings resumes after the last complete epoch; if that checkpoint is
    damaged, after the one before (with a warning naming the lost epoch).

    Args:
        config: a `TrainConfig`.

    Returns:
        The metrics dict written to ``metrics.json``.

    Raises:
        ValueError: bad configuration, a model_dir of a different run, or an
            ``init_from`` run whose model does not match.
        rls_tf.checkpoints.CheckpointError: (a ValueError) the model_dir holds
            checkpoints but none is usable (the message names the damaged
            files); the run is never started over on top of them.
        rls_tf.data.DatasetUnavailableError: the data can be neither found nor
            downloaded (the message says how to supply it offline).

    Example:

    >>> # train(TrainConfig(dataset="mnist", backbone="small_cnn", epochs=3,
    >>> #                   data_dir="../shared/data", model_dir="runs/mnist"))
    """
    config.validate()
    strategy = rls_distribute.make_strategy(config.strategy, config.tpu)
    # Multi-worker: every worker runs the same steps, only the chief writes
    # the run's files; the others write theirs to scratch space.
    chief = rls_distribute.is_chief(strategy)
    model_dir = config.model_dir
    write_dir = model_dir if chief else tempfile.mkdtemp(prefix="rls-worker-")
    try:
        return _train(config, strategy, model_dir, write_dir, chief)
    finally:
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)


def _train(config, strategy, model_dir, write_dir, chief):
    os.makedirs(model_dir, exist_ok=True)
    checkpoint_dir = os.path.join(model_dir, "checkpoints")
    # Fails here, before any work, when checkpoints exist but none is usable.
    checkpoints = find_checkpoints(checkpoint_dir)
    if checkpoints:
        _check_resume(config, model_dir)
    if chief:
        write_json_atomic(os.path.join(model_dir, "config.json"), config.to_json())
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)

    spec = rls_data.dataset_spec(config.dataset)
    train_ds = rls_data.make_dataset(
        config.dataset, "train", config.batch_size, data_dir=config.data_dir,
        training=True, augment=config.augment,
        max_examples=config.max_train_examples, seed=config.seed,
    )
    test_ds = rls_data.make_dataset(
        config.dataset, "test", config.batch_size, data_dir=config.data_dir,
        training=False, max_examples=config.max_test_examples,
    )
    steps_per_epoch = int(train_ds.cardinality())
    if steps_per_epoch < 1:
        raise ValueError(f"No training data for dataset={config.dataset!r}.")
    test_examples = int(test_ds.reduce(0, lambda n, batch: n + tf.shape(batch[1])[0]))
    epochs = config.resolved_epochs()

    # Variables (model and optimizer) are created under the strategy, so
    # they are mirrored on every replica; fit then splits each global batch.
    with strategy.scope():
        restored = restore_checkpoint(checkpoint_dir, checkpoints=checkpoints)
        resumed = None
        if restored is not None:
            model, resumed = restored
            initial_epoch, history = resumed.epoch, resumed.state["history"]
            print(f"Resuming from {resumed.path}: {initial_epoch} of {epochs} epochs done.")
        else:
            model = _build(config, spec)
            optimizer = keras.optimizers.SGD(
                learning_rate=_learning_rate(config, steps_per_epoch), momentum=config.momentum,
                nesterov=config.nesterov)
            if get_defense(config.defense).own_loss:
                # Their loss is their own (e.g. the sum over members, ADP's terms).
                model.compile(optimizer=optimizer, metrics=["accuracy"])
            else:
                model.compile(
                    optimizer=optimizer,
                    loss=_compiled_loss(config),
                    metrics=["accuracy"],
                )
            initial_epoch, history = 0, {}
            if not get_defense(config.defense).trains:
                initial_epoch = epochs  # a wrap of a trained model: nothing to train
            if config.init_from is not None:
                _warm_start(model, config)
        # A training-time option, not saved with the model: set again on resume.
        recipe = config.adversarial_training()
        adversarial_callbacks = [] if recipe is None else adversarial.enable(model, recipe)
        guard = _overfit_guard(config, recipe, os.path.join(write_dir, "checkpoints"))
        if guard is not None:
            adversarial_callbacks.insert(0, guard)
            if resumed is not None:
                guard.restore(initial_epoch, directory=checkpoint_dir)
    # N can be changed at evaluation time without touching the checkpoint.
    model.eval_samples = config.eval_samples
    if hasattr(model, "label_smoothing"):
        # Ensembles' fixed loss reads it; a training-time setting, set on resume too.
        model.label_smoothing = config.label_smoothing

    started = time.time()
    if guard is not None and guard.collapsed_epoch is not None:
        # The run stopped on a collapse with its best epoch restored (that
        # is the checkpoint resumed): it does not train on.
        print(f"The overfitting guard stopped this run at epoch {guard.collapsed_epoch + 1} "
              f"(best epoch {guard.best_epoch + 1}); not training further.")
    elif initial_epoch < epochs:
        checkpointer = AtomicCheckpoint(os.path.join(write_dir, "checkpoints"), history=history,
                                        resumed=resumed if chief else None)
        model.fit(
            train_ds,
            # The dataset reshuffles itself every epoch (rls_tf.data); Keras
            # warns that its own shuffle would be ignored unless told.
            shuffle=False,
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=[
                *adversarial_callbacks,
                checkpointer,
                keras.callbacks.TensorBoard(log_dir=os.path.join(write_dir, "logs")),
            ],
            verbose=config.verbose,
        )
        history = checkpointer.history
    train_seconds = time.time() - started

    evaluation = model.evaluate(test_ds, verbose=config.verbose, return_dict=True)
    save_model_atomic(model, os.path.join(write_dir, "model.keras"))
    metrics = {
        "defense": config.defense,
        "dataset": config.dataset,
        "backbone": config.backbone,
        "num_submodels": config.num_submodels,
        "num_samples": config.num_samples,
        "eval_samples": config.eval_samples,
        "epochs": epochs,
        "history": history,
        "test_accuracy": float(evaluation["accuracy"]),
        "test_loss": float(evaluation["loss"]),
        "test_examples": test_examples,
        "train_seconds_this_run": train_seconds,
        "strategy": config.strategy,
        "num_replicas": strategy.num_replicas_in_sync,
        "adversarial_training": None if recipe is None else recipe.to_json(),
        "overfit_guard": None if guard is None else guard.to_json(),
        "init_from": config.init_from,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    write_json_atomic(os.path.join(write_dir, "metrics.json"), metrics)
    what = get_defense(config.defense).describe_run(config, model)
    print(
        f"Test accuracy of the {what}, {metrics['test_examples']} {config.dataset} "
        f"test images, clean): {metrics['test_accuracy']:.4f}"
    )
    if recipe is not None:
        method = {"pgd": "PGD", "fgsm_rs": "FGSM-RS"}[recipe.method]
        steps = f"{recipe.steps} step{'s' if recipe.steps != 1 else ''}"
        print(f"Adversarially trained: {method}, eps {recipe.eps:g} ([-1, 1] pixels), "
              f"{steps} of {recipe.step_size:g}, ratio {recipe.ratio:g}, "
              f"crafted on {recipe.craft_on!r}"
              + (f", eps ramped over {recipe.ramp_epochs} epochs" if recipe.ramp_epochs else "")
              + ".")
    return metrics
