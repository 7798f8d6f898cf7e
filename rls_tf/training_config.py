"""The settings of a training run: `TrainConfig` = common fields + the defense's parameters.

The common fields (data, backbone, optimisation, N, adversarial training,
output) are declared here; every registered defense's parameters
(`rls_tf.defenses.specs.Param`: RLS's num_submodels, num_samples, mu,
per_example_sampling and train_forward, ensemble_size, adp_alpha, ...) are
generated from the registry (`rls_tf.defenses.registry`), so a config
takes them as keywords (``TrainConfig(defense="adp", adp_alpha=1.0)``),
validates the chosen defense's and writes them to ``config.json`` beside
the common ones, at the top level. Run directories written before (every
parameter of every defense, and RLS's settings, in ``config.json``) still
resume: a key a run does not use is not compared, and one a run uses but
its ``config.json`` lacks reads as its default.

Example:

>>> config = TrainConfig(dataset="mnist", backbone="small_cnn", defense="adp",
...                      ensemble_size=2).validate()
>>> config.to_json()["adp_alpha"]
2.0
"""

import dataclasses
from typing import Optional, Sequence

from rls_tf import adversarial
from rls_tf import data as rls_data
from rls_tf import distribute as rls_distribute
from rls_tf.defenses import registry
from rls_tf.models.backbones import BACKBONES
from rls_tf.models.backbones import get_backbone_spec
from rls_tf.schedules import LR_SCHEDULES
from rls_tf.validation import check_bool
from rls_tf.validation import check_choice
from rls_tf.validation import check_float
from rls_tf.validation import check_int
from rls_tf.validation import check_seed

__all__ = ["ADV_TRAIN", "GUARD_EXAMPLES", "LOSSES", "TrainConfig", "paper_epochs",
           "resume_keys"]

LOSSES = ("crossentropy", "mse")
ADV_TRAIN = ("none",) + adversarial.METHODS
# Wong et al.'s early-stopping batch: their first training minibatch.
GUARD_EXAMPLES = 128

# Common fields that define the model or its optimisation: a resumed run
# must match (with the chosen defense's parameters, `resume_keys`).
_RESUME_KEYS = (
    "defense", "dataset", "backbone", "batch_size",
    "learning_rate", "lr_decay_epochs", "lr_decay_factor", "lr_schedule", "lr_warmup_epochs",
    "weight_decay", "momentum", "nesterov", "label_smoothing", "backbone_width",
    "max_train_examples", "loss", "augment",
    "adv_train", "adv_eps", "adv_steps", "adv_step_size", "adv_ratio", "adv_random_start",
    "adv_craft_on", "adv_ramp_epochs", "init_from",
)


def paper_epochs(dataset):
    """Training length of the paper: 50 epochs on MNIST, 150 otherwise (the entry's `paper_epochs`)."""
    spec = rls_data.DATASET_SPECS.get(dataset)
    # An unknown name is `validate`'s to report; its length is the common one.
    return 150 if spec is None else spec.paper_epochs




