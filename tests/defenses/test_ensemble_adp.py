"""Base ensemble and ADP: the loss against a NumPy transcription, independence, training."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from rls_tf.defenses import ADPModel
from rls_tf.defenses import EnsembleModel
from rls_tf.defenses.adp import adp_loss_terms
from rls_tf.models import build_defense

from tests.evaluation.conftest import toy_images


def _numpy_adp(y, probs, alpha, beta):
    """Transcription of Loss_withEE_DPP (P2333/Adaptive-Diversity-Promoting utils.py)."""
    members, batch, classes = probs.shape
    out = np.zeros(batch)
    for b in range(batch):
        ce = 0.0
        for i in range(members):
            p = probs[i, b] / probs[i, b].sum()
            p = np.clip(p, 1e-7, 1 - 1e-7)
            ce += -np.log(p[y[b]])
        mean = probs[:, b].mean(axis=0)
        entropy = -np.sum(mean * np.log(mean + 1e-20))
        non_max = np.stack([np.delete(probs[i, b], y[b]) for i in range(members)])
        non_max = non_max / np.linalg.norm(non_max, axis=1, keepdims=True)
        gram = non_max @ non_max.T + 1e-6 * np.eye(members)
        _, logdet = np.linalg.slogdet(gram)
        out[b] = ce - alpha * entropy - beta * logdet
    return out


def _probs(members=3, batch=5, classes=4, seed=0):
    logits = np.random.default_rng(seed).normal(0, 2, size=(members, batch, classes))
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype("float64")


@pytest.mark.parametrize("alpha, beta", [(2.0, 0.5), (1.0, 0.0), (0.0, 0.5), (0.3, 1.7)])
def test_adp_loss_equals_the_numpy_transcription(alpha, beta):
    probs = _probs()
    y = np.array([0, 1, 2, 3, 1])
    got = adp_loss_terms(tf.constant(y), tf.constant(probs), alpha, beta).numpy()
    np.testing.assert_allclose(got, _numpy_adp(y, probs, alpha, beta), rtol=1e-5, atol=1e-5)


def test_adp_with_alpha_beta_zero_is_the_ensemble_loss():
    probs = tf.constant(_probs(seed=1))
    y = tf.constant([3, 2, 1, 0, 0])
    members = _small_members(3)
    ensemble, adp = EnsembleModel(members), ADPModel(members, alpha=0.0, beta=0.0)
    np.testing.assert_allclose(adp.member_loss_terms(y, probs).numpy(),
                               ensemble.member_loss_terms(y, probs).numpy(), rtol=1e-7)
    np.testing.assert_allclose(ensemble.member_loss_terms(y, probs).numpy(),
                               _numpy_adp(y.numpy(), probs.numpy(), 0.0, 0.0), rtol=1e-5)


def _small_members(size, seed=0):
    members = []
    for i in range(size):
        keras.utils.set_random_seed(seed + i)
        inputs = keras.Input((12, 12, 1))
        h = keras.layers.Flatten()(inputs)
        h = keras.layers.Dense(16, activation="relu")(h)
        members.append(keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(h),
                                   name=f"member_{i}"))
    return members


def test_ensemble_members_get_independent_gradients():
    model = EnsembleModel(_small_members(3))
    x, y = toy_images(16)
    with tf.GradientTape() as tape:
        loss = model._loss(tf.constant(y), model.member_outputs(x, training=True))  # pylint: disable=protected-access
    joint = tape.gradient(loss, model.members[1].trainable_weights)
    with tf.GradientTape() as tape:
        probs = model.members[1](x, training=True)
        alone = tf.reduce_mean(-tf.math.log(tf.clip_by_value(
            tf.gather(probs, y, axis=1, batch_dims=1), 1e-7, 1 - 1e-7)))
    own = tape.gradient(alone, model.members[1].trainable_weights)
    for a, b in zip(joint, own):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
    # A step on member 0's loss alone leaves the other members' weights untouched.
    before = [w.numpy().copy() for w in model.members[2].trainable_weights]
    with tf.GradientTape() as tape:
        alone = tf.reduce_mean(model.member_loss_terms(
            tf.constant(y), model.member_outputs(x, training=True)[:1]))
    grads = tape.gradient(alone, model.trainable_weights)
    assert all(g is None or not np.any(g.numpy()) for g, w in zip(grads, model.trainable_weights)
               if any(w is v for v in model.members[2].trainable_weights))
    keras.optimizers.SGD(0.1).apply([g if g is not None else tf.zeros_like(w)
                                     for g, w in zip(grads, model.trainable_weights)],
                                    model.trainable_weights)
    for w, old in zip(model.members[2].trainable_weights, before):
        np.testing.assert_array_equal(w.numpy(), old)


def test_adp_gradient_couples_the_members():
    model = ADPModel(_small_members(2), alpha=2.0, beta=0.5)
    x, y = toy_images(8)
    with tf.GradientTape() as tape:
        loss = model._loss(tf.constant(y), model.member_outputs(x, training=True))  # pylint: disable=protected-access
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)


@pytest.mark.parametrize("name", ["ensemble", "adp"])
def test_one_epoch_on_toy_data_lowers_the_loss_and_saves(name, tmp_path):
    keras.utils.set_random_seed(0)
    model = build_defense(name, "small_cnn", input_shape=(12, 12, 1), num_classes=4,
                          ensemble_size=3)
    x, y = toy_images(256, seed=1)
    model.compile(optimizer=keras.optimizers.Adam(0.005), metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert history["accuracy"][-1] > 0.5
    assert "diversity" in history
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model) and loaded.ensemble_size == 3
    np.testing.assert_allclose(loaded.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0),
                               atol=1e-5)
    if name == "adp":
        assert (loaded.alpha, loaded.beta) == (2.0, 0.5)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="ensemble_size.*Received: ensemble_size=1"):
        build_defense("ensemble", "small_cnn", input_shape=(12, 12, 1), ensemble_size=1)
    with pytest.raises(ValueError, match="Received: alpha=-1"):
        ADPModel(_small_members(2), alpha=-1)
    with pytest.raises(ValueError, match="at least 2 keras.Model"):
        EnsembleModel(_small_members(1))
    with pytest.raises(ValueError, match="Unknown defense.*Received: defense='dropout'"):
        build_defense("dropout", "small_cnn")
    with pytest.raises(ValueError, match="Received: .*'mu_x'"):
        build_defense("rls", "small_cnn", mu_x=1)


@pytest.mark.parametrize("name", ["ensemble", "adp"])
def test_pgd_at_a_large_eps_breaks_the_trained_ensemble(name):
    # A defense that no attack breaks at a large eps means the attack is broken.
    from rls_tf import attacks  # pylint: disable=import-outside-toplevel
    from rls_tf.evaluation import threat_models as tm  # pylint: disable=import-outside-toplevel

    keras.utils.set_random_seed(1)
    model = build_defense(name, "small_cnn", input_shape=(12, 12, 1), num_classes=4,
                          ensemble_size=2)
    x, y = toy_images(256, seed=2)
    model.compile(optimizer=keras.optimizers.Adam(0.005), metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=3, verbose=0)
    xt, yt = toy_images(64, seed=3)
    assert np.mean(np.argmax(model.predict(xt, verbose=0), -1) == yt) > 0.8
    for threat in ("eot", "paper"):
        attacker = tm.make_attacker(model, threat, seed=0)
        assert attacker.white_box == (threat == "eot")
        x_adv = attacks.pgd(attacker.model_fn, xt, yt, eps=1.0, eps_iter=0.1, nb_iter=20,
                            rand_init=True, seed=0).numpy()
        assert np.abs(x_adv - xt).max() <= 1.0 + 1e-5
        accuracy = np.mean(np.argmax(model.predict(x_adv, verbose=0), -1) == yt)
        if threat == "eot":
            assert accuracy < 0.1, accuracy
