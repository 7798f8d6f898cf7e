"""The defense registry: every defense ``train.py --defense`` builds, listed once.

Each entry is a `rls_tf.defenses.specs.DefenseSpec`: name, citation,
builder and its parameters (`Param`: default, validation, help, title).
`rls_tf.training.TrainConfig`, its ``config.json`` and the ``train.py``
flags are generated from these entries, so adding a defense is its module
plus one `register_defense` call (here for the library's own). Every model
a builder returns implements `rls_tf.interface.StochasticClassifier`.

| name | what | source |
|---|---|---|
| ``rls`` | Random Layer Sampling, M copies per layer | Lee et al. 2020 |
| ``plain`` | the undefended network (RLS with M=1) | - |
| ``ensemble`` | M independently trained members, mean softmax | Lee et al. Table 6, deep ensembles |
| ``adp`` | ensemble + ADP regulariser | Pang et al. 2019 |
| ``rse`` | Gaussian noise before every conv, train and test | Liu et al. 2018 |
| ``sap`` | stochastic activation pruning of a trained plain net | Dhillon et al. 2018 |

Example:

>>> from rls_tf.defenses import build_defense
>>> model = build_defense("adp", "small_cnn", input_shape=(28, 28, 1),
...                       ensemble_size=3, adp_alpha=2.0, adp_beta=0.5)
"""

from rls_tf.defenses import adp as adp_module
from rls_tf.defenses.specs import DefenseSpec
from rls_tf.defenses.specs import Param
from rls_tf.train_steps import TRAIN_FORWARDS
from rls_tf.validation import SEED_LIMIT

__all__ = ["COMMON_OPTIONS", "DEFENSES", "DefenseSpec", "Param", "all_params", "build_defense",
           "get_defense", "register_defense", "unregister_defense"]

# The common settings a builder may read (`DefenseSpec.uses`) and their
# defaults outside a training run: N (None: the defense's `eval_samples`).
COMMON_OPTIONS = dict(eval_samples=None)

# Name -> DefenseSpec, in registration order.
DEFENSES = {}
# Called after every change of the registry (`TrainConfig` lists the parameters).
_LISTENERS = []


def on_change(callback):
    """Calls ``callback()`` now and after every registration or removal."""
    _LISTENERS.append(callback)
    callback()


def _changed():
    for callback in _LISTENERS:
        callback()


def register_defense(spec):
    """Adds `spec` (a `DefenseSpec`) to the registry; returns it.

    Raises:
        ValueError: the name is taken, or a parameter key is already
            declared differently by another defense (share the `Param`).
    """
    if spec.name in DEFENSES:
        raise ValueError(f"A defense of that name is registered. Received: name={spec.name!r}")
    known = all_params()
    for param in spec.params:
        if param.key in COMMON_OPTIONS or (param.key in known and known[param.key] != param):
            raise ValueError(
                f"Parameter {param.key!r} of defense {spec.name!r} is declared differently "
                f"elsewhere; share one `Param`. Received: key={param.key!r}")
    unknown = sorted(set(spec.uses) - set(COMMON_OPTIONS))
    if unknown:
        raise ValueError(f"`uses` names common settings only. Received: uses={unknown}. "
                         f"Expected some of {sorted(COMMON_OPTIONS)}.")
    DEFENSES[spec.name] = spec
    _changed()
    return spec


def unregister_defense(name):
    """Removes defense `name` (tests that register a toy defense)."""
    get_defense(name)
    del DEFENSES[name]
    _changed()


def get_defense(name):
    """The `DefenseSpec` called `name`, or a ValueError naming the choices."""
    if name not in DEFENSES:
        raise ValueError(f"Unknown defense. Received: defense={name!r}. "
                         f"Expected one of {tuple(DEFENSES)}.")
    return DEFENSES[name]


def all_params():
    """Key -> `Param` of every registered defense (shared keys once)."""
    return {p.key: p for spec in DEFENSES.values() for p in spec.params}


def defenses_of(key):
    """Names of the registered defenses that declare parameter `key`."""
    return tuple(name for name, spec in DEFENSES.items() if key in spec.param_keys)


