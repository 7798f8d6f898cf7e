"""Reproduction suites: declarative descriptions of what to train and evaluate.

A suite is plain data (`Suite.from_json` reads a JSON file of the same shape
as `Suite.to_json` writes), so a user can write their own. It names training
stages (one `train.py` run each: dataset, backbone, defense, schedule) and
evaluation stages (one `attack_eval.py` run each over some of the trained
runs: attacks, threat models, number of test images, shards). Everything is
checked against the registries before any work starts: an unknown dataset,
backbone, defense, attack, threat model, training option or preset field is
refused with its name and the allowed values.

Built-in suites (`SUITES`):

* ``smoke``: minutes on 2 cores, on whatever (tiny) data ``--data_dir``
  holds: plain and rls, one epoch of 64 images, FGSM/PGD under ``paper`` and
  ``eot`` on 8 test images. CI runs it.
* ``cpu``: the shape of the paper at CPU scale on the data of
  ``../shared/data``. MNIST (60k train): small_cnn, every defense, PGD
  adversarially trained plain and rls; the paper protocol, the adaptive
  threat models, transfer, Square, SPSA, ARC and the convergence checks on
  100 test images. CIFAR-10 (the 10k-train / 1k-test files: a fifth of the
  training set): resnet9 at width 16, every run trained with the one recipe
  ``_CIFAR_RECIPE`` (chosen by the recipe ablation in
  docs/results/cifar10_recipe: 20 epochs, onecycle to lr 0.4, Nesterov,
  flip + translate): plain, rls with the paper's MSE
  objective and with cross-entropy, base ensembles of 3 and 5, ADP, RSE,
  SAP (wrapping plain) and FGSM-RS adversarially trained plain and rls
  (8/255, from scratch). Evaluation stages, split by cost: clean accuracy,
  Table 5 and accuracy against N on all 1,000 test images
  (``cifar10_clean``); FGSM and PGD under paper / eot / transfer and
  APGD-CE + APGD-DLR under apgd_rand at the paper's eps (0.01, 0.02) and
  4/255, 8/255, 16/255 of the [0, 1] range on 500 (``cifar10``); Table 4's
  multi_sample FGSM/PGD on 500 and C&W on 100 (``cifar10_multi``, ``cifar10_multi_cw``);
  DeepFool on 500 and C&W, EAD with the paper's constants (c = 0.01, 0.1;
  1,000 steps) on 200 under paper, EAD again with a binary search of c
  from 0.01 on the same 200 (``cifar10_ead``: at the constant c it never
  moves), and the three on 500 / 100 under eot, EAD searched
  (``cifar10_minnorm``, ``cifar10_ead``, ``cifar10_minnorm_eot``); Square and ARC at 8/255 on
  500 (``cifar10_blackbox``); the masking checks (FGSM vs PGD, paper vs eot,
  Square, ARC) and the convergence sweeps at 8/255 on 100
  (``cifar10_masking``); SAP beside plain on 200 (``cifar10_sap``).
  About 4 hours of 2 cores for MNIST and 30 for CIFAR-10 (``estimate_s``).
* ``paper``: the paper's own setting (ResNet-50 and VGG-16; MNIST 50 epochs,
  CIFAR-10 and SVHN 150; lr 0.01 / 10 every 50 epochs; M=2, K=3, N=10; the
  full test sets), for a GPU machine; ``estimate_s`` is per stage on one GPU.

Example:

>>> suite = load_suite("smoke")
>>> [stage.name for stage in suite.train]
['mnist_plain', 'mnist_rls']
"""

import dataclasses
import json
import os
import re
from typing import Any, Dict, Optional, Tuple

__all__ = ["EvalStage", "Suite", "SUITES", "TrainStage", "load_suite"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# TrainConfig fields a suite may not set: the runner sets them per stage.
_MANAGED_TRAIN_FIELDS = ("dataset", "backbone", "defense", "model_dir", "data_dir",
                         "base_model_dir", "init_from", "verbose")
# evaluate_dirs keyword arguments a suite may set in an evaluation stage.
_EVAL_OPTIONS = ("eval_samples", "repeats", "batch_size", "seed", "surrogates",
                 "convergence", "preset", "sample_counts", "threat_model_attacks")


def _registries():
    # Imported lazily: the registries pull in TensorFlow, a suite file is data.
    from rls_tf import data as rls_data  # pylint: disable=import-outside-toplevel
    from rls_tf import models as rls_models  # pylint: disable=import-outside-toplevel
    from rls_tf import training  # pylint: disable=import-outside-toplevel
    from rls_tf.attacks.registry import ATTACK_NAMES  # pylint: disable=import-outside-toplevel
    from rls_tf.evaluation import presets  # pylint: disable=import-outside-toplevel
    from rls_tf.evaluation.threat_models import THREAT_MODELS  # pylint: disable=import-outside-toplevel

    train_fields = tuple(f.name for f in dataclasses.fields(training.TrainConfig)
                         if f.name not in _MANAGED_TRAIN_FIELDS)
    preset_fields = presets.preset_fields()
    return {
        "dataset": tuple(rls_data.DATASETS), "backbone": tuple(rls_models.BACKBONES),
        "defense": tuple(rls_models.DEFENSES), "attack": tuple(ATTACK_NAMES),
        "threat_model": tuple(THREAT_MODELS), "train option": train_fields,
        "preset field": preset_fields, "evaluation option": _EVAL_OPTIONS,
        "preset": tuple(presets.PRESETS),
    }


def _check_in(kind, value, allowed, where):
    if value not in allowed:
        raise ValueError(f"{where}: unknown {kind}. Received: {kind.replace(' ', '_')}="
                         f"{value!r}. Expected one of {tuple(allowed)}.")


def _check_revision(revision, where):
    if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
        raise ValueError(f"{where}: revision must be an int >= 0. Received: "
                         f"revision={revision!r}")


def _check_name(name, where):
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{where}: a stage name must be letters, digits, '_', '-' or '.'. "
                         f"Received: name={name!r}")


