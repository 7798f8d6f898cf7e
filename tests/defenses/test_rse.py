"""RSE (Liu et al. 2018): noise placement and scale, randomness, training, strength."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from rls_tf.attacks import pgd
from rls_tf.defenses import RSEModel
from rls_tf.defenses import RSENoise
from rls_tf.defenses import noise_scope
from rls_tf.evaluation.threat_models import ThreatModel
from rls_tf.evaluation.threat_models import make_attacker
from rls_tf.export import export_saved_model
from rls_tf.layers import RLSConv2DBatchNorm
from rls_tf.models import build_network
from rls_tf.defenses.noise_networks import PIXEL_SCALE
from rls_tf.defenses.noise_networks import RSE_INIT_STD
from rls_tf.defenses.noise_networks import RSE_INNER_STD
from rls_tf.defenses.noise_networks import build_rse
from rls_tf.defenses.noise_networks import rse_network

from tests.evaluation.conftest import toy_images

SHAPE = (12, 12, 1)


def _tiny(eval_samples=8, **kwargs):
    return build_rse("small_cnn", num_classes=4, input_shape=SHAPE, width=8,
                     eval_samples=eval_samples, **kwargs)


def _accuracy(model, x, y):
    return float(np.mean(np.argmax(model.defend(x).numpy(), axis=-1) == y))


@pytest.fixture(scope="module")
def trained():
    """A tiny RSE small_cnn fitted on the toy quadrant task (seconds)."""
    keras.utils.set_random_seed(0)
    model = _tiny(eval_samples=20)
    x, y = toy_images(512, seed=1)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=32, epochs=3, verbose=0)
    return model


@pytest.fixture(scope="module")
def test_data():
    return toy_images(64, seed=2)


# -- the noise -------------------------------------------------------------------


@pytest.mark.parametrize("scoped", [False, True])
def test_noise_std_matches(scoped):
    std = 0.4
    layer = RSENoise(std)
    x = np.zeros((32, 16, 16, 4), "float32")
    if scoped:
        with noise_scope([[1, 2]], {id(layer): 0}):
            noise = layer(x).numpy()
            np.testing.assert_array_equal(layer(x).numpy(), noise)  # pinned: deterministic
    else:
        noise = layer(x).numpy()
        assert not np.allclose(layer(x).numpy(), noise)  # fresh at every call
    n = noise.size
    # Standard errors of the mean and of the std of n normals.
    assert abs(noise.mean()) < 5 * std / np.sqrt(n)
    assert abs(noise.std() - std) < 5 * std / np.sqrt(2 * n)
    # i.i.d. per element: rows and channels are not copies of each other.
    assert abs(np.corrcoef(noise[0].ravel(), noise[1].ravel())[0, 1]) < 5 / np.sqrt(n / 32)
    # Additive: the same noise whatever the input (gradient straight through).
    if scoped:
        with noise_scope([[1, 2]], {id(layer): 0}):
            np.testing.assert_allclose(layer(x + 3.0).numpy() - 3.0, noise, atol=1e-5)


def test_noise_std_zero_is_the_identity():
    layer = RSENoise(0.0)
    x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    np.testing.assert_array_equal(layer(x).numpy(), x)
    assert not layer.is_random


@pytest.mark.parametrize("backbone", ["small_cnn", "resnet20", "resnet50", "vgg16"])
def test_noise_before_every_convolution(backbone):
    network = rse_network(backbone, num_classes=4, input_shape=(8, 8, 3))
    convs = [layer for layer in network.layers if isinstance(layer, RLSConv2DBatchNorm)]
    noises = [layer for layer in network.layers if isinstance(layer, RSENoise)]
    assert len(noises) == len(convs)
    producers = []
    for conv in convs:
        producer = conv.input._keras_history.operation
        if isinstance(producer, keras.layers.ZeroPadding2D):  # strided conv: pad after noise
            producer = producer.input._keras_history.operation
        assert isinstance(producer, RSENoise), conv.name
        assert producer.name == f"{conv.name}_noise"
        producers.append(producer)
    assert len({id(p) for p in producers}) == len(convs)  # one noise layer per conv
    if backbone.startswith("resnet"):
        assert any(conv.name.endswith("_shortcut") for conv in convs)
    # init std (in [0, 1] pixel units, doubled for [-1, 1] pixels) on the input only.
    first = noises[0]
    assert isinstance(first.input._keras_history.operation, keras.layers.InputLayer)
    assert first.std == pytest.approx(PIXEL_SCALE * RSE_INIT_STD) == pytest.approx(0.4)
    assert all(n.std == pytest.approx(RSE_INNER_STD) for n in noises[1:])
    # No noise before the classifier: the dense layers' inputs are not noise.
    for layer in network.layers:
        if type(layer).__name__ == "RLSDense":
            assert not isinstance(layer.input._keras_history.operation, RSENoise)


def test_measured_noise_in_the_network():
    """The noise each layer adds inside the built network has its std."""
    network = rse_network("small_cnn", num_classes=4, input_shape=(16, 16, 1), init_std=0.25,
                          inner_std=0.05, width=8)
    noises = [layer for layer in network.layers if isinstance(layer, RSENoise)]
    probe = keras.Model(network.input, [t for n in noises for t in (n.input, n.output)])
    x = np.random.default_rng(0).uniform(-1, 1, (64, 16, 16, 1)).astype("float32")
    values = probe(x)
    for layer, before, after in zip(noises, values[0::2], values[1::2]):
        added = (after - before).numpy()
        n = added.size
        assert abs(added.std() - layer.std) < 5 * layer.std / np.sqrt(2 * n), layer.name
    assert [n.std for n in noises] == pytest.approx([0.5, 0.05, 0.05, 0.05])


# -- randomness ------------------------------------------------------------------


def test_noise_is_on_at_inference_fresh_per_call_and_pinned_draws_repeat():
    model = _tiny()
    x, _ = toy_images(8, seed=3)
    # Inference mode of the bare network: the noise stays on.
    first = model.network(x, training=False).numpy()
    assert not np.allclose(model.network(x, training=False).numpy(), first, atol=1e-5)
    assert not np.allclose(model(x).numpy(), model(x).numpy(), atol=1e-6)
    traced = tf.function(model.defend)
    assert not np.allclose(traced(x).numpy(), traced(x).numpy(), atol=1e-6)
    draws = model.draw(3, seed=7)
    pinned = model.outputs(x, draws).numpy()
    np.testing.assert_array_equal(model.outputs(x, draws).numpy(), pinned)
    np.testing.assert_allclose(model.outputs(x, draws, forward="tiled").numpy(), pinned,
                               atol=1e-6)
    assert not np.allclose(pinned[0], pinned[1], atol=1e-5)  # draws differ


def test_gradients_of_pinned_draws_agree_between_forwards():
    """The loop (a graph loop over draws) and tiled forwards: same values and gradients."""
    model = _tiny()
    x = tf.constant(toy_images(3, seed=5)[0])
    draws = model.draw(4, seed=2)
    grads = {}
    for forward in ("loop", "tiled"):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = model.outputs(x, draws, forward=forward)
            loss = tf.reduce_sum(tf.math.log(out[..., 0]))
        grads[forward] = tape.gradient(loss, x).numpy()
        assert out.shape == (4, 3, 4)
    assert np.all(np.isfinite(grads["loop"])) and np.abs(grads["loop"]).max() > 0
    np.testing.assert_allclose(grads["loop"], grads["tiled"], rtol=1e-4, atol=1e-6)


def test_training_noise_follows_the_global_seed():
    """Seeded training passes repeat; unseeded ones are fresh at every call."""
    x, _ = toy_images(4, seed=3)
    model = _tiny()
    step = tf.function(lambda v: model(v, training=True))
    runs = []
    for _ in range(2):
        keras.utils.set_random_seed(7)
        runs.append([step(x).numpy() for _ in range(2)])
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert not np.allclose(runs[0][0], runs[0][1], atol=1e-5)  # fresh noise per call


def test_unseeded_noise_ignores_a_global_seed():
    """Outside training no seed is baked into the graph even when a global seed is set."""
    model = _tiny()
    keras.utils.set_random_seed(123)
    graph = tf.function(lambda v: model.network(v)).get_concrete_function(
        tf.TensorSpec((None, *SHAPE), tf.float32)).graph
    seeded = [(op.get_attr("seed"), op.get_attr("seed2")) for op in graph.get_operations()
              if op.type == "RandomUniformInt"]
    assert seeded and set(seeded) == {(0, 0)}


def test_sample_is_reproducible_for_a_key_and_per_example():
    model = _tiny()
    x, _ = toy_images(4, seed=3)
    key = tf.constant([5, 6], tf.int64)
    out = model.sample(x, 6, seed=key).numpy()
    np.testing.assert_array_equal(model.sample(x, 6, seed=key).numpy(), out)
    # The same image twice in a batch gets independent noise.
    twin = np.concatenate([x[:1], x[:1]])
    pair = model.sample(twin, 6).numpy()
    assert not np.allclose(pair[:, 0], pair[:, 1], atol=1e-5)


# -- training, saving, export ----------------------------------------------------


def test_one_epoch_with_a_falling_loss():
    keras.utils.set_random_seed(1)
    model = _tiny(eval_samples=4)
    x, y = toy_images(512, seed=4)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    before = model.evaluate(x[:128], y[:128], verbose=0, return_dict=True)["loss"]
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    after = model.evaluate(x[:128], y[:128], verbose=0, return_dict=True)["loss"]
    assert np.isfinite(history.history["loss"][0])
    assert after < 0.5 * before


def test_save_load_round_trip(tmp_path, trained, test_data):
    x, _ = test_data
    draws = trained.draw(4, seed=3)
    per_example = trained.draw(8 * 3, seed=4).numpy().reshape(3, 8, 2)
    expected = trained.outputs(x[:8], draws).numpy()
    expected_rows = trained.outputs(x[:8], per_example).numpy()
    path = tmp_path / "rse.keras"
    trained.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, RSEModel)
    assert loaded.eval_samples == trained.eval_samples
    assert loaded.describe() == trained.describe()
    np.testing.assert_allclose(loaded.outputs(x[:8], draws).numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(loaded.outputs(x[:8], per_example).numpy(), expected_rows,
                               atol=1e-6)


def test_export_saved_model(tmp_path, trained, test_data):
    x, _ = test_data
    assert RSEModel.tflite_builtin_randomness is False
    path = export_saved_model(trained, str(tmp_path / "rse"), eval_samples=3)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    first = serve(images=tf.constant(x[:4]))
    second = serve(images=tf.constant(x[:4]))
    assert first["sample_probabilities"].shape == (4, 3, 4)
    assert not np.allclose(first["sample_probabilities"], second["sample_probabilities"])
    np.testing.assert_allclose(first["probabilities"].numpy().sum(-1), 1.0, atol=1e-5)


# -- defaults and bad inputs -------------------------------------------------------


def test_defaults():
    model = build_rse("small_cnn", num_classes=4, input_shape=SHAPE, width=4)
    assert model.eval_samples == 50
    assert model.describe()["noise_std"] == pytest.approx([0.4, 0.1, 0.1, 0.1])
    assert model.draw_shape == (2,) and model.is_stochastic and model.pinnable


@pytest.mark.parametrize("make, match", [
    (lambda: RSENoise(-0.1), r"std.*-0\.1"),
    (lambda: RSENoise(float("nan")), r"std.*nan"),
    (lambda: build_rse("small_cnn", init_std=-1.0), r"init_std.*-1\.0"),
    (lambda: build_rse("small_cnn", inner_std=-0.5), r"inner_std.*-0\.5"),
    (lambda: build_rse("small_cnn", eval_samples=0), r"eval_samples.*0"),
    (lambda: build_rse("small_cnn", depth=3), r"depth"),
    (lambda: RSEModel("network"), r"network.*str"),
    (lambda: RSEModel(build_network("small_cnn", num_submodels=1)), r"RSENoise"),
])
def test_bad_arguments_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_draws_and_images_raise_clear_errors():
    model = _tiny()
    x, _ = toy_images(4, seed=0)
    with pytest.raises(ValueError, match="Received"):
        model.outputs(x, np.zeros((2, 3), np.int32))
    with pytest.raises(ValueError, match="float32"):
        model.outputs(x, np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="one seed per image"):
        model.outputs(x, np.zeros((2, 3, 2), np.int32))
    with pytest.raises(ValueError, match="x.shape"):
        model.outputs(np.zeros((2, 8, 8, 1), np.float32), model.draw(1))
    with pytest.raises(ValueError, match="forward"):
        model.outputs(x, model.draw(1), forward="sideways")


# -- strength ----------------------------------------------------------------------


def test_pgd_under_eot_breaks_rse_at_a_large_eps(trained, test_data):
    """A defense no attack breaks at a large eps would mean a broken attack."""
    x, y = test_data
    assert _accuracy(trained, x, y) >= 0.9  # the attack has something to break
    attacker = make_attacker(trained, ThreatModel("eot", eot_samples=8), seed=0)
    x_adv = pgd(tf.function(attacker.model_fn), x, y, eps=1.0, eps_iter=0.2, nb_iter=10)
    assert _accuracy(trained, x_adv.numpy(), y) < 0.1
