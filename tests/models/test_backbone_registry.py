"""The backbone registry drives building and training: a backbone registered here trains end to end.

The toy backbone below is declared in this test module only (no library
file names it): its ``width`` option is a `Param` of its entry, so
``backbone_width`` reaches it, is validated by it, and `build_network`,
every defense and `rls_tf.training.train` build it.
"""

import json

import keras
import pytest

from rls_tf.defenses import build_defense
from rls_tf.models import BACKBONES
from rls_tf.models.backbones import BackboneSpec
from rls_tf.models.backbones import backbones_with_option
from rls_tf.models.backbones import build_network
from rls_tf.models.backbones import get_backbone_spec
from rls_tf.models.backbones import register_backbone
from rls_tf.models.backbones import unregister_backbone
from rls_tf.models.backbones.common import start_network
from rls_tf.models.loading import load_model_dir
from rls_tf.params import Param
from rls_tf.training import TrainConfig
from rls_tf.training import train
from tests.synthetic_data import write_quadrant_mnist

TOY_WIDTH = Param("width", 4, int, "channels of the toy convolution.", minimum=2)


def _toy_body(make, input_shape, num_classes, width):
    inputs = keras.Input(input_shape, name="images")
    x = make.conv_bn(width, 3, strides=2, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = make.dense(num_classes, activation="softmax", name="fc")(x)
    return keras.Model(inputs, outputs, name="toy_net")


TOY = BackboneSpec("toy_net", "Toy net", _toy_body, params=(TOY_WIDTH,), min_input_size=6,
                   source="this test")


@pytest.fixture
def toy_backbone():
    spec = register_backbone(TOY)
    try:
        yield spec
    finally:
        unregister_backbone("toy_net")


def test_a_registered_backbone_trains_end_to_end(toy_backbone, tmp_path, capsys):
    data_dir = write_quadrant_mnist(tmp_path, n_train=64, n_test=16)
    model_dir = tmp_path / "run"
    metrics = train(TrainConfig(
        dataset="mnist", backbone="toy_net", backbone_width=3, defense="rls",
        num_submodels=2, num_samples=2, eval_samples=2, data_dir=data_dir,
        model_dir=str(model_dir), epochs=1, batch_size=32, verbose=0, seed=0))
    assert json.loads((model_dir / "config.json").read_text())["backbone"] == "toy_net"
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    model, _ = load_model_dir(str(model_dir))
    assert model.network.get_layer("conv").filters == 3


def test_a_registered_backbone_builds_and_is_validated(toy_backbone):
    assert "toy_net" in BACKBONES and backbones_with_option("width")["toy_net"] is TOY_WIDTH
    network = build_network("toy_net", num_submodels=2, num_classes=3, input_shape=(6, 6, 1))
    assert network.get_layer("conv").filters == 4  # the Param's default
    assert network.output_shape == (None, 3)
    with pytest.raises(ValueError, match="Received: width=1"):
        build_network("toy_net", input_shape=(8, 8, 1), width=1)
    with pytest.raises(ValueError, match="height and width >= 6"):
        build_network("toy_net", input_shape=(5, 5, 1))
    with pytest.raises(ValueError, match=r"Received: \['depth'\]. Accepted: \['width'\]"):
        build_network("toy_net", depth=2)
    with pytest.raises(ValueError, match="Received: backbone_width=1"):
        TrainConfig(backbone="toy_net", backbone_width=1).validate()
    TrainConfig(backbone="toy_net", backbone_width=2).validate()
    # Every defense of the defense registry builds it.
    model = build_defense("ensemble", "toy_net", input_shape=(8, 8, 1), ensemble_size=2,
                          backbone_options={"width": 2})
    assert model.image_shape == (8, 8, 1)


def test_registration_is_checked():
    with pytest.raises(ValueError, match="name='resnet9'"):
        register_backbone(get_backbone_spec("resnet9"))
    with pytest.raises(ValueError, match="BackboneSpec"):
        register_backbone("resnet9")
    with pytest.raises(ValueError, match="min_input_size=0"):
        BackboneSpec("bad", "Bad", _toy_body, min_input_size=0)
    with pytest.raises(ValueError, match="Unknown backbone: Received: backbone='toy_net'"):
        get_backbone_spec("toy_net")
    with pytest.raises(ValueError, match="backbone='toy_net'"):
        TrainConfig(backbone="toy_net").validate()
    assert BACKBONES == ("small_cnn", "resnet9", "resnet20", "resnet50", "vgg16")


def test_entries_carry_their_options():
    assert get_backbone_spec("resnet9").param_keys == ("width", "logit_scale")
    assert get_backbone_spec("resnet9").param("width").default == 64
    assert get_backbone_spec("small_cnn").param("width").default == 32
    assert sorted(backbones_with_option("width")) == ["resnet9", "small_cnn"]
    with pytest.raises(ValueError, match="has no width option. Received: backbone_width=8"):
        TrainConfig(backbone="vgg16", backbone_width=8).validate()


def test_start_network_is_the_shared_prologue():
    make, shape, classes = start_network(2, 5, [8, 8, 1], seed=3)
    assert (shape, classes, make.num_submodels, make.seed) == ((8, 8, 1), 5, 2, 3)
    with pytest.raises(ValueError, match="num_classes=1"):
        start_network(2, 1, (8, 8, 1))
