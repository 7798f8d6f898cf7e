"""Tests for the `resnet9` backbone (Page's DAWNBench ResNet-9 in RLS layers)."""

import keras
import numpy as np
import pytest

from rls_tf.layers import RLSConv2DBatchNorm
from rls_tf.layers import RLSDense
from rls_tf.models import BACKBONES
from rls_tf.models import RLSModel
from rls_tf.models import build_defense
from rls_tf.models import build_network
from rls_tf.models.backbones.resnet9 import resnet9_network


def _images(shape, batch=4, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, *shape)).astype("float32")


def _expected_parameters(width, channels=3, classes=10):
    """Trainable parameters of one sub-model, from the architecture.

    Each 3x3 conv+BN: kernel 9 * c_in * c_out, BN gamma and beta 2 * c_out
    (no conv bias: BN follows); the dense: 8w * classes + classes.
    """
    convs = [(channels, width), (width, 2 * width), (2 * width, 2 * width),
             (2 * width, 2 * width), (2 * width, 4 * width), (4 * width, 8 * width),
             (8 * width, 8 * width), (8 * width, 8 * width)]
    total = sum(9 * a * b + 2 * b for a, b in convs)
    return total + 8 * width * classes + classes


def test_registered():
    assert "resnet9" in BACKBONES
    assert build_network("resnet9", num_submodels=1, width=4).name == "resnet9"


@pytest.mark.parametrize("shape", [(32, 32, 3), (28, 28, 1)])
def test_forward_gives_probabilities(shape):
    network = resnet9_network(num_submodels=2, input_shape=shape, width=4)
    probs = network(_images(shape), training=False).numpy()
    assert probs.shape == (4, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("width", [4, 16, 64])
def test_parameter_count_and_m_copies(width):
    single = resnet9_network(num_submodels=1, width=width)
    trainable = sum(int(np.prod(w.shape)) for w in single.trainable_weights)
    assert trainable == _expected_parameters(width)
    if width == 64:
        assert trainable == 6_573_130  # the docstring's (Page's network)
    double = resnet9_network(num_submodels=2, width=width)
    assert sum(int(np.prod(w.shape)) for w in double.trainable_weights) == 2 * trainable


def test_nine_rls_layers_each_with_m_copies():
    network = resnet9_network(num_submodels=3, width=4)
    layers = RLSModel(network).rls_layers
    assert len(layers) == 9
    assert sum(isinstance(l, RLSConv2DBatchNorm) for l in layers) == 8
    assert sum(isinstance(l, RLSDense) for l in layers) == 1
    for layer in layers:
        assert layer.kernel.shape[0] == 3


def test_logit_scale_scales_the_logits():
    shape = (16, 16, 3)
    a = resnet9_network(num_submodels=1, input_shape=shape, width=4, logit_scale=0.125)
    b = resnet9_network(num_submodels=1, input_shape=shape, width=4, logit_scale=1.0)
    b.set_weights(a.get_weights())
    x = _images(shape)
    log_a = np.log(a(x, training=False).numpy())
    log_b = np.log(b(x, training=False).numpy())
    # log-softmax differences between classes scale with the logits.
    np.testing.assert_allclose(log_a - log_a[:, :1], 0.125 * (log_b - log_b[:, :1]),
                               rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("kwargs, name", [
    (dict(width=0), "width"), (dict(width=2.5), "width"), (dict(logit_scale=0.0), "logit_scale"),
    (dict(num_classes=1), "num_classes"), (dict(input_shape=(4, 4, 3)), "input_shape"),
])
def test_bad_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        resnet9_network(**kwargs)


def test_pinned_draw_is_deterministic_unpinned_varies():
    model = build_defense("rls", "resnet9", input_shape=(16, 16, 3),
                          backbone_options={"width": 4}, eval_samples=2)
    for weight in model.network.trainable_weights:  # spread the copies apart
        weight.assign(np.random.default_rng(1).normal(0, 0.3, weight.shape).astype("float32"))
    x = _images((16, 16, 3))
    draws = model.draw(3, seed=0)
    first = model.outputs(x, draws).numpy()
    np.testing.assert_array_equal(first, model.outputs(x, draws).numpy())
    fresh = [model.outputs(x, model.draw(1)).numpy()[0] for _ in range(8)]
    assert any(not np.allclose(fresh[0], f) for f in fresh[1:])


def test_trains_with_falling_loss_and_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    # The class is the brighter half (left or right): learnable in a few steps.
    y = rng.integers(0, 2, 128)
    x = rng.uniform(-1, -0.5, (128, 16, 16, 3)).astype("float32")
    for i, label in enumerate(y):
        x[i, :, 8 * label: 8 * label + 8] = 1.0
    model = build_defense("rls", "resnet9", num_classes=2, input_shape=(16, 16, 3),
                          backbone_options={"width": 4}, eval_samples=2)
    model.compile(optimizer=keras.optimizers.SGD(0.2, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=6, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0], history
    path = tmp_path / "resnet9.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    draws = model.draw(2, seed=1)
    np.testing.assert_allclose(loaded.outputs(x[:8], draws).numpy(),
                               model.outputs(x[:8], draws).numpy(), atol=1e-6)
