"""The defense registry drives training: a defense registered here trains end to end.

The toy defense below is declared in this test module only (no library file
names it): its parameter becomes a `TrainConfig` setting, is validated,
written to ``config.json``, compared on resume and reaches its builder.
Also: run directories whose ``config.json`` lists every defense's
parameters (as the library wrote them before the registry owned them)
still resume.
"""

import dataclasses
import json

import pytest

from rls_tf.defenses import DEFENSES
from rls_tf.defenses import DefenseSpec
from rls_tf.defenses import Param
from rls_tf.defenses import build_defense
from rls_tf.defenses import register_defense
from rls_tf.defenses import unregister_defense
from rls_tf.interface import StochasticClassifier
from rls_tf.models.backbones import build_network
from rls_tf.models.loading import load_model_dir
from rls_tf.models.rls_model import RLSModel
from rls_tf.training import TrainConfig
from rls_tf.training import train
from tests.synthetic_data import write_quadrant_mnist

TOY_WIDTH = Param("toy_width", 4, int, "channels of the toy network.", title="width",
                  minimum=2)


def _toy(backbone, common, options):
    network = build_network(backbone, num_submodels=1, **{**common, "width": options["toy_width"]})
    return RLSModel(network, eval_samples=options["eval_samples"], name=f"toy_{backbone}")


@pytest.fixture
def toy_defense():
    spec = register_defense(DefenseSpec("toy", "Toy", "this test", _toy, params=(TOY_WIDTH,),
                                        fixed=(("num_submodels", 1),)))
    try:
        yield spec
    finally:
        unregister_defense("toy")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_quadrant_mnist(tmp_path_factory.mktemp("data"), n_train=64, n_test=16)


def _config(data_dir, model_dir, **overrides):
    settings = dict(dataset="mnist", backbone="small_cnn", data_dir=data_dir,
                    model_dir=str(model_dir), epochs=1, batch_size=32, eval_samples=2,
                    verbose=0, seed=0, learning_rate=0.02)
    settings.update(overrides)
    return TrainConfig(**settings)


def test_a_registered_defense_trains_end_to_end(toy_defense, data_dir, tmp_path, capsys):
    assert "toy_width" in {f.name for f in dataclasses.fields(TrainConfig)}
    model_dir = tmp_path / "toy"
    metrics = train(_config(data_dir, model_dir, defense="toy", toy_width=3))
    config = json.loads((model_dir / "config.json").read_text())
    assert config["defense"] == metrics["defense"] == "toy"
    assert config["toy_width"] == 3 and config["num_submodels"] == 1
    assert "adp_alpha" not in config  # only the chosen defense's parameters
    model, _ = load_model_dir(str(model_dir))
    assert isinstance(model, StochasticClassifier)
    assert model.network.get_layer("conv1").filters == 3
    assert "toy defense, mean of N=2 draws" in capsys.readouterr().out

    # Resume compares the defense's parameters.
    with pytest.raises(ValueError, match="toy_width: saved 3 vs now 5"):
        train(_config(data_dir, model_dir, defense="toy", toy_width=5, epochs=2))
    metrics = train(_config(data_dir, model_dir, defense="toy", toy_width=3, epochs=2))
    assert len(metrics["history"]["loss"]) == 2


def test_a_registered_defense_validates_its_parameters(toy_defense):
    with pytest.raises(ValueError, match="Received: toy_width=1"):
        TrainConfig(defense="toy", backbone="small_cnn", toy_width=1).validate()
    assert TrainConfig(defense="toy").toy_width == 4
    # Another defense ignores it, as before.
    TrainConfig(defense="rls", backbone="small_cnn", toy_width=1).validate()
    model = build_defense("toy", "small_cnn", input_shape=(28, 28, 1), toy_width=2)
    assert model.network.get_layer("conv1").filters == 2