def build_defense(name, backbone="small_cnn", *, num_classes=10, input_shape=(32, 32, 3),
                  seed=None, weight_decay=0.0, backbone_options=None, **options):
    """Builds the uncompiled model of defense `name` on `backbone`.

    Args:
        name: one of `DEFENSES`.
        backbone: one of `rls_tf.models.BACKBONES`.
        num_classes, input_shape, seed, weight_decay: see `build_network`.
        backbone_options: further keyword arguments of the backbone's
            builder, e.g. ``{"width": 16}`` (None: its defaults).
        **options: the common settings (`COMMON_OPTIONS`: eval_samples,
            None for the defense's default) and the parameters of any
            registered defense by builder keyword (`Param.option_name`, e.g.
            num_submodels, num_samples, mu, per_example_sampling,
            train_forward, ensemble_size, adp_alpha, rse_init_std, sap_frac,
            base_model); each defense reads its own.

    Returns:
        A model implementing `rls_tf.interface.StochasticClassifier`.
    """
    spec = get_defense(name)
    defaults = dict(COMMON_OPTIONS)
    for param in all_params().values():
        defaults[param.option_name] = None if param.load is not None else param.default
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(f"Unknown defense options. Received: {unknown}. Expected some of "
                         f"{sorted(defaults)}.")
    resolved = {**defaults, **options}
    if resolved["eval_samples"] is None:
        resolved["eval_samples"] = spec.eval_samples
    common = dict(num_classes=num_classes, input_shape=input_shape, seed=seed,
                  weight_decay=weight_decay, **(backbone_options or {}))
    return spec.builder(backbone, common, resolved)


# The library's defenses. Builders import the backbones lazily: they sit
# above the defenses (`rls_tf.models` imports this registry).

def _network(backbone, **kwargs):
    from rls_tf.models.backbones import build_network  # pylint: disable=import-outside-toplevel
    return build_network(backbone, **kwargs)


def _rls_model(*args, **kwargs):
    from rls_tf.models.rls_model import RLSModel  # pylint: disable=import-outside-toplevel
    return RLSModel(*args, **kwargs)


def _rls(backbone, common, options):
    network = _network(backbone, num_submodels=options["num_submodels"], mu=options["mu"],
                       per_example_sampling=options["per_example_sampling"], **common)
    return _rls_model(network, num_samples=options["num_samples"],
                      eval_samples=options["eval_samples"],
                      train_forward=options["train_forward"], name=f"rls_{backbone}")


def _plain(backbone, common, options):
    network = _network(backbone, num_submodels=1, **common)
    return _rls_model(network, eval_samples=options["eval_samples"], name=f"plain_{backbone}")


def _members(backbone, common, options):
    from rls_tf.defenses.ensemble import check_ensemble_size  # pylint: disable=import-outside-toplevel
    size = check_ensemble_size(options["ensemble_size"])
    seed = common.get("seed")
    members = []
    for i in range(size):
        member_common = dict(common)
        if seed is not None:
            member_common["seed"] = (seed + 1000 * i) % SEED_LIMIT
        network = _network(backbone, num_submodels=1, **member_common)
        network.name = f"member_{i}"
        members.append(network)
    return members


def _ensemble(backbone, common, options):
    from rls_tf.defenses.ensemble import EnsembleModel  # pylint: disable=import-outside-toplevel
    return EnsembleModel(_members(backbone, common, options), name=f"ensemble_{backbone}")


def _adp(backbone, common, options):
    return adp_module.ADPModel(_members(backbone, common, options), alpha=options["adp_alpha"],
                               beta=options["adp_beta"], name=f"adp_{backbone}")


def _rse(backbone, common, options):
    from rls_tf.defenses import noise_networks  # pylint: disable=import-outside-toplevel

    kwargs = {k: options[k] for k in ("rse_init_std", "rse_inner_std") if options[k] is not None}
    return noise_networks.build_rse(backbone, eval_samples=options["eval_samples"],
                                    **{k.replace("rse_", ""): v for k, v in kwargs.items()},
                                    **common)


def _sap(backbone, common, options):  # pylint: disable=unused-argument
    from rls_tf.defenses import noise_networks  # pylint: disable=import-outside-toplevel

    if options.get("base_model") is None:
        raise ValueError("The sap defense wraps a trained plain model: pass base_model "
                         "(train.py --base_model_dir=DIR of a --defense=plain run). "
                         "Received: base_model=None")
    return noise_networks.wrap_sap(options["base_model"], frac=options["sap_frac"],
                                   eval_samples=options["eval_samples"])


