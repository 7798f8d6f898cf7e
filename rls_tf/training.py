"""End-to-end training of an RLS model: config, data, model, `fit`, resume, results.

Owns `TrainConfig` (every setting, validated) and `train` (one run in a
model directory, resumed after its last usable checkpoint). The command
line `train.py` / ``rls-train`` (`rls_tf.cli.train`) is a thin layer over
`train`; user code can call it too.
"""

import dataclasses
import json
import os
import shutil
import tempfile
import time
from typing import Optional, Sequence

import keras
import tensorflow as tf

from rls_tf import adversarial
from rls_tf import data as rls_data
from rls_tf import distribute as rls_distribute
from rls_tf.callbacks import AtomicCheckpoint
from rls_tf.callbacks import find_checkpoints
from rls_tf.callbacks import restore_checkpoint
from rls_tf.callbacks import save_model_atomic
from rls_tf.callbacks import write_json_atomic
from rls_tf.losses import GroupCrossEntropy
from rls_tf.losses import GroupMSE
from rls_tf.models import BACKBONES
from rls_tf.models.backbones import check_backbone_options
from rls_tf.models import TRAIN_FORWARDS
from rls_tf.models import build_defense
from rls_tf.models import load_model_dir
from rls_tf.models.defenses import get_defense
from rls_tf.schedules import LR_SCHEDULES
from rls_tf.schedules import learning_rate as scheduled_learning_rate
from rls_tf.validation import check_bool
from rls_tf.validation import check_choice
from rls_tf.validation import check_float
from rls_tf.validation import check_int
from rls_tf.validation import check_seed

__all__ = ["ADV_TRAIN", "TrainConfig", "train", "LOSSES", "paper_epochs"]

LOSSES = ("crossentropy", "mse")
ADV_TRAIN = ("none",) + adversarial.METHODS
# Wong et al.'s early-stopping batch: their first training minibatch.
GUARD_EXAMPLES = 128

# Fields that define the model or its optimisation: a resumed run must match.
_RESUME_KEYS = (
    "defense", "ensemble_size", "adp_alpha", "adp_beta", "rse_init_std", "rse_inner_std",
    "sap_frac", "base_model_dir",
    "dataset", "backbone", "num_submodels", "num_samples", "mu", "batch_size",
    "learning_rate", "lr_decay_epochs", "lr_decay_factor", "lr_schedule", "lr_warmup_epochs",
    "weight_decay", "momentum", "nesterov", "label_smoothing", "backbone_width", "per_example_sampling", "max_train_examples", "loss",
    "train_forward", "augment",
    "adv_train", "adv_eps", "adv_steps", "adv_step_size", "adv_ratio", "adv_random_start",
    "adv_craft_on", "adv_ramp_epochs", "init_from",
)


def paper_epochs(dataset):
    """Training length of the paper: 50 epochs on MNIST, 150 otherwise."""
    return 50 if dataset in ("mnist", "fashion_mnist") else 150


