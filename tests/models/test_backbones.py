"""Tests for the ResNet-20, ResNet-50 and VGG-16 backbones and the registry.

Kept fast (CPU): every network is built at most once per (backbone, input
shape, M) and the big ones only run one forward pass on a batch of 2.
"""

import keras
import numpy as np
import pytest

from rls_tf.layers import RLSConv2DBatchNorm
from rls_tf.layers import RLSDense
from rls_tf.models import BACKBONES
from rls_tf.models import RLSModel
from rls_tf.models import build_model
from rls_tf.models import build_network
from rls_tf.models.backbones.resnet import resnet20_network
from rls_tf.models.backbones.resnet import resnet50_network
from rls_tf.models.backbones.vgg import vgg16_network

NEW_BACKBONES = ("resnet20", "resnet50", "vgg16")
BUILDERS = {
    "resnet20": resnet20_network,
    "resnet50": resnet50_network,
    "vgg16": vgg16_network,
}
SHAPES = ((32, 32, 3), (28, 28, 1))
NUM_CLASSES = 10

# Published sizes (trainable parameters, 10 classes, 32x32x3): He et al.
# Table 6 (ResNet-20: 0.27M); CIFAR ResNet-50 = ImageNet ResNet-50 (25.6M)
# minus its 1000-way classifier; VGG-16 on CIFAR (~15.0M).
PUBLISHED = {"resnet20": 0.27e6, "resnet50": 23.5e6, "vgg16": 15.0e6}

# Exact M=1 counts at 32x32x3 / 10 classes: (trainable, non-trainable), the
# non-trainable ones being the BN moving mean and variance.
# resnet20: 21 conv kernels (19 3x3 + two 1x1 projections, option B) =
#   270,736; BN gamma/beta over 784 channels = 1,568; dense 64*10+10 = 650.
# resnet50: the CIFAR ResNet-50 count (kuangliu/pytorch-cifar: 23,520,842).
# vgg16: conv kernels 14,710,464 + BN 2*4,224 + dense 512*512+512,
#   512*512+512, 512*10+10.
EXACT_32x32x3 = {
    "resnet20": (272_474, 1_568),
    "resnet50": (23_520_842, 53_120),
    "vgg16": (14_710_464 + 8_448 + 262_656 + 262_656 + 5_130, 8_448),
}
# Only the first 3x3 conv sees the input channels: 3 -> 1 channel removes
# 9 * 2 * (its filters) kernel entries.
STEM_FILTERS = {"resnet20": 16, "resnet50": 64, "vgg16": 64}

# RLS layers per network: (conv+BN in the main path, projection conv+BN,
# dense).
# resnet20: stem + 9 blocks x 2 = 19; stages 2 and 3 project; 1 dense.
# resnet50: stem + 16 blocks x 3 = 49; every stage's first block projects
#   (stage 1: 64 -> 256 channels); 1 dense.
# vgg16: 13 conv+BN, no shortcut, 3 dense.
RLS_LAYERS = {
    "resnet20": (19, 2, 1),
    "resnet50": (49, 4, 1),
    "vgg16": (13, 0, 3),
}

_CACHE = {}


def _network(name, shape, num_submodels):
    """Builds each (backbone, shape, M) once for the whole module."""
    key = (name, tuple(shape), num_submodels)
    if key not in _CACHE:
        _CACHE[key] = BUILDERS[name](
            num_submodels=num_submodels, num_classes=NUM_CLASSES,
            input_shape=shape,
        )
    return _CACHE[key]


@pytest.fixture(scope="module", autouse=True)
def _free_networks():
    yield
    _CACHE.clear()
    keras.backend.clear_session()


def _images(shape, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, size=(batch, *shape)).astype("float32")


def _counts(network):
    trainable = sum(int(np.prod(w.shape)) for w in network.trainable_weights)
    non_trainable = sum(
        int(np.prod(w.shape)) for w in network.non_trainable_weights
    )
    return trainable, non_trainable


def _expected_counts(name, shape):
    trainable, non_trainable = EXACT_32x32x3[name]
    trainable -= 9 * (3 - shape[-1]) * STEM_FILTERS[name]
    return trainable, non_trainable


def _rls_layers(network):
    return RLSModel(network).rls_layers


# -- structure ----------------------------------------------------------------


