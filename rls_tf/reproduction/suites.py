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
  ``../shared/data``: MNIST (60k train) and CIFAR-10 (the 10k-train / 1k-test
  files: a fifth of the training set), small_cnn, every defense, plus PGD
  adversarially trained plain and rls on MNIST; the paper protocol, the
  adaptive threat models, transfer, Square, SPSA, ARC and the convergence
  checks.
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
                 "convergence", "preset", "sample_counts")


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
    preset_fields = tuple(f.name for f in dataclasses.fields(presets.Preset)
                          if f.name not in ("name", "dataset"))
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
    """

    name: str
    dataset: str
    backbone: str
    defense: str
    options: Dict[str, Any] = dataclasses.field(default_factory=dict)
    base: Optional[str] = None
    init_from: Optional[str] = None
    estimate_s: float = 0.0

    @property
    def needs(self):
        return tuple(n for n in (self.base, self.init_from) if n)

    def to_json(self):
        out = {"name": self.name, "dataset": self.dataset, "backbone": self.backbone,
               "defense": self.defense, "options": dict(self.options),
               "estimate_s": self.estimate_s}
        for key in ("base", "init_from"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_json(cls, data):
        return cls(name=data["name"], dataset=data["dataset"], backbone=data["backbone"],
                   defense=data["defense"], options=dict(data.get("options", {})),
                   base=data.get("base"), init_from=data.get("init_from"),
                   estimate_s=float(data.get("estimate_s", 0.0)))


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

    def to_json(self):
        return {"name": self.name, "models": dict(self.models), "attacks": list(self.attacks),
                "threat_models": list(self.threat_models), "num_examples": self.num_examples,
                "num_shards": self.num_shards, "options": dict(self.options),
                "preset_overrides": {k: list(v) if isinstance(v, tuple) else v
                                     for k, v in self.preset_overrides.items()},
                "estimate_s": self.estimate_s}

    @classmethod
    def from_json(cls, data):
        return cls(name=data["name"], models=dict(data["models"]),
                   attacks=tuple(data["attacks"]), threat_models=tuple(data["threat_models"]),
                   num_examples=int(data["num_examples"]),
                   num_shards=int(data.get("num_shards", 1)),
                   options=dict(data.get("options", {})),
                   preset_overrides={k: tuple(v) if isinstance(v, list) else v
                                     for k, v in data.get("preset_overrides", {}).items()},
                   estimate_s=float(data.get("estimate_s", 0.0)))


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
    # The settings of docs/results/mnist_masking and mnist_adv_train (README).
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

_CPU = {
    "name": "cpu",
    "description": "The paper's comparison at CPU scale on the offline data: MNIST (60k "
                   "train, 10k test for clean accuracy) and CIFAR-10 (10k train / 1k test), "
                   "small_cnn, every defense, and PGD adversarially trained plain and rls on "
                   "MNIST; the paper protocol, the adaptive threat models, transfer, Square, "
                   "SPSA, ARC and the convergence checks on the first 100 test images.",
    "caveats": [
        "small_cnn instead of ResNet-50 / VGG-16, 3 epochs instead of 50 / 150.",
        "CIFAR-10 is trained on the 10,000-image file of ../shared/data, a fifth of the "
        "training set, and tested on its 1,000 test images.",
        "Attacks run on the first 100 test images (Square and SPSA on 50).",
    ],
    "train": (_defense_stages("mnist", "mnist", (130, 500, 700, 1100, 650))
              + [{"name": "mnist_plain_at", "dataset": "mnist", "backbone": "small_cnn",
                  "defense": "plain", "init_from": "mnist_plain", "options": dict(_AT),
                  "estimate_s": 400},
                 # Half the images per epoch: the K-path crafting costs ~4x plain's.
                 {"name": "mnist_rls_at", "dataset": "mnist", "backbone": "small_cnn",
                  "defense": "rls", "init_from": "mnist_rls",
                  "options": {**_AT, "max_train_examples": 30000}, "estimate_s": 1500}]
              + _defense_stages("cifar10", "cifar10", (60, 200, 250, 300, 250))),
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
        {"name": "cifar10", "models": _columns("cifar10", ("plain", "rls", "ensemble", "adp",
                                                           "rse")),
         "attacks": _MASKING_ATTACKS, "threat_models": _MASKING_THREATS, "num_examples": 100,
         "num_shards": 2,
         "options": {"preset": "paper_cifar10", "eval_samples": 10, "repeats": 3,
                     "batch_size": 50, "seed": 0, "convergence": True},
         "preset_overrides": _masking_overrides((0.01, 0.02, 0.06), (0.01, 0.02, 0.06), 0.06,
                                                (0.02, 0.06, 0.125, 0.25), (0.06,)),
         "estimate_s": 7200},
    ],
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