@dataclasses.dataclass
class TrainConfig:
    """Everything `train` needs; defaults are the paper's (Lee et al. 4.1).

    Attributes:
        defense: one of `rls_tf.models.DEFENSES` ("rls", "plain",
            "ensemble", "adp", "rse", "sap").
        dataset: one of `rls_tf.data.DATASETS`.
        backbone: one of `rls_tf.models.BACKBONES`.
        num_submodels: M of rls (1 trains the plain, undefended network;
            defense "plain" sets it to 1).
        ensemble_size: members of ensemble / adp.
        adp_alpha, adp_beta: ADP's ensemble-entropy and log-det weights.
        rse_init_std, rse_inner_std: RSE noise std before the first / the
            other convolutions, in [0, 1] pixel units (None: the defense's
            defaults).
        sap_frac: SAP's draws per activation count.
        base_model_dir: sap: the run directory of the trained plain model
            it wraps (no further training).
        num_samples: K, sampled models per training step.
        eval_samples: N, sampled models averaged at test time.
        mu: sampling probabilities of the M copies (None: uniform).
        epochs: None for the paper's (50 MNIST-like, 150 otherwise).
        batch_size: examples per step.
        learning_rate: initial (``step``) or peak (``onecycle``) SGD
            learning rate.
        lr_schedule: "step" (the paper's: divided every `lr_decay_epochs`)
            or "onecycle" (linear warmup over `lr_warmup_epochs`, then linear
            decay towards 0 at the last step; `rls_tf.schedules.OneCycle`).
        lr_decay_epochs: step: divide the learning rate by
            1/lr_decay_factor every this many epochs (0: never).
        lr_decay_factor: step: multiplier applied at each decay.
        lr_warmup_epochs: onecycle: epochs of the linear rise (fractions
            allowed).
        weight_decay: SGD weight decay (L2 on kernels, PyTorch convention).
        momentum: SGD momentum.
        nesterov: Nesterov momentum.
        label_smoothing: cross-entropy target ``(1 - s) one_hot + s / K``
            (rls/plain/rse: of the mean prediction; ensemble/adp: of every
            member); 0 for none. Not with loss="mse".
        backbone_width: the backbone's ``width`` option (small_cnn,
            resnet9); None for its default.
        seed: None, or an int that makes the run reproducible (global Keras /
            TF / NumPy seeds; the saved model itself stays unseeded).
        data_dir: TFDS data directory or directory of original files.
        model_dir: output directory (checkpoints, model, logs, JSON).
        per_example_sampling: every example draws its own path.
        max_train_examples: keep only the first N training examples.
        max_test_examples: evaluate on the first N test examples only.
        augment: light augmentation (crop, and flip for CIFAR-10).
        loss: "crossentropy" (of the mean of the K softmax outputs) or "mse"
            (the paper's eq. 7).
        train_forward: "loop" or "tiled" (see `RLSModel`).
        verbose: Keras verbosity (1: progress bar).
        strategy: tf.distribute strategy, one of
            `rls_tf.distribute.STRATEGIES` ("default", "mirrored",
            "multi_worker", "tpu"); `batch_size` is the global batch, split
            across the replicas.
        tpu: TPU address for strategy="tpu" (None: from the environment).
        adv_train: "none" (clean training), "pgd" (Madry et al.'s PGD
            adversarial training) or "fgsm_rs" (Wong et al. 2020: one FGSM
            step of 1.25 eps from a random start); `rls_tf.adversarial`;
            every defense that trains, not sap.
        adv_eps: pgd: L-inf radius in the model's [-1, 1] pixel units, as
            attack_eval's eps (Madry's MNIST 0.3 in [0, 1] units is 0.6);
            required with adv_train="pgd".
        adv_steps: attack steps per training step (None: 10 for pgd, 1
            for fgsm_rs, which takes exactly one).
        adv_step_size: attack step (None: 2.5 * adv_eps / adv_steps for pgd,
            1.25 * adv_eps for fgsm_rs).
        adv_ratio: share of the adversarial loss in [0, 1] (1: all
            adversarial).
        adv_random_start: start uniformly in the eps-ball.
        adv_craft_on: "mean" (the step's mean prediction: the K sampled
            models of rls, the members of an ensemble) or "one".
        adv_ramp_epochs: raise eps linearly from 0 over this many epochs.
        adv_guard_examples: the catastrophic-overfitting guard
            (`rls_tf.adversarial.OverfitGuard`): PGD-5 accuracy on the first
            this many training images (unaugmented) after every epoch; a
            drop of more than 0.2 below the best epoch stops the run and
            restores that epoch. None: 128 for fgsm_rs, off (0) otherwise.
        init_from: a finished run directory whose model.keras initialises
            the weights (same defense and architecture), e.g. a clean run
            to fine-tune adversarially; used when the run starts, not when
            it resumes.
    """

    dataset: str = "mnist"
    backbone: str = "resnet50"
    defense: str = "rls"
    ensemble_size: int = 3
    adp_alpha: float = 2.0
    adp_beta: float = 0.5
    rse_init_std: Optional[float] = None
    rse_inner_std: Optional[float] = None
    sap_frac: float = 1.0
    base_model_dir: Optional[str] = None
    num_submodels: int = 2
    num_samples: int = 3
    eval_samples: int = 10
    mu: Optional[Sequence[float]] = None
    epochs: Optional[int] = None
    batch_size: int = 128
    learning_rate: float = 0.01
    lr_decay_epochs: int = 50
    lr_decay_factor: float = 0.1
    lr_schedule: str = "step"
    lr_warmup_epochs: float = 0.0
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = False
    label_smoothing: float = 0.0
    backbone_width: Optional[int] = None
    seed: Optional[int] = None
    data_dir: Optional[str] = None
    model_dir: str = "runs/rls"
    per_example_sampling: bool = False
    max_train_examples: Optional[int] = None
    max_test_examples: Optional[int] = None
    augment: bool = False
    loss: str = "crossentropy"
    train_forward: str = "loop"
    verbose: int = 1
    strategy: str = "default"
    tpu: Optional[str] = None
    adv_train: str = "none"
    adv_eps: Optional[float] = None
    adv_steps: Optional[int] = None
    adv_step_size: Optional[float] = None
    adv_ratio: float = 1.0
    adv_random_start: bool = True
    adv_craft_on: str = "mean"
    adv_ramp_epochs: int = 0
    adv_guard_examples: Optional[int] = None
    init_from: Optional[str] = None

    def validate(self):
        """Raises ValueError naming the first bad field and its value."""
        rls_data.dataset_spec(self.dataset)
        get_defense(self.defense)
        if self.defense == "plain":
            self.num_submodels = 1
        if self.defense in ("ensemble", "adp"):
            check_int("ensemble_size", self.ensemble_size, minimum=2)
        check_float("adp_alpha", self.adp_alpha, minimum=0.0)
        check_float("adp_beta", self.adp_beta, minimum=0.0)
        for name in ("rse_init_std", "rse_inner_std"):
            check_float(name, getattr(self, name), minimum=0.0, allow_none=True)
        check_float("sap_frac", self.sap_frac, minimum=0.0, maximum=1.0, min_open=True)
        if (self.defense == "sap") != (self.base_model_dir is not None):
            raise ValueError(
                "`base_model_dir` (the trained plain run a SAP model wraps) is required by "
                "defense='sap' and used by it only. Received: "
                f"defense={self.defense!r}, base_model_dir={self.base_model_dir!r}")
        if self.backbone not in BACKBONES:
            raise ValueError(
                f"Unknown backbone: Received: backbone={self.backbone!r}. "
                f"Expected one of {BACKBONES}."
            )
        for name in ("num_submodels", "num_samples", "eval_samples", "batch_size"):
            check_int(name, getattr(self, name), minimum=1)
        for name in ("epochs", "max_train_examples", "max_test_examples"):
            check_int(name, getattr(self, name), minimum=1, allow_none=True)
        check_int("lr_decay_epochs", self.lr_decay_epochs, minimum=0)
        check_int("verbose", self.verbose, minimum=0)
        check_seed("seed", self.seed)
        check_float("learning_rate", self.learning_rate, minimum=0.0, min_open=True)
        check_float("lr_decay_factor", self.lr_decay_factor, minimum=0.0, maximum=1.0,
                    min_open=True)
        check_float("weight_decay", self.weight_decay, minimum=0.0)
        check_float("momentum", self.momentum, minimum=0.0)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_float("lr_warmup_epochs", self.lr_warmup_epochs, minimum=0.0)
        if self.lr_schedule == "onecycle" and self.lr_warmup_epochs >= self.resolved_epochs():
            raise ValueError(
                "`lr_warmup_epochs` must be shorter than the run. Received: "
                f"lr_warmup_epochs={self.lr_warmup_epochs!r}, epochs={self.resolved_epochs()!r}")
        if self.lr_schedule != "onecycle" and self.lr_warmup_epochs:
            raise ValueError(
                "`lr_warmup_epochs` is used with lr_schedule='onecycle' only. Received: "
                f"lr_schedule={self.lr_schedule!r}, lr_warmup_epochs={self.lr_warmup_epochs!r}")
        check_float("label_smoothing", self.label_smoothing, minimum=0.0, maximum=1.0,
                    max_open=True)
        if self.label_smoothing and self.loss == "mse":
            raise ValueError(
                "`label_smoothing` smooths the cross-entropy target; the paper's MSE "
                "(loss='mse') takes none. Received: "
                f"loss={self.loss!r}, label_smoothing={self.label_smoothing!r}")
        check_int("backbone_width", self.backbone_width, minimum=1, allow_none=True)
        if self.backbone_width is not None:
            try:
                check_backbone_options(self.backbone, self.backbone_options())
            except ValueError:
                raise ValueError(
                    f"backbone {self.backbone!r} has no width option. Received: "
                    f"backbone_width={self.backbone_width!r}") from None
        for name in ("per_example_sampling", "augment", "nesterov"):
            check_bool(name, getattr(self, name))
        check_choice("loss", self.loss, LOSSES)
        check_choice("train_forward", self.train_forward, TRAIN_FORWARDS)
        if not self.model_dir:
            raise ValueError(f"`model_dir` must be set. Received: model_dir={self.model_dir!r}")
        check_choice("strategy", self.strategy, rls_distribute.STRATEGIES)
        if self.tpu is not None and self.strategy != "tpu":
            raise ValueError(
                "`tpu` is only used with strategy='tpu'. "
                f"Received: tpu={self.tpu!r}, strategy={self.strategy!r}"
            )
        self._validate_adversarial()
        # mu is checked against num_submodels by the layers; fail before any work.
        from rls_tf.layers.base import _check_mu
        _check_mu(self.mu, self.num_submodels)
        return self

    def _validate_adversarial(self):
        check_choice("adv_train", self.adv_train, ADV_TRAIN)
        trains = get_defense(self.defense).trains
        check_int("adv_guard_examples", self.adv_guard_examples, minimum=0, allow_none=True)
        if self.adv_train == "none":
            for name in ("adv_eps", "adv_step_size", "adv_guard_examples"):
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"`{name}` is used with adversarial training only. Received: "
                        f"adv_train='none', {name}={getattr(self, name)!r}")
        else:
            if not trains:
                raise ValueError(
                    f"adv_train={self.adv_train!r} is not available for defense="
                    f"{self.defense!r}: it wraps a trained model and trains nothing. "
                    "Adversarially train the plain model (defense='plain', adv_train='pgd') "
                    "and wrap that run. Received: "
                    f"defense={self.defense!r}, adv_train={self.adv_train!r}")
            if self.adv_eps is None:
                raise ValueError(
                    "`adv_eps` (the L-inf radius, in [-1, 1] pixel units) is required by "
                    f"adv_train={self.adv_train!r}. Received: adv_eps=None")
            self.adversarial_training()
        if self.init_from is not None:
            if not trains:
                raise ValueError(
                    f"`init_from` warm-starts a defense that trains. Received: "
                    f"defense={self.defense!r}, init_from={self.init_from!r}")
            if not isinstance(self.init_from, str) or not self.init_from:
                raise ValueError("`init_from` must be a run directory. Received: "
                                 f"init_from={self.init_from!r}")

    def backbone_options(self):
        """The backbone builder's keyword arguments this run sets."""
        return {} if self.backbone_width is None else {"width": self.backbone_width}

    def adversarial_training(self):
        """The run's `rls_tf.adversarial.AdversarialTraining`, or None (clean)."""
        if self.adv_train == "none":
            return None
        values = adversarial.check_recipe(
            eps=self.adv_eps, steps=self.adv_steps, step_size=self.adv_step_size,
            ratio=self.adv_ratio, random_start=self.adv_random_start,
            craft_on=self.adv_craft_on, ramp_epochs=self.adv_ramp_epochs,
            method=self.adv_train, prefix="adv_")
        return adversarial.AdversarialTraining(**values)

    def guard_examples(self):
        """Images of the overfitting guard (0: no guard)."""
        if self.adv_train == "none":
            return 0
        if self.adv_guard_examples is not None:
            return self.adv_guard_examples
        return GUARD_EXAMPLES if self.adv_train == "fgsm_rs" else 0

    def resolved_epochs(self):
        return self.epochs if self.epochs is not None else paper_epochs(self.dataset)

    def to_json(self):
        payload = dataclasses.asdict(self)
        payload["mu"] = None if self.mu is None else [float(v) for v in self.mu]
        payload["epochs"] = self.resolved_epochs()
        recipe = self.adversarial_training()
        # Resolved, so that runs saved before the default depended on the
        # method still resume (their config.json says 10).
        payload["adv_steps"] = (adversarial.default_steps(self.adv_train) if recipe is None
                                else recipe.steps)
        payload["adversarial_training"] = None if recipe is None else recipe.to_json()
        return payload