@dataclasses.dataclass(init=False, eq=False, repr=False)
class TrainConfig:
    """Everything `train` needs; defaults are the paper's (Lee et al. 4.1).

    Attributes:
        defense: one of `rls_tf.defenses.DEFENSES` ("rls", "plain",
            "ensemble", "adp", "rse", "sap", or one registered since).
        **parameters: the defense's own settings, as keywords and
            attributes: those of `get_defense(defense).params`, e.g. RLS's
            ``num_submodels`` (M; plain's is always 1), ``num_samples``
            (K, sampled models per training step), ``mu`` (sampling
            probabilities of the M copies, None: uniform),
            ``per_example_sampling`` and ``train_forward`` ("loop" or
            "tiled", see `RLSModel`), and ``ensemble_size``, ``adp_alpha``,
            ``adp_beta``, ``rse_init_std``, ``rse_inner_std``, ``sap_frac``,
            ``base_model_dir``; their defaults, checks and help live in the
            registry entry.
        dataset: one of `rls_tf.data.DATASETS`.
        backbone: one of `rls_tf.models.BACKBONES`.
        eval_samples: N, sampled models averaged at test time.
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
        backbone_width: the backbone's ``width`` option, for backbones whose
            entry has one (`rls_tf.models.backbones.backbones_with_option`);
            None for its default.
        seed: None, or an int that makes the run reproducible (global Keras /
            TF / NumPy seeds; the saved model itself stays unseeded).
        data_dir: TFDS data directory or directory of original files.
        model_dir: output directory (checkpoints, model, logs, JSON).
        max_train_examples: keep only the first N training examples.
        max_test_examples: evaluate on the first N test examples only.
        augment: light augmentation (crop, and flip for CIFAR-10).
        loss: "crossentropy" (of the mean of the K softmax outputs) or "mse"
            (the paper's eq. 7).
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
        adv_eps: L-inf radius in the model's [-1, 1] pixel units, as
            attack_eval's eps (Madry's MNIST 0.3 in [0, 1] units is 0.6);
            required with adv_train="pgd" and "fgsm_rs".
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
    eval_samples: int = 10
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
    max_train_examples: Optional[int] = None
    max_test_examples: Optional[int] = None
    augment: bool = False
    loss: str = "crossentropy"
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

    def __init__(self, **settings):
        params = registry.all_params()
        for field in _COMMON_FIELDS:
            value = settings.pop(field.name, field.default)
            if value is dataclasses.MISSING:
                value = field.default_factory()
            setattr(self, field.name, value)
        unknown = sorted(set(settings) - set(params))
        if unknown:
            raise TypeError(
                f"Unknown TrainConfig settings. Received: {unknown}. Expected common fields or "
                f"the parameters of a registered defense ({sorted(params)}).")
        for key, value in settings.items():
            setattr(self, key, value)

    def __getattr__(self, name):
        # A defense parameter not set on this config (or registered after it
        # was made) reads as its default.
        param = registry.all_params().get(name)
        if param is None or name.startswith("__"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return param.default

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __repr__(self):
        body = ", ".join(f"{k}={v!r}" for k, v in self._values().items())
        return f"{type(self).__name__}({body})"

    def _values(self):
        values = {f.name: getattr(self, f.name) for f in _COMMON_FIELDS}
        values.update(self.defense_parameters())
        return values

    def defense_spec(self):
        """The `rls_tf.defenses.specs.DefenseSpec` of `defense`."""
        return registry.get_defense(self.defense)

    def defense_parameters(self):
        """Key -> value of the chosen defense's parameters and of the settings it fixes.

        A fixed setting (`DefenseSpec.fixed`, e.g. plain's num_submodels 1)
        is recorded with its forced value, so that ``config.json`` says
        what was built.
        """
        spec = registry.DEFENSES.get(self.defense)
        if spec is None:
            return {}
        values = {p.key: getattr(self, p.key) for p in spec.params}
        values.update(spec.fixed)
        return values

    def validate(self):
        """Raises ValueError naming the first bad field and its value."""
        rls_data.dataset_spec(self.dataset)
        self._validate_defense()
        if self.backbone not in BACKBONES:
            raise ValueError(
                f"Unknown backbone: Received: backbone={self.backbone!r}. "
                f"Expected one of {BACKBONES}."
            )
        for name in ("eval_samples", "batch_size"):
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
        if self.backbone_width is not None:
            # Which backbones take a width, and its check, are their entries'.
            width = get_backbone_spec(self.backbone).param("width")
            if width is None:
                raise ValueError(
                    f"backbone {self.backbone!r} has no width option. Received: "
                    f"backbone_width={self.backbone_width!r}")
            width.check(self.backbone_width, name="backbone_width")
        for name in ("augment", "nesterov"):
            check_bool(name, getattr(self, name))
        check_choice("loss", self.loss, LOSSES)
        if not self.model_dir:
            raise ValueError(f"`model_dir` must be set. Received: model_dir={self.model_dir!r}")
        check_choice("strategy", self.strategy, rls_distribute.STRATEGIES)
        if self.tpu is not None and self.strategy != "tpu":
            raise ValueError(
                "`tpu` is only used with strategy='tpu'. "
                f"Received: tpu={self.tpu!r}, strategy={self.strategy!r}"
            )
        self._validate_adversarial()
        # mu is checked against num_submodels by the layers; fail before any
        # work. Every defense, as when both were common fields: a mu the
        # chosen defense ignores is still checked against the default M.
        from rls_tf.layers.base import _check_mu
        _check_mu(self.mu, self.num_submodels)
        return self

    def _validate_defense(self):
        spec = registry.get_defense(self.defense)
        for key, value in spec.fixed:
            setattr(self, key, value)
        for param in spec.params:
            value = param.check(getattr(self, param.key))
            if param.required and value is None:
                raise ValueError(
                    f"`{param.key}` ({param.help.rstrip('.')}) is required by "
                    f"defense={spec.name!r} and used by it only. Received: "
                    f"defense={spec.name!r}, {param.key}=None")
            setattr(self, param.key, value)
        for param in registry.all_params().values():
            value = getattr(self, param.key)
            if param.exclusive and param.key not in spec.param_keys and value != param.default:
                users = registry.defenses_of(param.key)
                raise ValueError(
                    f"`{param.key}` is used by defense={users[0] if len(users) == 1 else users!r}"
                    f" only. Received: defense={spec.name!r}, {param.key}={value!r}")

    def _validate_adversarial(self):
        check_choice("adv_train", self.adv_train, ADV_TRAIN)
        trains = registry.get_defense(self.defense).trains
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
        payload = {f.name: getattr(self, f.name) for f in _COMMON_FIELDS}
        params = registry.all_params()
        payload.update({k: params[k].to_json(v) if k in params else v
                        for k, v in self.defense_parameters().items()})
        payload["epochs"] = self.resolved_epochs()
        recipe = self.adversarial_training()
        # Resolved, so that runs saved before the default depended on the
        # method still resume (their config.json says 10).
        payload["adv_steps"] = (adversarial.default_steps(self.adv_train) if recipe is None
                                else recipe.steps)
        payload["adversarial_training"] = None if recipe is None else recipe.to_json()
        return payload



_COMMON_FIELDS = dataclasses.fields(TrainConfig)


def _sync_fields():
    """Lists the registered defenses' parameters among `TrainConfig`'s fields.

    So that ``dataclasses.fields(TrainConfig)`` (and ``asdict`` /
    ``replace``) name every setting a config takes, the defense parameters
    included, also those of a defense registered after this module.
    """
    params = registry.all_params()
    generated = dataclasses.make_dataclass(
        "DefenseParameters",
        [(p.key, Optional[Sequence[p.kind] if p.multiple else p.kind],
          dataclasses.field(default=p.default)) for p in params.values()])
    fields = {f.name: f for f in _COMMON_FIELDS}
    fields.update(generated.__dataclass_fields__)
    TrainConfig.__dataclass_fields__ = fields


def resume_keys(config):
    """The ``config.json`` keys a resumed run must match (common + the defense's)."""
    spec = registry.get_defense(config.defense)
    return _RESUME_KEYS + tuple(p.key for p in spec.params if p.resume)


def defaults():
    """Key -> default of every setting (a key a saved run lacks reads as this)."""
    values = {f.name: f.default for f in _COMMON_FIELDS}
    values.update({p.key: p.default for p in registry.all_params().values()})
    return values


registry.on_change(_sync_fields)
