"""The defense registry: every defense ``train.py --defense`` builds, listed once.

A `DefenseSpec` names a defense, cites its source, lists the options it
reads (the `train.py` flags of that defense) and builds an uncompiled model
from a backbone. Every model it builds implements
`rls_tf.defense.StochasticClassifier`, so the evaluation harness and the
exports take any of them unchanged.

| name | what | source |
|---|---|---|
| ``rls`` | Random Layer Sampling, M copies per layer | Lee et al. 2020 |
| ``plain`` | the undefended network (RLS with M=1) | - |
| ``ensemble`` | M independently trained members, mean softmax | Lee et al. Table 6, deep ensembles |
| ``adp`` | ensemble + ADP regulariser | Pang et al. 2019 |
| ``rse`` | Gaussian noise before every conv, train and test | Liu et al. 2018 |
| ``sap`` | stochastic activation pruning of a trained plain net | Dhillon et al. 2018 |

Example:

>>> from rls_tf.models import build_defense
>>> model = build_defense("adp", "small_cnn", input_shape=(28, 28, 1),
...                       ensemble_size=3, adp_alpha=2.0, adp_beta=0.5)
"""

import dataclasses
from typing import Callable, Tuple

from rls_tf.defenses.adp import ADPModel
from rls_tf.defenses.ensemble import EnsembleModel
from rls_tf.defenses.ensemble import check_ensemble_size
from rls_tf.models.backbones import build_network
from rls_tf.models.rls_model import RLSModel
from rls_tf.validation import SEED_LIMIT

__all__ = ["DEFENSES", "DefenseSpec", "build_defense", "get_defense"]


@dataclasses.dataclass(frozen=True)
class DefenseSpec:
    """Everything the training run and the docs need about one defense.

    Attributes:
        name: registry / ``--defense`` name.
        title: printed in tables.
        source: citation (paper; code repository, file and commit).
        options: the keyword arguments of `build_defense` it reads.
        trains: False when it wraps a trained model instead (``sap``).
        builder: ``(backbone, common, options) -> model``.
        eval_samples: its default N (the authors' evaluation: RSE 50, SAP
            100; RLS 10, the paper's).
    """

    name: str
    title: str
    source: str
    options: Tuple[str, ...]
    trains: bool
    builder: Callable
    eval_samples: int = 10


def _rls(backbone, common, options):
    network = build_network(backbone, num_submodels=options["num_submodels"],
                            mu=options["mu"], per_example_sampling=options["per_example_sampling"],
                            **common)
    return RLSModel(network, num_samples=options["num_samples"],
                    eval_samples=options["eval_samples"],
                    train_forward=options["train_forward"], name=f"rls_{backbone}")


def _plain(backbone, common, options):
    network = build_network(backbone, num_submodels=1, **common)
    return RLSModel(network, eval_samples=options["eval_samples"], name=f"plain_{backbone}")


def _members(backbone, common, options):
    size = check_ensemble_size(options["ensemble_size"])
    seed = common.get("seed")
    members = []
    for i in range(size):
        member_common = dict(common)
        if seed is not None:
            member_common["seed"] = (seed + 1000 * i) % SEED_LIMIT
        network = build_network(backbone, num_submodels=1, **member_common)
        network.name = f"member_{i}"
        members.append(network)
    return members


def _ensemble(backbone, common, options):
    return EnsembleModel(_members(backbone, common, options), name=f"ensemble_{backbone}")


def _adp(backbone, common, options):
    return ADPModel(_members(backbone, common, options), alpha=options["adp_alpha"],
                    beta=options["adp_beta"], name=f"adp_{backbone}")


def _rse(backbone, common, options):
    from rls_tf.models import noise_defenses  # pylint: disable=import-outside-toplevel

    kwargs = {k: options[k] for k in ("rse_init_std", "rse_inner_std") if options[k] is not None}
    return noise_defenses.build_rse(backbone, eval_samples=options["eval_samples"],
                                    **{k.replace("rse_", ""): v for k, v in kwargs.items()},
                                    **common)