def _load_base_model(directory):
    from rls_tf.models.loading import load_model_dir  # pylint: disable=import-outside-toplevel
    return load_model_dir(directory, flag="base_model_dir")[0]


def _rls_summary(config, model):
    if model.is_stochastic:
        return f"N={config.eval_samples}-sample ensemble (M={config.num_submodels}"
    return "plain network (M=1, deterministic"


def _members_summary(config, model):  # pylint: disable=unused-argument
    return f"{config.defense} of {config.ensemble_size} members (deterministic"


ENSEMBLE_SIZE = Param("ensemble_size", 3, int, "number of members (>= 2).", title="members",
                      minimum=2)
# RLS's own settings (the paper's defaults). plain fixes M at 1
# (`DefenseSpec.fixed`), which its config.json records.
_RLS_PARAMS = (
    Param("num_submodels", 2, int, "M, weight copies of every layer (1 = plain network).",
          title="M", minimum=1),
    Param("num_samples", 3, int, "K, sampled models per training step.", title="K",
          minimum=1),
    Param("mu", None, float, "sampling probabilities of the M copies, e.g. 0.5,0.5 "
          "(default uniform).", title="mu", multiple=True),
    Param("per_example_sampling", False, bool, "every example draws its own path.",
          title="per-example"),
    Param("train_forward", "loop", str, "how the K forwards run (one network call each, "
          "or one call on the batch tiled K times).", title="forward",
          choices=TRAIN_FORWARDS),
)

for _spec in (
    DefenseSpec("rls", "RLS", "Lee et al. 2020, arXiv 2005.10757 (this library)", _rls,
                params=_RLS_PARAMS, architecture=("num_submodels",), summary=_rls_summary),
    DefenseSpec("plain", "Plain", "the undefended network (RLS layers with M=1)", _plain,
                fixed=(("num_submodels", 1),), architecture=("num_submodels",),
                summary=_rls_summary),
    DefenseSpec("ensemble", "Ensemble", "Lee et al. 2020 Table 6 'Base ensemble'; deep "
                "ensemble of independently initialised members", _ensemble,
                params=(ENSEMBLE_SIZE,), uses=(), own_loss=True,
                architecture=("ensemble_size",), summary=_members_summary),
    DefenseSpec("adp", "ADP", "Pang et al. 2019; P2333/Adaptive-Diversity-Promoting "
                "utils.py Loss_withEE_DPP @ 6e4dfe0b", _adp, params=(
                    ENSEMBLE_SIZE,
                    Param("adp_alpha", adp_module.DEFAULT_ALPHA, float,
                          "weight of the ensemble entropy (Pang et al.: "
                          f"{adp_module.DEFAULT_ALPHA:g}).", title="alpha", minimum=0.0),
                    Param("adp_beta", adp_module.DEFAULT_BETA, float,
                          "weight of the log-det diversity term (Pang et al.: "
                          f"{adp_module.DEFAULT_BETA:g}).", title="beta", minimum=0.0)),
                uses=(), own_loss=True, architecture=("ensemble_size",),
                summary=_members_summary),
    DefenseSpec("rse", "RSE", "Liu et al. 2018; xuanqing94/RobustNet (dev) @ 91130dd7", _rse,
                params=(
                    Param("rse_init_std", None, float, "noise std before the first "
                          "convolution, in [0, 1] pixel units (doubled on the [-1, 1] pixels; "
                          "default: the defense's).", title="init std", minimum=0.0),
                    Param("rse_inner_std", None, float, "noise std before every other "
                          "convolution, in [0, 1] pixel units (default: the defense's).",
                          title="inner std", minimum=0.0)),
                eval_samples=50),
    DefenseSpec("sap", "SAP", "Dhillon et al. 2018 (the paper's 'Stochastic Dropout'); "
                "Guneet-Dhillon/mxnet SAP operator @ 4a512b48", _sap, params=(
                    Param("sap_frac", 1.0, float, "draws per activation count, in (0, 1].",
                          title="frac", minimum=0.0, maximum=1.0, min_open=True),
                    Param("base_model_dir", None, str, "run directory of the trained "
                          "--defense=plain model that SAP wraps (no further training).",
                          title="base model", required=True, exclusive=True,
                          option="base_model", load=_load_base_model)),
                trains=False, eval_samples=100),
):
    register_defense(_spec)
del _spec