def test_registry_lists_backbones():
    for name in NEW_BACKBONES:
        assert name in BACKBONES


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", NEW_BACKBONES)
def test_forward_shape_and_probabilities(name, shape):
    network = _network(name, shape, 2)
    assert network.input_shape == (None, *shape)
    assert network.output_shape == (None, NUM_CLASSES)
    outputs = RLSModel(network).sample_outputs(_images(shape), 1)[0].numpy()
    assert outputs.shape == (2, NUM_CLASSES)
    assert np.all(np.isfinite(outputs))
    assert np.all(outputs >= 0.0)
    np.testing.assert_allclose(outputs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", NEW_BACKBONES)
def test_parameter_counts(name, shape):
    one = _network(name, shape, 1)
    two = _network(name, shape, 2)
    trainable, non_trainable = _counts(one)
    assert (trainable, non_trainable) == _expected_counts(name, shape)
    if shape == (32, 32, 3):
        assert abs(trainable / PUBLISHED[name] - 1.0) < 0.02
    # Every weight, trainable or not, holds exactly M copies.
    assert _counts(two) == (2 * trainable, 2 * non_trainable)
    assert two.count_params() == 2 * one.count_params()
    for w_one, w_two in zip(one.weights, two.weights):
        assert tuple(w_two.shape) == (2, *w_one.shape[1:])
        assert w_one.shape[0] == 1


@pytest.mark.parametrize("name", NEW_BACKBONES)
def test_rls_layer_count_and_names(name):
    network = _network(name, (32, 32, 3), 2)
    layers = _rls_layers(network)
    convs = [l for l in layers if isinstance(l, RLSConv2DBatchNorm)]
    dense = [l for l in layers if isinstance(l, RLSDense)]
    shortcuts = [l for l in convs if l.name.endswith("_shortcut")]
    main, projections, num_dense = RLS_LAYERS[name]
    assert len(layers) == main + projections + num_dense
    assert len(convs) == main + projections
    assert len(shortcuts) == projections
    assert len(dense) == num_dense
    names = [l.name for l in network.layers]
    assert len(set(names)) == len(names)
    # Weighted layers are all RLS layers: nothing escapes the sampling.
    for layer in network.layers:
        if layer.weights:
            assert layer in layers, layer.name
    if name == "resnet20":
        assert [l.name for l in shortcuts] == [
            "stage2_block1_shortcut", "stage3_block1_shortcut"]
        assert "stage3_block3_conv2" in names
    elif name == "resnet50":
        assert [l.name for l in shortcuts] == [
            f"stage{s}_block1_shortcut" for s in range(1, 5)]
        assert "stage4_block3_conv3" in names
        assert network.get_layer("gap").output.shape == (None, 2048)
    else:
        assert "block5_conv3" in names
        assert [l.name for l in dense] == ["fc1", "fc2", "fc3"]


def test_vgg16_skips_poolings_of_a_1x1_map():
    # (input shape, poolings kept, feature map size entering the classifier)
    for shape, pools, final in (((32, 32, 3), 5, (1, 1)),
                                ((28, 28, 1), 4, (1, 1)),
                                ((8, 8, 3), 3, (1, 1)),
                                ((40, 24, 3), 4, (2, 1))):
        network = _network("vgg16", shape, 1) if shape in SHAPES else (
            vgg16_network(num_submodels=1, input_shape=shape))
        names = [l.name for l in network.layers if l.name.endswith("_pool")]
        assert len(names) == pools, shape
        assert tuple(network.get_layer("gap").input.shape[1:]) == (*final, 512)
        assert network.get_layer("fc1").kernel.shape == (1, 512, 512)


def test_resnet_spatial_sizes():
    network = _network("resnet50", (28, 28, 1), 1)
    sizes = [network.get_layer(f"stage{s}_block1_out").output.shape[1]
             for s in range(1, 5)]
    assert sizes == [28, 14, 7, 4]


def test_sampling_arguments_reach_every_layer():
    network = resnet20_network(num_submodels=3, seed=7, mu=[0.5, 0.3, 0.2],
                               per_example_sampling=True)
    layers = _rls_layers(network)
    seeds = [layer.seed for layer in layers]
    # One factory per network: seeded layers draw different sequences.
    assert len(set(seeds)) == len(seeds) == 22
    assert min(seeds) == 7
    for layer in layers:
        assert layer.num_submodels == 3
        assert layer.mu == pytest.approx((0.5, 0.3, 0.2))
        assert layer.per_example_sampling


def test_weight_decay_on_every_kernel():
    network = resnet20_network(num_submodels=2, weight_decay=5e-4)
    kernels = [layer.kernel for layer in _rls_layers(network)]
    assert len(network.losses) == len(kernels) == 22
    expected = sum(5e-4 / 2 * float(np.sum(np.square(k.numpy())))
                   for k in kernels)
    np.testing.assert_allclose(
        float(sum(float(l) for l in network.losses)), expected, rtol=1e-4)
    assert not resnet20_network(num_submodels=1).losses


# -- registry and argument checks ----------------------------------------------


def test_build_network_via_registry():
    network = build_network("resnet20", num_submodels=2, num_classes=5,
                            input_shape=(28, 28, 1))
    assert network.name == "resnet20"
    assert network.output_shape == (None, 5)
    assert len(_rls_layers(network)) == 22
    model = build_model("resnet20", num_submodels=2, num_classes=5,
                        input_shape=(28, 28, 1))
    # Eager call: `predict` would trace the 10-sample graph (seconds on CPU).
    assert model(_images((28, 28, 1))).shape == (2, 5)


def test_unknown_backbone_is_named():
    with pytest.raises(ValueError, match="resnet21"):
        build_network("resnet21")


@pytest.mark.parametrize("name", NEW_BACKBONES)
@pytest.mark.parametrize("kwargs", [
    dict(num_classes=1),
    dict(num_classes=2.0),
    dict(num_classes=True),
    dict(input_shape=(32, 32)),
    dict(input_shape=(4, 4, 3)),
    dict(input_shape=(32, 32, 0)),
    dict(input_shape="32x32x3"),
    dict(num_submodels=0),
    dict(mu=[0.5, 0.6]),
    dict(weight_decay=-1.0),
], ids=lambda k: "-".join(f"{a}={b}" for a, b in k.items()))
def test_bad_arguments(name, kwargs):
    with pytest.raises(ValueError):
        BUILDERS[name](**kwargs)
    with pytest.raises(ValueError):
        build_network(name, **kwargs)


# -- sampling -------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW_BACKBONES)
def test_pinned_path_is_deterministic_unpinned_varies(name):
    shape = (32, 32, 3)
    network = _network(name, shape, 2)
    model = RLSModel(network)
    x = _images(shape)
    paths = np.asarray(model.draw(1, seed=0))
    assert paths.shape == (1, sum(RLS_LAYERS[name]))
    first = model.outputs(x, paths).numpy()
    np.testing.assert_array_equal(
        model.outputs(x, paths).numpy(), first)
    # Untrained deep networks in inference mode (moving statistics 0/1) can
    # saturate the softmax to one-hot; batch statistics keep the outputs
    # informative, so the variation is checked in training mode.
    pinned = model.outputs(x, paths, training=True).numpy()
    np.testing.assert_allclose(
        model.outputs(x, paths, training=True).numpy(),
        pinned, rtol=0, atol=1e-6)
    other = model.outputs(x, 1 - paths, training=True).numpy()
    assert np.abs(other - pinned).max() > 1e-4
    draws = [model.sample_outputs(x, 1, training=True).numpy()
             for _ in range(3)]
    assert max(np.abs(d - draws[0]).max() for d in draws[1:]) > 1e-4


# -- equivalence with plain Keras ----------------------------------------------


def _plain_resnet20(input_shape, num_classes):
    """ResNet-20 (option B shortcuts) from plain Keras layers.

    Written independently of `resnet.py`; layer names match the RLS network
    (convolution ``<name>``, its normalization ``<name>_bn``) so weights can
    be copied by name.
    """
    def conv_bn(x, filters, kernel_size, strides, name):
        # PyTorch-style symmetric padding for strided 3x3 convolutions.
        padding = "same"
        if strides != 1 and kernel_size > 1:
            x = keras.layers.ZeroPadding2D(kernel_size // 2)(x)
            padding = "valid"
        x = keras.layers.Conv2D(
            filters, kernel_size, strides=strides, padding=padding,
            use_bias=False, kernel_initializer="he_normal", name=name)(x)
        return keras.layers.BatchNormalization(
            momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)

    inputs = keras.Input(input_shape)
    x = keras.layers.ReLU()(conv_bn(inputs, 16, 3, 1, "stem_conv"))
    for stage, (filters, stage_strides) in enumerate(
            [(16, 1), (32, 2), (64, 2)], 1):
        for block in (1, 2, 3):
            name = f"stage{stage}_block{block}"
            strides = stage_strides if block == 1 else 1
            y = keras.layers.ReLU()(
                conv_bn(x, filters, 3, strides, f"{name}_conv1"))
            y = conv_bn(y, filters, 3, 1, f"{name}_conv2")
            if strides != 1 or x.shape[-1] != filters:
                x = conv_bn(x, filters, 1, strides, f"{name}_shortcut")
            x = keras.layers.ReLU()(keras.layers.Add()([y, x]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax",
                                 name="fc")(x)
    return keras.Model(inputs, outputs)


def _randomize(network, seed=0):
    """Gives every BN copy non-trivial statistics and affine parameters.

    Fresh BN weights (gamma 1, beta 0, mean 0, variance 1) hide mistakes in
    how they are used and let the untrained network saturate its softmax.
    """
    rng = np.random.default_rng(seed)
    for layer in _rls_layers(network):
        if isinstance(layer, RLSConv2DBatchNorm):
            shape = tuple(layer.gamma.shape)
            layer.gamma.assign(rng.uniform(0.2, 0.5, shape).astype("float32"))
            layer.beta.assign(rng.normal(0.0, 0.1, shape).astype("float32"))
            layer.moving_mean.assign(
                rng.normal(0.0, 0.1, shape).astype("float32"))
            layer.moving_variance.assign(
                rng.uniform(0.5, 2.0, shape).astype("float32"))
        else:
            layer.bias.assign(
                rng.normal(0.0, 0.1, tuple(layer.bias.shape)).astype("float32"))


def _copy_weights(network, plain, copy):
    """Copies copy `copy` of every RLS weight into the plain network."""
    assigned = 0
    for layer in _rls_layers(network):
        if isinstance(layer, RLSConv2DBatchNorm):
            plain.get_layer(layer.name).set_weights([layer.kernel[copy]])
            plain.get_layer(f"{layer.name}_bn").set_weights([
                layer.gamma[copy], layer.beta[copy],
                layer.moving_mean[copy], layer.moving_variance[copy]])
            assigned += 2
        else:
            plain.get_layer(layer.name).set_weights(
                [layer.kernel[copy], layer.bias[copy]])
            assigned += 1
    assert assigned == sum(1 for l in plain.layers if l.weights)


@pytest.mark.parametrize("num_submodels", [1, 2])
def test_resnet20_equals_plain_keras(num_submodels):
    shape = (32, 32, 3)
    network = resnet20_network(num_submodels=num_submodels, input_shape=shape)
    _randomize(network)
    model = RLSModel(network)
    x = _images(shape, batch=4)
    for copy in range(num_submodels):
        plain = _plain_resnet20(shape, NUM_CLASSES)
        _copy_weights(network, plain, copy)
        expected = plain(x, training=False).numpy()
        # The comparison means something only if the softmax is not one-hot.
        assert expected.max() < 0.99
        if num_submodels == 1:
            actual = network(x, training=False).numpy()
        else:
            paths = np.full((1, 22), copy, np.int32)
            actual = model.outputs(x, paths)[0].numpy()
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)
    if num_submodels == 1:
        # Training mode (batch statistics, moving-average update) as well.
        np.testing.assert_allclose(
            network(x, training=True).numpy(),
            plain(x, training=True).numpy(), rtol=0, atol=1e-5)
        for name in ("stem_conv", "stage3_block1_shortcut"):
            np.testing.assert_allclose(
                network.get_layer(name).moving_variance[0].numpy(),
                plain.get_layer(f"{name}_bn").moving_variance.numpy(),
                rtol=1e-5, atol=1e-6)


# -- serialization ---------------------------------------------------------------


def test_resnet20_rls_model_save_load(tmp_path):
    shape = (32, 32, 3)
    network = resnet20_network(num_submodels=2, input_shape=shape)
    _randomize(network, seed=1)
    model = RLSModel(network)
    x = _images(shape)
    paths = np.asarray(model.draw(3, seed=0))
    expected = model.outputs(x, paths).numpy()
    path = tmp_path / "resnet20.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, RLSModel)
    assert [l.name for l in loaded.rls_layers] == [
        l.name for l in model.rls_layers]
    np.testing.assert_allclose(
        loaded.outputs(x, paths).numpy(), expected,
        rtol=0, atol=1e-6)
    assert _counts(loaded.network) == _counts(network)


def test_strided_conv_is_aligned_with_projection_shortcut():
    """A strided 3x3 conv and the 1x1 stride-2 shortcut read the same pixels.

    An impulse at pixel (2, 2) must reach output (1, 1) through the centre tap
    of the 3x3 kernel, as with PyTorch's symmetric padding (TF's "same" would
    pad bottom/right only and shift the 3x3 grid by one pixel).
    """
    from rls_tf.models.backbones.common import LayerFactory

    make = LayerFactory(num_submodels=1)
    block = make.conv_bn(1, 3, strides=2, name="probe")
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, block(inputs))
    layer = model.get_layer("probe")
    kernel = np.zeros((1, 3, 3, 1, 1), "float32")
    kernel[0, 1, 1, 0, 0] = 1.0  # centre tap only
    layer.kernel.assign(kernel)
    x = np.zeros((1, 8, 8, 1), "float32")
    x[0, 2, 2, 0] = 1.0
    y = keras.ops.convert_to_numpy(model(x, training=False))[0, :, :, 0]
    assert y.shape == (4, 4)
    assert np.argmax(y) == np.ravel_multi_index((1, 1), (4, 4))


# -- layer hooks (pre_conv / post_relu) --------------------------------------------

# Sites per backbone: (convolutions, ReLUs). resnet20: 21 convs (19 + 2
# projections); ReLUs: stem, conv1 of each of the 9 blocks, each block's
# output. small_cnn: 4 convs, ReLUs after them and fc1. vgg16: 13 convs,
# ReLUs after them and fc1, fc2. resnet50: 53 convs; stem, conv1 and conv2 of
# 16 bottlenecks, 16 block outputs. resnet9: 8 convs, a ReLU after each.
HOOK_SITES = {"small_cnn": (4, 5), "resnet20": (21, 19), "vgg16": (13, 15),
              "resnet50": (53, 49), "resnet9": (8, 8)}


def _recorder(sites, kind, make=None):
    def hook(index, name):
        sites.setdefault(kind, []).append((index, name))
        return None if make is None else make(index, name)
    return hook


@pytest.mark.parametrize("name", sorted(HOOK_SITES))
def test_hooks_returning_none_change_nothing(name):
    shape = (8, 8, 3)
    plain = build_network(name, num_submodels=1, input_shape=shape)
    sites = {}
    hooked = build_network(name, num_submodels=1, input_shape=shape,
                           pre_conv=_recorder(sites, "pre_conv"),
                           post_relu=_recorder(sites, "post_relu"))
    assert [l.name for l in hooked.layers] == [l.name for l in plain.layers]
    assert [w.path for w in hooked.weights] == [w.path for w in plain.weights]
    assert hooked.count_params() == plain.count_params()
    convs, relus = HOOK_SITES[name]
    assert [i for i, _ in sites["pre_conv"]] == list(range(convs))
    assert [i for i, _ in sites["post_relu"]] == list(range(relus))
    conv_names = [l.name for l in plain.layers if isinstance(l, RLSConv2DBatchNorm)]
    assert sorted(n for _, n in sites["pre_conv"]) == sorted(conv_names)


def test_hook_layers_are_inserted_at_their_sites():
    shape = (8, 8, 3)
    plain = resnet20_network(num_submodels=1, input_shape=shape)
    _randomize(plain)
    hooked = resnet20_network(
        num_submodels=1, input_shape=shape,
        pre_conv=lambda i, n: keras.layers.Identity(name=f"{n}_pre"),
        post_relu=lambda i, n: keras.layers.Identity(name=f"{n}_post"))
    hooked.set_weights(plain.get_weights())
    x = _images(shape, batch=3)
    np.testing.assert_allclose(hooked(x).numpy(), plain(x).numpy(), atol=1e-6)
    for layer in hooked.layers:
        if isinstance(layer, RLSConv2DBatchNorm):
            source = layer.input._keras_history.operation
            if isinstance(source, keras.layers.ZeroPadding2D):  # pad after the hook
                source = source.input._keras_history.operation
            assert source.name == f"{layer.name}_pre"
    names = {l.name for l in hooked.layers}
    assert {"stem_conv_post", "stage1_block1_conv1_post", "stage3_block3_out_post",
            "stage2_block1_shortcut_pre"} <= names
    assert "stage1_block1_conv2_post" not in names  # no ReLU before the addition
    assert sum(isinstance(l, keras.layers.Identity) for l in hooked.layers) == 21 + 19


def test_bad_hooks_and_options_are_named():
    with pytest.raises(ValueError, match="pre_conv"):
        build_network("small_cnn", pre_conv="noise")
    with pytest.raises(ValueError, match="post_relu"):
        resnet20_network(post_relu=3)
    with pytest.raises(ValueError, match="depth"):
        build_network("resnet20", depth=3)
    network = build_network("small_cnn", num_submodels=1, width=4)
    assert network.get_layer("conv1").filters == 4