def _sap(backbone, common, options):  # pylint: disable=unused-argument
    from rls_tf.models import noise_defenses  # pylint: disable=import-outside-toplevel

    if options.get("base_model") is None:
        raise ValueError("The sap defense wraps a trained plain model: pass base_model "
                         "(train.py --base_model_dir=DIR of a --defense=plain run). "
                         "Received: base_model=None")
    return noise_defenses.wrap_sap(options["base_model"], frac=options["sap_frac"],
                                   eval_samples=options["eval_samples"])


_RLS_OPTIONS = ("num_submodels", "num_samples", "eval_samples", "mu", "per_example_sampling",
                "train_forward")

DEFENSES = {spec.name: spec for spec in (
    DefenseSpec("rls", "RLS", "Lee et al. 2020, arXiv 2005.10757 (this library)",
                _RLS_OPTIONS, True, _rls),
    DefenseSpec("plain", "Plain", "the undefended network (RLS layers with M=1)",
                ("eval_samples",), True, _plain),
    DefenseSpec("ensemble", "Ensemble", "Lee et al. 2020 Table 6 'Base ensemble'; deep "
                "ensemble of independently initialised members", ("ensemble_size",), True,
                _ensemble),
    DefenseSpec("adp", "ADP", "Pang et al. 2019; P2333/Adaptive-Diversity-Promoting "
                "utils.py Loss_withEE_DPP @ 6e4dfe0b", ("ensemble_size", "adp_alpha",
                                                        "adp_beta"), True, _adp),
    DefenseSpec("rse", "RSE", "Liu et al. 2018; xuanqing94/RobustNet (dev) @ 91130dd7",
                ("rse_init_std", "rse_inner_std", "eval_samples"), True, _rse, 50),
    DefenseSpec("sap", "SAP", "Dhillon et al. 2018 (the paper's 'Stochastic Dropout'); "
                "Guneet-Dhillon/mxnet SAP operator @ 4a512b48", ("sap_frac", "eval_samples",
                                                                 "base_model"), False, _sap, 100),
)}

_DEFAULT_OPTIONS = dict(num_submodels=2, num_samples=3, eval_samples=None, mu=None,
                        per_example_sampling=False, train_forward="loop", ensemble_size=3,
                        adp_alpha=2.0, adp_beta=0.5, rse_init_std=None, rse_inner_std=None,
                        sap_frac=1.0, base_model=None)


def get_defense(name):
    """The `DefenseSpec` called `name`, or a ValueError naming the choices."""
    if name not in DEFENSES:
        raise ValueError(f"Unknown defense. Received: defense={name!r}. "
                         f"Expected one of {tuple(DEFENSES)}.")
    return DEFENSES[name]


def build_defense(name, backbone="small_cnn", *, num_classes=10, input_shape=(32, 32, 3),
                  seed=None, weight_decay=0.0, backbone_options=None, **options):
    """Builds the uncompiled model of defense `name` on `backbone`.

    Args:
        name: one of `DEFENSES`.
        backbone: one of `rls_tf.models.BACKBONES`.
        num_classes, input_shape, seed, weight_decay: see `build_network`.
        backbone_options: further keyword arguments of the backbone's
            builder, e.g. ``{"width": 16}`` (None: its defaults).
        **options: the defense's options (`DefenseSpec.options`; defaults
            in `_DEFAULT_OPTIONS`): num_submodels, num_samples,
            eval_samples (None: the defense's default), mu,
            per_example_sampling, train_forward (rls);
            ensemble_size (ensemble, adp); adp_alpha, adp_beta (adp);
            rse_init_std, rse_inner_std (rse, in [0, 1] pixel units);
            sap_frac, base_model (sap).

    Returns:
        A model implementing `rls_tf.defense.StochasticClassifier`.
    """
    spec = get_defense(name)
    unknown = sorted(set(options) - set(_DEFAULT_OPTIONS))
    if unknown:
        raise ValueError(f"Unknown defense options. Received: {unknown}. Expected some of "
                         f"{sorted(_DEFAULT_OPTIONS)}.")
    resolved = {**_DEFAULT_OPTIONS, **options}
    if resolved["eval_samples"] is None:
        resolved["eval_samples"] = spec.eval_samples
    common = dict(num_classes=num_classes, input_shape=input_shape, seed=seed,
                  weight_decay=weight_decay, **(backbone_options or {}))
    return spec.builder(backbone, common, resolved)