def _build(config, spec):
    """The uncompiled model of the run (`rls_tf.models.build_defense`)."""
    options = {}
    for name in get_defense(config.defense).options:
        if name == "base_model":
            options[name] = load_model_dir(config.base_model_dir, flag="base_model_dir")[0]
        else:
            options[name] = getattr(config, name)
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


def _overfit_guard(config, recipe):
    """The run's `OverfitGuard` on its first training images, or None."""
    examples = config.guard_examples()
    if recipe is None or examples == 0:
        return None
    x, y = rls_data.load_numpy(config.dataset, "train", config.data_dir, examples)
    return adversarial.OverfitGuard(rls_data.to_model_range(x), y, eps=recipe.eps)


def _check_resume(config, model_dir):
    path = os.path.join(model_dir, "config.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        saved = json.load(f)
    current = config.to_json()
    # A setting newer than the saved run reads as its default there.
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    different = {
        k: (saved.get(k, defaults.get(k)), current[k]) for k in _RESUME_KEYS
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
        defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
        keys = ["dataset", "backbone", "defense"]
        if config.defense in ("rls", "plain"):
            keys.append("num_submodels")
        elif config.defense in ("ensemble", "adp"):
            keys.append("ensemble_size")
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
    atomically; see `rls_tf.callbacks`), ``logs/`` (TensorBoard),
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
        rls_tf.callbacks.CheckpointError: (a ValueError) the model_dir holds
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
            if config.defense in ("ensemble", "adp"):
                # Their loss is their own (the sum over members, ADP's terms).
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
        guard = _overfit_guard(config, recipe)
        if guard is not None:
            adversarial_callbacks.insert(0, guard)
    # N can be changed at evaluation time without touching the checkpoint.
    model.eval_samples = config.eval_samples
    if hasattr(model, "label_smoothing"):
        # Ensembles' fixed loss reads it; a training-time setting, set on resume too.
        model.label_smoothing = config.label_smoothing

    started = time.time()
    if initial_epoch < epochs:
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
    if config.defense == "rls" and model.is_stochastic:
        what = f"N={config.eval_samples}-sample ensemble (M={config.num_submodels}"
    elif config.defense in ("rls", "plain"):
        what = "plain network (M=1, deterministic"
    elif config.defense in ("ensemble", "adp"):
        what = f"{config.defense} of {config.ensemble_size} members (deterministic"
    else:
        what = f"{config.defense} defense, mean of N={config.eval_samples} draws ("
        what += "stochastic"
    print(
        f"Test accuracy of the {what}, {metrics['test_examples']} {config.dataset} "
        f"test images, clean): {metrics['test_accuracy']:.4f}"
    )
    if recipe is not None:
        method = {"pgd": "PGD", "fgsm_rs": "FGSM-RS"}[recipe.method]
        print(f"Adversarially trained: {method}, eps {recipe.eps:g} ([-1, 1] pixels), "
              f"{recipe.steps} step{'s' if recipe.steps != 1 else ''} of {recipe.step_size:g}, ratio {recipe.ratio:g}, "
              f"crafted on {recipe.craft_on!r}"
              + (f", eps ramped over {recipe.ramp_epochs} epochs" if recipe.ramp_epochs else "")
              + ".")
    return metrics