@dataclasses.dataclass(frozen=True)
class TrainStage:
    """One training run (``train.py``), written to ``<output_dir>/runs/<name>``.

    Attributes:
        name: the run's directory name (and how evaluation stages refer to it).
        dataset, backbone, defense: as ``train.py``'s flags.
        options: other `rls_tf.training.TrainConfig` fields (epochs,
            batch_size, num_submodels, adv_train, ...).
        base: sap: the stage whose plain run it wraps.
        init_from: the stage whose weights warm-start this run.
        estimate_s: expected seconds (printed before the run starts).
        revision: 0, or a number raised when a stage keeps its name but
            computes something else than a version of it whose completion
            record predates recorded specs (see `runner.record_state`).
    """

    name: str
    dataset: str
    backbone: str
    defense: str
    options: Dict[str, Any] = dataclasses.field(default_factory=dict)
    base: Optional[str] = None
    init_from: Optional[str] = None
    estimate_s: float = 0.0
    revision: int = 0

    @property
    def needs(self):
        return tuple(n for n in (self.base, self.init_from) if n)

    def to_json(self):
        out = {"name": self.name, "dataset": self.dataset, "backbone": self.backbone,
               "defense": self.defense, "options": dict(self.options),
               "estimate_s": self.estimate_s}
        for key in ("base", "init_from", "revision"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_json(cls, data):
        return cls(name=data["name"], dataset=data["dataset"], backbone=data["backbone"],
                   defense=data["defense"], options=dict(data.get("options", {})),
                   base=data.get("base"), init_from=data.get("init_from"),
                   estimate_s=float(data.get("estimate_s", 0.0)),
                   revision=data.get("revision", 0))


@dataclasses.dataclass(frozen=True)
class EvalStage:
    """One evaluation (``attack_eval.py``) of some trained runs.

    Attributes:
        name: the output directory name (``<output_dir>/eval/<name>``).
        models: ``{column key: train stage name}`` in column order.
        attacks: registry names.
        threat_models: threat-model names.
        num_examples: the first this many test images.
        num_shards: shards, run one after the other (each resumable).
        options: `rls_tf.evaluation.evaluate_dirs` options (eval_samples,
            repeats, batch_size, seed, surrogates, convergence, preset).
        preset_overrides: preset fields (pgd_eps, eot_samples, ...).
        estimate_s: expected seconds.
        revision: as `TrainStage.revision`.
    """

    name: str
    models: Dict[str, str]
    attacks: Tuple[str, ...]
    threat_models: Tuple[str, ...]
    num_examples: int
    num_shards: int = 1
    options: Dict[str, Any] = dataclasses.field(default_factory=dict)
    preset_overrides: Dict[str, Any] = dataclasses.field(default_factory=dict)
    estimate_s: float = 0.0
    revision: int = 0

    def to_json(self):
        out = {"name": self.name, "models": dict(self.models), "attacks": list(self.attacks),
               "threat_models": list(self.threat_models), "num_examples": self.num_examples,
               "num_shards": self.num_shards, "options": dict(self.options),
               "preset_overrides": {k: list(v) if isinstance(v, tuple) else v
                                    for k, v in self.preset_overrides.items()},
               "estimate_s": self.estimate_s}
        if self.revision:
            out["revision"] = self.revision
        return out

    @classmethod
    def from_json(cls, data):
        return cls(name=data["name"], models=dict(data["models"]),
                   attacks=tuple(data["attacks"]), threat_models=tuple(data["threat_models"]),
                   num_examples=int(data["num_examples"]),
                   num_shards=int(data.get("num_shards", 1)),
                   options=dict(data.get("options", {})),
                   preset_overrides={k: tuple(v) if isinstance(v, list) else v
                                     for k, v in data.get("preset_overrides", {}).items()},
                   estimate_s=float(data.get("estimate_s", 0.0)),
                   revision=data.get("revision", 0))


@dataclasses.dataclass(frozen=True)
class Suite:
    """A reproduction suite: training stages, then evaluation stages, then the report.

    Attributes:
        name: the suite's name.
        description: one paragraph, printed and put in the report.
        train: `TrainStage`s, run in order (a stage after those it needs).
        evaluate: `EvalStage`s, run in order after the training.
        caveats: sentences the report states once (scale, data, epochs).
    """

    name: str
    description: str
    train: Tuple[TrainStage, ...]
    evaluate: Tuple[EvalStage, ...]
    caveats: Tuple[str, ...] = ()

    def to_json(self):
        return {"name": self.name, "description": self.description,
                "train": [s.to_json() for s in self.train],
                "evaluate": [s.to_json() for s in self.evaluate],
                "caveats": list(self.caveats)}

    @classmethod
    def from_json(cls, data):
        """Builds and validates a suite from its JSON form (raises ValueError)."""
        if not isinstance(data, dict):
            raise ValueError(f"A suite is a JSON object. Received: {type(data).__name__}")
        missing = [k for k in ("name", "train", "evaluate") if k not in data]
        if missing:
            raise ValueError(f"A suite needs the keys {missing}. Received keys: {sorted(data)}")
        suite = cls(name=str(data["name"]), description=str(data.get("description", "")),
                    train=tuple(TrainStage.from_json(s) for s in data["train"]),
                    evaluate=tuple(EvalStage.from_json(s) for s in data["evaluate"]),
                    caveats=tuple(data.get("caveats", ())))
        suite.validate()
        return suite

    def validate(self):
        """Checks every name against the registries; raises ValueError."""
        allowed = _registries()
        seen = {}
        for stage in self.train:
            where = f"suite {self.name!r}, train stage {stage.name!r}"
            _check_name(stage.name, where)
            _check_revision(stage.revision, where)
            if stage.name in seen:
                raise ValueError(f"{where}: duplicate stage name. Received: name={stage.name!r}")
            _check_in("dataset", stage.dataset, allowed["dataset"], where)
            _check_in("backbone", stage.backbone, allowed["backbone"], where)
            _check_in("defense", stage.defense, allowed["defense"], where)
            for key in stage.options:
                _check_in("train option", key, allowed["train option"], where)
            for need in stage.needs:
                if need not in seen:
                    raise ValueError(f"{where}: needs a train stage defined before it. "
                                     f"Received: {need!r}; defined: {tuple(seen)}")
            if stage.defense == "sap" and not stage.base:
                raise ValueError(f"{where}: sap wraps a trained plain run: set `base`. "
                                 f"Received: base={stage.base!r}")
            seen[stage.name] = stage
        names = set()
        for stage in self.evaluate:
            where = f"suite {self.name!r}, evaluation stage {stage.name!r}"
            _check_name(stage.name, where)
            _check_revision(stage.revision, where)
            if stage.name in names:
                raise ValueError(f"{where}: duplicate stage name. Received: name={stage.name!r}")
            names.add(stage.name)
            if not stage.models:
                raise ValueError(f"{where}: no models. Received: models={stage.models!r}")
            for key, ref in stage.models.items():
                if ref not in seen:
                    raise ValueError(f"{where}: model {key!r} names an unknown train stage. "
                                     f"Received: {ref!r}; expected one of {tuple(seen)}")
            datasets = {seen[ref].dataset for ref in stage.models.values()}
            if len(datasets) != 1:
                raise ValueError(f"{where}: its models are trained on different datasets. "
                                 f"Received: {sorted(datasets)}")
            for attack in stage.attacks:
                _check_in("attack", attack, allowed["attack"], where)
            for threat in stage.threat_models:
                _check_in("threat_model", threat, allowed["threat_model"], where)
            for key in stage.options:
                _check_in("evaluation option", key, allowed["evaluation option"], where)
            if "preset" in stage.options:
                _check_in("preset", stage.options["preset"], allowed["preset"], where)
            for threat, attacks in (stage.options.get("threat_model_attacks") or {}).items():
                _check_in("threat_model", threat, stage.threat_models, where)
                for attack in attacks:
                    _check_in("attack", attack, stage.attacks, where)
            for key in stage.preset_overrides:
                _check_in("preset field", key, allowed["preset field"], where)
            if stage.num_examples < 1 or stage.num_shards < 1:
                raise ValueError(f"{where}: num_examples and num_shards must be >= 1. Received: "
                                 f"num_examples={stage.num_examples}, "
                                 f"num_shards={stage.num_shards}")
        return self

    def dataset_of(self, stage):
        """The dataset of an evaluation stage's models."""
        by_name = {s.name: s for s in self.train}
        return by_name[next(iter(stage.models.values()))].dataset


# -- built-in suites ---------------------------------------------------------------

_CLEAN = {"epochs": 3, "batch_size": 64, "lr_decay_epochs": 0, "seed": 0}
_AT = {"adv_train": "pgd", "adv_eps": 0.6, "adv_steps": 7, "adv_ramp_epochs": 1,
       "epochs": 2, "batch_size": 64, "lr_decay_epochs": 0, "seed": 0}
_MASKING_ATTACKS = ["fgsm", "pgd", "apgd", "mifgsm", "square", "spsa", "arc"]
_MASKING_THREATS = ["paper", "eot", "apgd_rand", "transfer", "arc"]


def _masking_overrides(pgd_eps, fgsm_eps, conv_eps, sweep, score_eps,
                       steps=(10, 20, 50, 100, 200), draws=(1, 5, 10, 20)):
    # The settings of docs/results/mnist_masking and mnist_adv_train (their NOTES.md).
    return {"fgsm_eps": fgsm_eps, "pgd_eps": pgd_eps, "apgd_steps": 20, "eot_samples": 10,
            "eot_pgd_steps": 20, "eot_pgd_restarts": 1, "transfer_steps": 50,
            "square_queries": 1000, "spsa_iters": 50, "spsa_samples": 64,
            "score_num_examples": 50, "score_eps": score_eps, "arc_paths": 10,
            "arc_steps": 20, "convergence_eps": conv_eps, "convergence_steps": steps,
            "convergence_draws": draws, "sweep_eps": sweep}


def _defense_stages(dataset, prefix, estimates):
    return [
        {"name": f"{prefix}_plain", "dataset": dataset, "backbone": "small_cnn",
         "defense": "plain", "options": dict(_CLEAN), "estimate_s": estimates[0]},
        {"name": f"{prefix}_rls", "dataset": dataset, "backbone": "small_cnn",
         "defense": "rls", "options": dict(_CLEAN), "estimate_s": estimates[1]},
        {"name": f"{prefix}_ensemble", "dataset": dataset, "backbone": "small_cnn",
         "defense": "ensemble", "options": {**_CLEAN, "ensemble_size": 3},
         "estimate_s": estimates[2]},
        {"name": f"{prefix}_adp", "dataset": dataset, "backbone": "small_cnn",
         "defense": "adp", "options": {**_CLEAN, "ensemble_size": 3},
         "estimate_s": estimates[3]},
        {"name": f"{prefix}_rse", "dataset": dataset, "backbone": "small_cnn",
         "defense": "rse", "options": dict(_CLEAN), "estimate_s": estimates[4]},
        {"name": f"{prefix}_sap", "dataset": dataset, "backbone": "small_cnn",
         "defense": "sap", "base": f"{prefix}_plain", "options": {"max_test_examples": 1000},
         "estimate_s": 60},
    ]


def _columns(prefix, names):
    return {name: f"{prefix}_{name}" for name in names}


_SMOKE = {
    "name": "smoke",
    "description": "A few minutes on 2 cores: plain and rls small_cnn for one epoch of 64 "
                   "images, FGSM and PGD under paper and eot on 8 test images. It checks the "
                   "pipeline, not robustness.",
    "caveats": ["Tiny data and one epoch: the numbers mean nothing about robustness."],
    "train": [
        {"name": "mnist_plain", "dataset": "mnist", "backbone": "small_cnn", "defense": "plain",
         "options": {"epochs": 1, "batch_size": 32, "max_train_examples": 64,
                     "max_test_examples": 16, "eval_samples": 2, "seed": 0},
         "estimate_s": 15},
        {"name": "mnist_rls", "dataset": "mnist", "backbone": "small_cnn", "defense": "rls",
         "options": {"epochs": 1, "batch_size": 32, "max_train_examples": 64,
                     "max_test_examples": 16, "eval_samples": 2, "seed": 0},
         "estimate_s": 25},
    ],
    "evaluate": [
        {"name": "mnist", "models": {"plain": "mnist_plain", "rls": "mnist_rls"},
         "attacks": ["fgsm", "pgd"], "threat_models": ["paper", "eot"], "num_examples": 8,
         "num_shards": 2,
         "options": {"eval_samples": 2, "repeats": 1, "batch_size": 4, "seed": 0,
                     "sample_counts": [1, 2]},
         "preset_overrides": {"pgd_steps": 2, "eot_samples": 2, "eot_pgd_steps": 2,
                              "eot_pgd_restarts": 1},
         "estimate_s": 60},
    ],
}

# -- the CIFAR-10 comparison of the cpu suite ----------------------------------------

# THE training recipe of every CIFAR-10 run of the cpu suite (resnet9, Page's
# DAWNBench ResNet-9 in RLS layers): change it here and nowhere else.
# The ablation's choice (benchmarks/recipe_ablation.py, docs/results/cifar10_recipe:
# variant r9w16_tuned_20ep, plain 81.5% clean on the 1,000 test images): width 16
# because every attack pass costs about width**2 and the comparison runs tens of
# thousands of them. No label smoothing (it cost 1-2 points at 10 epochs); the
# RLS MSE run (the paper's eq. 7) states it explicitly, since the training config
# refuses smoothing with loss="mse".
# Changing it changes every CIFAR-10 stage's spec (runner.stage_spec): the next
# run retrains and re-evaluates them, its outputs of the old recipe moved aside.
_CIFAR_RECIPE = {"backbone_width": 16, "epochs": 20, "batch_size": 256, "learning_rate": 0.4,
                 "lr_schedule": "onecycle", "lr_warmup_epochs": 4.0, "nesterov": True,
                 "label_smoothing": 0.0, "augment": True, "weight_decay": 5e-4, "seed": 0}
_CIFAR_BACKBONE = "resnet9"
# These stages replaced small_cnn CIFAR-10 stages of the same names (cifar10_plain,
# ..., the evaluation stage cifar10) whose completion records carry no spec:
# revision 1 makes those records count as of another version, so they are
# redone and never reported as the new stages' (runner.record_state).
_CIFAR_REVISION = 1

# L-inf eps in the models' [-1, 1] pixel units (the presets' eps_units="model",
# as the paper_cifar10 preset's): the paper's CIFAR-10 FGSM / PGD eps (Table 1),
# then 4/255, 8/255 and 16/255 of the [0, 1] range, twice as large in [-1, 1].
_CIFAR_PAPER_EPS = (0.01, 0.02)
_CIFAR_UNIT_EPS = (4, 8, 16)  # in 1/255 of the [0, 1] range
_CIFAR_EPS = _CIFAR_PAPER_EPS + tuple(2 * k / 255 for k in _CIFAR_UNIT_EPS)
_CIFAR_EPS_8 = 2 * 8 / 255  # 8/255 in [0, 1] units: the masking checks' eps
# Fast adversarial training (Wong et al. 2020): FGSM from a random start at
# 8/255 of the [0, 1] range (16/255 here), step 1.25 eps, with the
# catastrophic-overfitting guard on the first 128 training images.
_CIFAR_AT = {"adv_train": "fgsm_rs", "adv_eps": 2 * 8 / 255, "adv_guard_examples": 128}

# Every CIFAR-10 model but SAP, in column order (the evaluation stages' keys).
_CIFAR_MODELS = ("plain", "rls_mse", "rls_ce", "ensemble", "ensemble5", "adp", "rse",
                 "plain_at", "rls_at")
_CIFAR_EVAL = {"preset": "paper_cifar10", "eval_samples": 10, "repeats": 3, "batch_size": 50,
               "seed": 0, "sample_counts": [1, 3, 5, 10, 15]}
# The paper's minimum-norm settings (Table 1 / the paper_cifar10 preset), spelled
# out: C&W and EAD with a constant c, 1,000 steps; DeepFool overshoot 0.02.
_CIFAR_MIN_NORM = {"cw_c": (0.01, 0.1), "ead_c": (0.01, 0.1), "cw_steps": 1000,
                   "ead_steps": 1000, "deepfool_overshoot": 0.02, "deepfool_max_iter": 50}
# EAD as its authors run it: a binary search of c from the paper's first c
# (probe: 5 steps fooled 16 of 16 where the constant fooled none).
_CIFAR_EAD_SEARCH = {"ead_c": (0.01,), "ead_binary_search_steps": 5}
# The adaptive settings of the MNIST stages: E=10 draws, PGD-20 / APGD-20.
_CIFAR_ADAPTIVE = {"eot_samples": 10, "eot_pgd_steps": 20, "eot_pgd_restarts": 1,
                   "apgd_steps": 20, "transfer_steps": 50}


# Estimates scale with the recipe: measured at width 16, a pass costs about
# (width / 16) ** 2 as much at another width (the inner convolutions), and
# training costs its number of epochs.
_CIFAR_COST = (_CIFAR_RECIPE["backbone_width"] / 16) ** 2


# RLS (M=2, K=3) needs twice the epochs of the plain network to reach its clean
# accuracy (the ablation: 70.4% at 20 epochs, 81.3% at 40 against plain's 81.5% at 20),
# so every RLS run trains for 40 (warmup scaled with it).
_CIFAR_RLS_LENGTH = {"epochs": 40, "lr_warmup_epochs": 8.0}


def _cifar_run(name, defense, epoch_s, **options):
    return {"name": f"cifar10_{name}", "dataset": "cifar10", "backbone": _CIFAR_BACKBONE,
            "defense": defense, "options": {**_CIFAR_RECIPE, **options},
            "revision": _CIFAR_REVISION,
            "estimate_s": round(60 + _CIFAR_COST * epoch_s
                                * options.get("epochs", _CIFAR_RECIPE["epochs"]))}


# Seconds an epoch at width 16 on 2 cores (AMD EPYC), then 60 s of setup and
# test pass: plain 14 (11-18 measured: the ablation's 10 epochs took 184 s
# with the test pass, beside other jobs); rls 2.8x plain (K=3 sampled models a
# step: 2.0x in benchmarks/README.md's train-step benchmark, 2.5x and 3.2x in the small_cnn
# MNIST / CIFAR-10 stages), the ensembles 2.8x (3 members) and 4.7x (5), ADP
# 3.0x, RSE 1.15x; FGSM-RS adds an input-gradient pass a step (~0.7 of a step:
# 1.7x for plain; on the K-path mean for rls, 4.9x) and the guard's PGD-5 on
# 128 images an epoch.
_CIFAR_TRAIN = [
    _cifar_run("plain", "plain", 14),
    # The paper's objective (eq. 7): MSE of the K sampled models' softmax outputs.
    _cifar_run("rls_mse", "rls", 40, loss="mse", label_smoothing=0.0, **_CIFAR_RLS_LENGTH),
    _cifar_run("rls_ce", "rls", 40, loss="crossentropy", **_CIFAR_RLS_LENGTH),
    _cifar_run("ensemble", "ensemble", 40, ensemble_size=3),
    _cifar_run("ensemble5", "ensemble", 66, ensemble_size=5),  # Table 6's 5-model base
    _cifar_run("adp", "adp", 43, ensemble_size=3),
    _cifar_run("rse", "rse", 16),
    # SAP wraps the trained plain network: nothing is trained; the run's test pass
    # on the 1k images costs N=10 pruned passes an image.
    {"name": "cifar10_sap", "dataset": "cifar10", "backbone": _CIFAR_BACKBONE,
     "defense": "sap", "base": "cifar10_plain", "options": {"seed": 0},
     "revision": _CIFAR_REVISION, "estimate_s": round(300 * _CIFAR_COST)},
    # Adversarially trained from scratch with the same recipe (no init_from): the
    # onecycle schedule rises from ~0 to its peak again, so a warm start would be
    # all but forgotten at the same cost; Wong et al.'s fast AT is a from-scratch
    # recipe; and the runs stay independent of the clean runs' weights. Cross-
    # entropy for both, so plain_at and rls_at differ by the RLS layers only.
    _cifar_run("plain_at", "plain", 24, **_CIFAR_AT),
    _cifar_run("rls_at", "rls", 69, loss="crossentropy", **_CIFAR_AT, **_CIFAR_RLS_LENGTH),
]


def _cifar_eval(name, models, attacks, threat_models, num_examples, num_shards, estimate,
                overrides, **options):
    return {"name": name, "models": _columns("cifar10", models), "attacks": list(attacks),
            "threat_models": list(threat_models), "num_examples": num_examples,
            "num_shards": num_shards, "options": {**_CIFAR_EVAL, **options},
            "preset_overrides": dict(overrides), "revision": _CIFAR_REVISION,
            "estimate_s": round(estimate * _CIFAR_COST)}


# Estimates on 2 cores, from a resnet9 width-16 forward+input-gradient pass of
# ~1 ms an image (the training step's 1.2-1.8 ms without the weight gradients and
# update; a forward pass ~0.35 ms), and the old small_cnn CIFAR-10 stage's
# per-record seconds (docs/reproduction/cpu/eval/cifar10/results.json) at twice
# the per-image cost: an attack costs (its gradient steps) x (sampled models per
# step: 1 pinned, S for multi_sample, E=10 under eot); the defender 15 draws x 3
# repeats of a forward pass per record of a stochastic model. Within +-50%;
# the figures below are at width 16 (scaled by _CIFAR_COST).
_CIFAR_EVALUATE = [
    # Clean accuracy, interrater agreement (Table 5) and accuracy against N on all
    # 1,000 test images, R=5 (FGSM eps=0.01 because a stage needs an attack).
    _cifar_eval("cifar10_clean", _CIFAR_MODELS + ("sap",), ["fgsm"], ["paper"], 1000, 2,
                1500, {"fgsm_eps": (0.01,)}, repeats=5, batch_size=100),
    # The loss attacks on 500 images at every eps under the paper's protocol and
    # the adaptive threat models: measured, a shard of 50 images takes 1,600-1,800 s
    # on one core beside another one-thread run (apgd_rand about half of it).
    # APGD runs under apgd_rand only (APGD-CE + APGD-DLR with EOT; for a
    # deterministic model the white-box pair): under paper and eot it would
    # repeat apgd_rand's first stage, and MI-FGSM is none of the paper's attacks
    # (measured on shard 1: the two were half of the stage's time).
    _cifar_eval("cifar10", _CIFAR_MODELS, ["fgsm", "pgd", "apgd"],
                ["paper", "eot", "apgd_rand", "transfer"], 500, 10, 17000,
                {"fgsm_eps": _CIFAR_EPS, "pgd_eps": _CIFAR_EPS, **_CIFAR_ADAPTIVE},
                threat_model_attacks={"paper": ["fgsm", "pgd"], "eot": ["fgsm", "pgd"],
                                      "transfer": ["fgsm", "pgd"]}),
    # Table 4: the attacker attacks S = 1, 5, 10, 15 pinned sampled models (31
    # paths a step over the four S), the paper's eps, 500 images.
    _cifar_eval("cifar10_multi", ("plain", "rls_mse", "rls_ce"), ["fgsm", "pgd"],
                ["multi_sample"], 500, 2, 1300,
                {"fgsm_eps": _CIFAR_PAPER_EPS, "pgd_eps": _CIFAR_PAPER_EPS,
                 "multi_sample_paths": (1, 5, 10, 15)}),
    # Table 4's C&W column: 1,000 steps x 31 paths an image (~31 s), so 100 images
    # and the paper's objective (rls_mse) at its first c only.
    _cifar_eval("cifar10_multi_cw", ("rls_mse",), ["cw"], ["multi_sample"], 100, 2, 3200,
                {"cw_c": (0.01,), "cw_steps": 1000, "multi_sample_paths": (1, 5, 10, 15)}),
    # Table 3's DeepFool, C&W and EAD with the paper's constants: DeepFool on
    # 500 images, the 1,000-step C&W and EAD on the first 200 (2 c x 1,000
    # steps each: ~900 s a model).
    _cifar_eval("cifar10_minnorm", _CIFAR_MODELS, ["deepfool", "cw", "ead"], ["paper"], 500,
                10, 12000, {**_CIFAR_MIN_NORM, "min_norm_opt_num_examples": 200}),
    # EAD at the paper's constant c never leaves x on these networks (its
    # shrinkage resets every pixel whose step, lr x c x gradient, is below beta
    # = 0.01; cifar10_minnorm: 0% fooled, plain included), so Table 3's EAD is
    # also run the way EAD's authors run it: a binary search of c (x10 until an
    # image is fooled, then bisection; 5 steps) from the paper's c = 0.01, 1,000
    # steps each, on the same first 200 images.
    _cifar_eval("cifar10_ead", _CIFAR_MODELS, ["ead"], ["paper"], 200, 4, 7500,
                {**_CIFAR_MIN_NORM, **_CIFAR_EAD_SEARCH}),
    # The same under eot (E=10, 100 steps, zero and kappa=1 confidence; DeepFool
    # also with overshoot 1; EAD searched from c = 0.01 as above): DeepFool on
    # 500, C&W and EAD on the first 100 (~1,150 s per stochastic model).
    _cifar_eval("cifar10_minnorm_eot", _CIFAR_MODELS, ["deepfool", "cw", "ead"], ["eot"],
                500, 10, 11000,
                {**_CIFAR_MIN_NORM, **_CIFAR_EAD_SEARCH, "eot_min_norm": True,
                 "eot_min_norm_steps": 100, "eot_samples": 10,
                 "min_norm_opt_num_examples": 100}),
    # The gradient-masking checks at 8/255: FGSM vs PGD, paper vs eot, Square
    # (1,000 queries, E=10), ARC (P=10, 20 steps: ~2.5 s an image on a stochastic
    # model) and the convergence sweeps (steps, draws, eps to chance) on 100 images.
    _cifar_eval("cifar10_masking", _CIFAR_MODELS, ["fgsm", "pgd", "square", "arc"],
                ["paper", "eot", "arc"], 100, 2, 6300,
                {**_masking_overrides((_CIFAR_EPS_8,), (_CIFAR_EPS_8,), _CIFAR_EPS_8,
                                      tuple(2 * k / 255 for k in (4, 8, 16, 32, 64)),
                                      (_CIFAR_EPS_8,), steps=(10, 20, 50, 100),
                                      draws=(1, 5, 10, 20)),
                 "score_num_examples": 100},
                convergence=True),
    # The score-based and ARC threat models at 8/255 on 500 images: Square
    # (1,000 queries, each the mean of E=10 draws) under eot, and ARC (P=10,
    # 20 steps). The masking stage runs them again on its 100 images beside
    # the white-box attacks its checks compare them with. The most expensive
    # stage: Square runs its whole budget on a stochastic model (no early stop
    # on a noisy estimate), 1,000 x 2 points x E=10 passes an image, ~8 s on
    # one core; ARC ~5 s (the MNIST masking run's per-image costs, scaled).
    _cifar_eval("cifar10_blackbox", _CIFAR_MODELS, ["square", "arc"], ["eot", "arc"], 500,
                10, 32000,
                {"pgd_eps": (_CIFAR_EPS_8,), "score_eps": (_CIFAR_EPS_8,),
                 "square_queries": 1000, "score_num_examples": 500, "eot_samples": 10,
                 "arc_paths": 10, "arc_steps": 20}),
    # SAP beside the plain network it wraps, 200 images: every attacker and
    # defender call is a pruned pass (~20x a plain one: eot PGD-20 x E=10 on 600
    # image-eps ~2,500 s); no C&W / EAD (1,000 pruned steps an image).
    _cifar_eval("cifar10_sap", ("plain", "sap"), ["fgsm", "pgd", "deepfool"],
                ["paper", "eot"], 200, 4, 4000,
                {"fgsm_eps": _CIFAR_PAPER_EPS + (_CIFAR_EPS_8,),
                 "pgd_eps": _CIFAR_PAPER_EPS + (_CIFAR_EPS_8,), "eot_samples": 10,
                 "eot_pgd_steps": 20, "eot_pgd_restarts": 1, "deepfool_overshoot": 0.02,
                 "deepfool_max_iter": 50}),
]

_CPU = {
    "name": "cpu",
    "description": "The paper's comparison at CPU scale on the offline data. MNIST (60k "
                   "train, 10k test for clean accuracy): small_cnn, every defense, PGD "
                   "adversarially trained plain and rls; the paper protocol, the adaptive "
                   "threat models, transfer, Square, SPSA, ARC and the convergence checks "
                   "on the first 100 test images. CIFAR-10 (10k train / 1k test): resnet9 "
                   "(width 16) plain, RLS with the paper's MSE objective and with "
                   "cross-entropy, base ensembles of 3 and 5, ADP, RSE, SAP and "
                   "FGSM-RS adversarially trained plain and RLS; FGSM, PGD, DeepFool, C&W "
                   "and EAD with the paper's parameters and L-inf 4/255, 8/255, 16/255; "
                   "multi_sample (Table 4), accuracy against N (Table 6), eot, apgd_rand, "
                   "transfer, Square, ARC and the convergence checks.",
    "caveats": [
        "MNIST: small_cnn instead of ResNet-50 / VGG-16, 3 epochs instead of 50; attacks on "
        "the first 100 test images (Square and SPSA on 50).",
        "CIFAR-10: resnet9 (Page's DAWNBench ResNet-9 at width 16, about a sixteenth of its "
        "convolution cost) instead of ResNet-50, trained with one recipe for every defense "
        "(`_CIFAR_RECIPE` in rls_tf/reproduction/suites.py, chosen by the ablation in "
        "docs/results/cifar10_recipe: 20 epochs of onecycle SGD to lr 0.4, Nesterov, flip + "
        "translate) instead of the paper's 150 epochs of step-decayed SGD; on the "
        "10,000-image training file of ../shared/data, a fifth of the training set.",
        "CIFAR-10 images: clean accuracy, Table 5 and accuracy against N on all 1,000 test "
        "images (stage cifar10_clean); FGSM and PGD (paper, eot, transfer) and APGD "
        "(apgd_rand only) on the first 500; multi_sample FGSM/PGD on 500; DeepFool on 500 "
        "and the 1,000-step C&W and EAD on the first 200 (paper protocol), and 100 under "
        "eot. EAD at the paper's constant c fools nothing here, the undefended network "
        "included (its shrinkage resets every pixel whose step is below beta = 0.01), so "
        "it is also run with a 5-step binary search of c from 0.01 (stage cifar10_ead, "
        "the same 200; under eot only searched); Table 3's EAD cell is the stronger "
        "reading, named by its param. Table 4's C&W on 100, rls_mse only; Square and ARC at 8/255 on 500; the "
        "masking checks and convergence sweeps on 100 at 8/255 only; SAP on 200, without "
        "C&W and EAD. Every table names the stage and image count of each number.",
        "CIFAR-10 adversarial training is FGSM-RS (Wong et al. 2020; 8/255, with the "
        "catastrophic-overfitting guard), not PGD: PGD-7 would cost 8 passes a step.",
        "eps are in the models' [-1, 1] pixel units: the paper's 0.01 and 0.02 as printed, "
        "and 4/255, 8/255, 16/255 of the [0, 1] range as 8/255, 16/255, 32/255 "
        "(0.0314, 0.0627, 0.1255).",
    ],
    "train": (_defense_stages("mnist", "mnist", (130, 500, 700, 1100, 650))
              + [{"name": "mnist_plain_at", "dataset": "mnist", "backbone": "small_cnn",
                  "defense": "plain", "init_from": "mnist_plain", "options": dict(_AT),
                  "estimate_s": 400},
                 # Half the images per epoch: the K-path crafting costs ~4x plain's.
                 {"name": "mnist_rls_at", "dataset": "mnist", "backbone": "small_cnn",
                  "defense": "rls", "init_from": "mnist_rls",
                  "options": {**_AT, "max_train_examples": 30000}, "estimate_s": 1500}]
              + _CIFAR_TRAIN),
    "evaluate": [
        {"name": "mnist", "models": _columns("mnist", ("plain", "rls", "ensemble", "adp",
                                                       "rse")),
         "attacks": _MASKING_ATTACKS, "threat_models": _MASKING_THREATS, "num_examples": 100,
         "num_shards": 2,
         "options": {"preset": "paper_mnist", "eval_samples": 10, "repeats": 3,
                     "batch_size": 50, "seed": 0, "convergence": True},
         "preset_overrides": _masking_overrides((0.1, 0.3), (0.1, 0.3), 0.3,
                                                (0.1, 0.3, 0.6, 1.0), (0.3,)),
         "estimate_s": 5400},
        {"name": "mnist_adv_train",
         "models": _columns("mnist", ("plain", "rls", "plain_at", "rls_at")),
         "attacks": [a for a in _MASKING_ATTACKS if a != "spsa"],
         "threat_models": _MASKING_THREATS, "num_examples": 50,
         "options": {"preset": "paper_mnist", "eval_samples": 10, "repeats": 3,
                     "batch_size": 50, "seed": 0, "convergence": True},
         "preset_overrides": _masking_overrides((0.1, 0.3, 0.6), (0.1, 0.3, 0.6), 0.6,
                                                (0.3, 0.6, 1.0, 1.5), (0.3, 0.6),
                                                steps=(10, 20, 50, 100), draws=(1, 5, 10)),
         "estimate_s": 3600},
        {"name": "mnist_sap", "models": _columns("mnist", ("plain", "sap")),
         "attacks": ["fgsm", "pgd"], "threat_models": ["paper", "eot"], "num_examples": 50,
         "options": {"preset": "paper_mnist", "eval_samples": 10, "repeats": 1,
                     "batch_size": 50, "seed": 0},
         "preset_overrides": {"pgd_eps": (0.1, 0.3), "eot_samples": 5, "eot_pgd_steps": 10,
                              "eot_pgd_restarts": 1},
         "estimate_s": 900},
    ] + _CIFAR_EVALUATE,
}


def _paper_train(dataset, backbone, epochs, hours):
    opts = {"epochs": epochs, "batch_size": 128, "lr_decay_epochs": 50, "seed": 0}
    prefix = f"{dataset}_{backbone}"
    return [
        {"name": f"{prefix}_plain", "dataset": dataset, "backbone": backbone,
         "defense": "plain", "options": dict(opts), "estimate_s": hours[0] * 3600},
        {"name": f"{prefix}_rls", "dataset": dataset, "backbone": backbone, "defense": "rls",
         "options": dict(opts), "estimate_s": hours[1] * 3600},
    ]


# Estimated hours on one GPU per run (plain, rls): measured for none of them here;
# from a ResNet-50 CIFAR-10 epoch of ~40 s on one recent GPU and RLS's K=3 paths.
_PAPER = {
    "name": "paper",
    "description": "The paper's own setting (Lee et al. 4.1): ResNet-50 and VGG-16 on MNIST "
                   "(50 epochs), CIFAR-10 and SVHN (150 epochs), lr 0.01 / 10 every 50 "
                   "epochs, momentum 0.9, weight decay 5e-4, M=2, K=3, N=10, the full test "
                   "sets; for a GPU machine (train.py --strategy, sharded evaluation).",
    "caveats": ["Not run here (no GPU); estimate_s is per stage on one GPU."],
    "train": (_paper_train("mnist", "resnet50", 50, (0.4, 1.2))
              + _paper_train("cifar10", "resnet50", 150, (1.7, 5.0))
              + _paper_train("svhn", "resnet50", 150, (2.5, 7.5))
              + _paper_train("mnist", "vgg16", 50, (0.3, 0.8))
              + _paper_train("cifar10", "vgg16", 150, (1.0, 3.0))
              + _paper_train("svhn", "vgg16", 150, (1.5, 4.5))
              + [{"name": f"cifar10_resnet50_{d}", "dataset": "cifar10",
                  "backbone": "resnet50", "defense": d,
                  "options": {"epochs": 150, "batch_size": 128, "lr_decay_epochs": 50,
                              "seed": 0, **({"ensemble_size": 3} if d in ("ensemble", "adp")
                                            else {})},
                  "estimate_s": h * 3600}
                 for d, h in (("ensemble", 5.0), ("adp", 5.5), ("rse", 2.0))]
              + [{"name": "cifar10_resnet50_sap", "dataset": "cifar10", "backbone": "resnet50",
                  "defense": "sap", "base": "cifar10_resnet50_plain", "options": {},
                  "estimate_s": 60}]),
    "evaluate": (
        [{"name": f"{ds}_{bb}", "models": {"plain": f"{ds}_{bb}_plain", "rls": f"{ds}_{bb}_rls"},
          "attacks": ["fgsm", "pgd", "deepfool", "cw", "ead"], "threat_models": ["paper"],
          "num_examples": 10000, "num_shards": 10,
          "options": {"preset": f"paper_{ds}", "eval_samples": 10, "repeats": 5,
                      "batch_size": 250, "seed": 0},
          "estimate_s": 3 * 3600}
         for bb in ("resnet50", "vgg16") for ds in ("mnist", "cifar10", "svhn")]
        + [{"name": "cifar10_resnet50_defenses",
            "models": {d: f"cifar10_resnet50_{d}"
                       for d in ("plain", "rls", "ensemble", "adp", "rse", "sap")},
            "attacks": ["fgsm", "pgd", "deepfool", "cw", "ead", "apgd", "square"],
            "threat_models": ["paper", "multi_sample", "eot", "apgd_rand", "transfer"],
            "num_examples": 10000, "num_shards": 20,
            "options": {"preset": "paper_cifar10", "eval_samples": 10, "repeats": 5,
                        "batch_size": 250, "seed": 0, "convergence": True},
            "estimate_s": 30 * 3600}]),
}

SUITES = {"smoke": _SMOKE, "cpu": _CPU, "paper": _PAPER}


def load_suite(name_or_path):
    """A built-in suite by name, or a suite JSON file; validated.

    Raises:
        ValueError: an unknown name, a file that is not a valid suite, or a
            suite naming anything the registries do not know.
    """
    if isinstance(name_or_path, Suite):
        return name_or_path.validate()
    if name_or_path in SUITES:
        return Suite.from_json(json.loads(json.dumps(SUITES[name_or_path])))
    if isinstance(name_or_path, str) and os.path.isfile(name_or_path):
        with open(name_or_path, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as err:
                raise ValueError(f"--suite={name_or_path} is not valid JSON: {err}") from None
        return Suite.from_json(data)
    raise ValueError(f"Unknown suite. Received: suite={name_or_path!r}. Expected one of "
                     f"{tuple(SUITES)} or the path of a suite JSON file.")
