"""SAP (Dhillon et al. 2018): the operator against NumPy, the wrap, accuracy, strength."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from rls_tf.attacks import pgd
from rls_tf.defenses import SAP
from rls_tf.defenses import SAPModel
from rls_tf.defenses import noise_scope
from rls_tf.defenses.sap import draw_counts
from rls_tf.evaluation.threat_models import ThreatModel
from rls_tf.evaluation.threat_models import make_attacker
from rls_tf.export import export_saved_model
from rls_tf.models import RLSModel
from rls_tf.models import build_model
from rls_tf.models.backbones.small_cnn import small_cnn_network
from rls_tf.defenses.noise_networks import is_relu
from rls_tf.defenses.noise_networks import sap_network
from rls_tf.defenses.noise_networks import wrap_sap

from tests.evaluation.conftest import toy_images

SHAPE = (12, 12, 1)


def _plain(width=8, seed=0):
    keras.utils.set_random_seed(seed)
    network = small_cnn_network(num_submodels=1, num_classes=4, input_shape=SHAPE, width=width)
    return RLSModel(network, eval_samples=1)


def _accuracy(model, x, y):
    return float(np.mean(np.argmax(model.defend(x).numpy(), axis=-1) == y))


@pytest.fixture(scope="module")
def trained_plain():
    """A tiny plain small_cnn fitted on the toy quadrant task (seconds)."""
    model = _plain()
    x, y = toy_images(512, seed=1)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=32, epochs=3, verbose=0)
    return model


@pytest.fixture(scope="module")
def test_data():
    return toy_images(64, seed=2)


def _numpy_keep(h, frac):
    """Keep probabilities of the official operator: 1 - (1 - p)^k, p = |h| / sum|h|."""
    flat = np.abs(h.reshape(len(h), -1)).astype(np.float64)
    p = flat / flat.sum(axis=1, keepdims=True)
    k = max(1, int(frac * flat.shape[1]))
    return (1.0 - (1.0 - p) ** k).reshape(h.shape), k


def _prune_many(layer, h, times, seed=(1, 2)):
    """`times` independent draws of the layer on the rows of `h`: ``[times, *h.shape]``.

    The batch tiled `times` times under one seed: every row draws its own.
    """
    tiled = np.concatenate([h] * times)
    with noise_scope([list(seed)], {id(layer): 0}):
        out = layer(tiled).numpy()
    return out.reshape(times, *h.shape)


# -- the operator ------------------------------------------------------------------


@pytest.mark.parametrize("frac", [1.0, 0.3])
@pytest.mark.parametrize("shape", [(30,), (3, 3, 2)])
def test_sap_is_unbiased_and_keeps_with_the_operators_probability(frac, shape):
    rng = np.random.default_rng(0)
    h = np.maximum(rng.normal(0.2, 1.0, size=(2, *shape)), 0.0).astype("float32")
    h.reshape(2, -1)[:, :3] = 0.0                      # some dead units
    h.reshape(2, -1)[0, 3] = 5.0                       # and a dominant one
    layer = SAP(frac)
    times = 4000
    out = _prune_many(layer, h, times)
    keep, _ = _numpy_keep(h, frac)
    kept = out != 0.0
    alive = h > 0
    # Drawn units are scaled by exactly 1 / keep, the others are zero.
    np.testing.assert_allclose(out[kept], (np.broadcast_to(h / np.where(alive, keep, 1.0),
                                                           out.shape))[kept], rtol=1e-5)
    assert not kept[:, ~alive].any()
    # How often each unit is kept: the NumPy keep probability (binomial bound).
    freq = kept.mean(axis=0)
    bound = 5 * np.sqrt(keep * (1 - keep) / times) + 1e-3
    assert np.all(np.abs(freq - keep) <= bound)
    # Unbiased: E[out] = h, within 5 standard errors (var = h^2 (1/keep - 1)).
    var = np.where(alive, h ** 2 * (1.0 / np.where(alive, keep, 1.0) - 1.0), 0.0)
    assert np.all(np.abs(out.mean(axis=0) - h) <= 5 * np.sqrt(var / times) + 1e-5)


def test_draw_counts_are_multinomial():
    p = np.array([[0.5, 0.0, 0.3, 0.2], [0.0, 0.0, 1.0, 0.0], [0.0, 0.25, 0.25, 0.5]])
    counts = draw_counts(tf.constant(p), 20000, tf.constant([3, 4], tf.int64)).numpy()
    assert counts.shape == (3, 4) and counts.dtype == np.int32
    np.testing.assert_array_equal(counts.sum(axis=1), 20000)
    # Each count is Binomial(k, p_j): within 5 standard deviations.
    assert np.all(np.abs(counts - 20000 * p) <= 5 * np.sqrt(20000 * p * (1 - p)) + 1e-9)
    assert counts[0, 1] == 0 and counts[1, 2] == 20000 and counts[2, 0] == 0
    # A uniform that rounds up to 1 still lands in the last index.
    edge = draw_counts(tf.constant([[0.0, 1.0]]), 3, tf.constant([0, 1], tf.int64)).numpy()
    np.testing.assert_array_equal(edge, [[0, 3]])


def test_draw_counts_have_the_joint_law_of_draws_with_replacement():
    # Pairs of units are kept together with the multinomial's probability
    # 1 - q_i - q_j + (1 - p_i - p_j)^k (q = (1 - p)^k), which independent
    # keeps (Athalye et al.'s approximation) would not give.
    p = np.array([0.4, 0.3, 0.2, 0.1])
    k, times = 3, 20000
    rows = np.broadcast_to(p, (times, 4))
    hit = draw_counts(tf.constant(rows), k, tf.constant([5, 6], tf.int64)).numpy() > 0
    q = (1 - p) ** k
    for i in range(4):
        for j in range(i + 1, 4):
            both = 1 - q[i] - q[j] + (1 - p[i] - p[j]) ** k
            independent = (1 - q[i]) * (1 - q[j])
            freq = np.mean(hit[:, i] & hit[:, j])
            assert abs(freq - both) <= 5 * np.sqrt(both * (1 - both) / times)
            assert abs(both - independent) > 10 * np.sqrt(both * (1 - both) / times)
    # The number of distinct units kept: its NumPy-sampled distribution.
    reference = np.random.default_rng(0).multinomial(k, p, size=times) > 0
    for distinct in range(1, 4):
        a, b = np.mean(hit.sum(1) == distinct), np.mean(reference.sum(1) == distinct)
        assert abs(a - b) <= 6 * np.sqrt(max(b * (1 - b), 1e-4) / times)


def test_k_draws_prune_to_at_most_k_units():
    h = np.random.default_rng(1).uniform(0.1, 1.0, size=(50, 40)).astype("float32")
    layer = SAP(0.1)  # k = 4 of 40
    with noise_scope([[7, 8]], {id(layer): 0}):
        out = layer(h).numpy()
    kept = (out != 0).sum(axis=1)
    assert kept.max() <= 4 and kept.min() >= 1
    tiny = SAP(0.01)  # int(0.4) = 0 draws would prune everything: k is at least 1
    with noise_scope([[7, 8]], {id(tiny): 0}):
        assert np.all((tiny(h).numpy() != 0).sum(axis=1) == 1)


def test_an_all_zero_row_stays_zero_without_nan():
    h = np.zeros((3, 4, 4, 2), "float32")
    h[1, 0, 0, 0] = 2.0
    layer = SAP(1.0)
    out = layer(h).numpy()
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[[0, 2]], 0.0)
    assert out[1, 0, 0, 0] == pytest.approx(2.0)  # the only unit: always kept, keep = 1
    with tf.GradientTape() as tape:
        v = tf.constant(h)
        tape.watch(v)
        total = tf.reduce_sum(layer(v))
    assert np.all(np.isfinite(tape.gradient(total, v).numpy()))


def test_gradient_passes_through_the_mask():
    h = tf.constant(np.random.default_rng(2).uniform(0.0, 1.0, size=(4, 12)).astype("float32"))
    layer = SAP(0.5)
    weights = tf.constant(np.random.default_rng(3).normal(size=(4, 12)).astype("float32"))
    with noise_scope([[1, 1]], {id(layer): 0}):
        with tf.GradientTape() as tape:
            tape.watch(h)
            out = layer(h)
            loss = tf.reduce_sum(out * weights)
        mask = layer.mask(h, tf.random.experimental.stateless_fold_in(
            tf.constant([1, 1], tf.int64), 0))
    np.testing.assert_allclose(out.numpy(), (h * mask).numpy(), rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(loss, h).numpy(), (weights * mask).numpy(),
                               rtol=1e-6)


# -- the wrap ----------------------------------------------------------------------


@pytest.mark.parametrize("backbone", ["small_cnn", "resnet20"])
def test_wrap_inserts_sap_after_every_relu_and_keeps_the_weights(backbone):
    base = build_model(backbone, num_submodels=1, num_classes=4, input_shape=(8, 8, 3))
    x = np.random.default_rng(0).uniform(-1, 1, (2, 8, 8, 3)).astype("float32")
    before = base.network(x).numpy()
    sap = wrap_sap(base, frac=0.5, eval_samples=7)
    assert isinstance(sap, SAPModel) and sap.eval_samples == 7
    relus = [layer for layer in base.network.layers if is_relu(layer)]
    saps = sap.noise_layers
    assert [s.name for s in saps] == [f"{r.name}_sap" for r in relus]
    assert all(s.frac == 0.5 for s in saps)
    for layer in sap.network.layers:  # every SAP right after its ReLU
        if isinstance(layer, SAP):
            assert is_relu(layer.input._keras_history.operation)
    # The same network the backbone's post_relu hook builds.
    reference = sap_network(backbone, num_classes=4, input_shape=(8, 8, 3), frac=0.5)
    assert [layer.name for layer in reference.layers] == [
        layer.name for layer in sap.network.layers]
    assert [w.shape for w in reference.weights] == [w.shape for w in sap.network.weights]
    # Same weights, and the base is untouched.
    for ours, theirs in zip(sap.network.get_weights(), base.network.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    assert not any(isinstance(layer, SAP) for layer in base.network.layers)
    np.testing.assert_array_equal(base.network(x).numpy(), before)
    if backbone == "resnet20":  # the ReLUs after the residual additions as well
        assert "stage3_block3_out_sap" in [s.name for s in saps]


def test_with_many_samples_sap_keeps_near_clean_accuracy(trained_plain, test_data):
    x, y = test_data
    clean = _accuracy(trained_plain, x, y)
    assert clean >= 0.9
    sap = wrap_sap(trained_plain)  # frac 1, N = 100
    assert sap.eval_samples == 100
    assert _accuracy(sap, x, y) >= clean - 0.05


def test_save_load_round_trip(tmp_path, trained_plain, test_data):
    x, _ = test_data
    sap = wrap_sap(trained_plain, frac=0.7, eval_samples=5)
    draws = sap.draw(3, seed=3)
    per_example = sap.draw(4 * 2, seed=4).numpy().reshape(2, 4, 2)
    expected = sap.outputs(x[:4], draws).numpy()
    expected_rows = sap.outputs(x[:4], per_example).numpy()
    path = tmp_path / "sap.keras"
    sap.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, SAPModel)
    assert loaded.describe() == sap.describe()
    np.testing.assert_allclose(loaded.outputs(x[:4], draws).numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(loaded.outputs(x[:4], per_example).numpy(), expected_rows,
                               atol=1e-6)


def test_randomness_fresh_and_pinned(trained_plain, test_data):
    x, _ = test_data
    sap = wrap_sap(trained_plain, eval_samples=3)
    first = sap.network(x[:4]).numpy()
    assert not np.allclose(sap.network(x[:4]).numpy(), first, atol=1e-6)
    draws = sap.draw(2, seed=1)
    np.testing.assert_array_equal(sap.outputs(x[:4], draws).numpy(),
                                  sap.outputs(x[:4], draws).numpy())


def test_export_saved_model(tmp_path, trained_plain, test_data):
    x, _ = test_data
    sap = wrap_sap(trained_plain, eval_samples=3)
    assert SAPModel.tflite_builtin_randomness is False
    path = export_saved_model(sap, str(tmp_path / "sap"), per_example_sampling=True)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    out = serve(images=tf.constant(x[:4]))
    assert out["sample_probabilities"].shape == (4, 3, 4)
    np.testing.assert_allclose(out["probabilities"].numpy().sum(-1), 1.0, atol=1e-5)


# -- bad inputs --------------------------------------------------------------------


def test_bad_arguments_raise_clear_errors():
    for frac in (0.0, -0.5, 1.5, float("inf")):
        with pytest.raises(ValueError, match=f"frac.*{frac}"):
            SAP(frac)
    plain = build_model("small_cnn", num_submodels=1, num_classes=4, input_shape=SHAPE)
    with pytest.raises(ValueError, match=r"frac.*2\.0"):
        wrap_sap(plain, frac=2.0)
    with pytest.raises(ValueError, match=r"eval_samples.*0"):
        wrap_sap(plain, eval_samples=0)
    with pytest.raises(ValueError, match="RLSModel.*Received: base of type Functional"):
        wrap_sap(plain.network)
    with pytest.raises(ValueError, match="Received: base of type SAPModel"):
        wrap_sap(wrap_sap(plain))
    ensemble = build_model("small_cnn", num_submodels=2, num_classes=4, input_shape=SHAPE)
    with pytest.raises(ValueError, match="num_submodels=2"):
        wrap_sap(ensemble)
    inputs = keras.Input(SHAPE)
    linear = keras.Model(inputs, keras.layers.Softmax()(keras.layers.Flatten()(inputs)))
    with pytest.raises(ValueError, match="no ReLU"):
        wrap_sap(RLSModel(linear))
    with pytest.raises(ValueError, match="SAP"):
        SAPModel(plain.network)


# -- strength ----------------------------------------------------------------------


def test_pgd_under_eot_breaks_sap_at_a_large_eps(trained_plain, test_data):
    """A defense no attack breaks at a large eps would mean a broken attack."""
    x, y = test_data
    sap = wrap_sap(trained_plain, eval_samples=20)
    assert _accuracy(sap, x, y) >= 0.9
    attacker = make_attacker(sap, ThreatModel("eot", eot_samples=8), seed=0)
    x_adv = pgd(tf.function(attacker.model_fn), x, y, eps=1.0, eps_iter=0.2, nb_iter=10)
    assert _accuracy(sap, x_adv.numpy(), y) < 0.1