def test_registration_is_checked():
    spec = DEFENSES["adp"]
    with pytest.raises(ValueError, match="name='adp'"):
        register_defense(spec)
    clash = DefenseSpec("clash", "Clash", "-", _toy,
                        params=(Param("adp_alpha", 1.0, float, "other default."),))
    with pytest.raises(ValueError, match="adp_alpha"):
        register_defense(clash)
    with pytest.raises(TypeError, match="Unknown TrainConfig settings"):
        TrainConfig(no_such_setting=1)
    assert "toy" not in DEFENSES and "clash" not in DEFENSES


# config.json of an adp run as the library wrote it before the registry
# generated the settings (every parameter of every defense listed).
_EARLIER_CONFIG = {
    "adp_alpha": 2.0, "adp_beta": 0.5, "adv_craft_on": "mean", "adv_eps": None,
    "adv_guard_examples": None, "adv_ramp_epochs": 0, "adv_random_start": True,
    "adv_ratio": 1.0, "adv_step_size": None, "adv_steps": 10, "adv_train": "none",
    "adversarial_training": None, "augment": False, "backbone": "small_cnn",
    "backbone_width": None, "base_model_dir": None, "batch_size": 32, "data_dir": "D",
    "dataset": "mnist", "defense": "adp", "ensemble_size": 2, "epochs": 1, "eval_samples": 2,
    "init_from": None, "label_smoothing": 0.0, "learning_rate": 0.02, "loss": "crossentropy",
    "lr_decay_epochs": 50, "lr_decay_factor": 0.1, "lr_schedule": "step",
    "lr_warmup_epochs": 0.0, "max_test_examples": None, "max_train_examples": None,
    "model_dir": "X", "momentum": 0.9, "mu": None, "nesterov": False, "num_samples": 3,
    "num_submodels": 2, "per_example_sampling": False, "rse_init_std": None,
    "rse_inner_std": None, "sap_frac": 1.0, "seed": 0, "strategy": "default", "tpu": None,
    "train_forward": "loop", "verbose": 0, "weight_decay": 0.0005,
}


def test_an_earlier_run_directory_resumes(data_dir, tmp_path):
    model_dir = tmp_path / "adp"
    train(_config(data_dir, model_dir, defense="adp", ensemble_size=2))
    earlier = dict(_EARLIER_CONFIG, data_dir=data_dir, model_dir=str(model_dir))
    (model_dir / "config.json").write_text(json.dumps(earlier))
    with pytest.raises(ValueError, match="adp_alpha: saved 2.0 vs now 1.0"):
        train(_config(data_dir, model_dir, defense="adp", ensemble_size=2, adp_alpha=1.0,
                      epochs=2))
    metrics = train(_config(data_dir, model_dir, defense="adp", ensemble_size=2, epochs=2))
    assert len(metrics["history"]["loss"]) == 2
    # The current code writes the same keys for the settings it uses (not
    # the other defenses' parameters, RLS's sampling settings among them).
    written = json.loads((model_dir / "config.json").read_text())
    assert {k: v for k, v in written.items() if k != "epochs"} == {
        k: v for k, v in earlier.items()
        if k not in ("epochs", "base_model_dir", "rse_init_std", "rse_inner_std", "sap_frac",
                     "num_submodels", "num_samples", "mu", "per_example_sampling",
                     "train_forward")}


def test_former_import_paths_still_work():
    import rls_tf.defense  # pylint: disable=import-outside-toplevel
    import rls_tf.interface  # pylint: disable=import-outside-toplevel
    from rls_tf import callbacks  # pylint: disable=import-outside-toplevel
    from rls_tf import checkpoints  # pylint: disable=import-outside-toplevel
    from rls_tf.models import defenses as old_registry  # pylint: disable=import-outside-toplevel
    from rls_tf.models import noise_defenses  # pylint: disable=import-outside-toplevel
    from rls_tf.defenses import noise_networks  # pylint: disable=import-outside-toplevel

    assert rls_tf.defense.StochasticClassifier is rls_tf.interface.StochasticClassifier
    assert callbacks.AtomicCheckpoint is checkpoints.AtomicCheckpoint
    assert old_registry.DEFENSES is DEFENSES and old_registry.build_defense is build_defense
    assert noise_defenses.wrap_sap is noise_networks.wrap_sap
