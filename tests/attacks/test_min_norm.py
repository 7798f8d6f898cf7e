"""DeepFool, C&W and EAD (Foolbox): exactness on linear models, EOT decision."""

import numpy as np
import pytest
import tensorflow as tf

import rls_tf.attacks as attacks
from rls_tf.attacks import _common
from tests.attacks.conftest import linear_model_fn
from tests.attacks.conftest import two_linear_models_fn


def linear_problem(num_classes, seed, num=20, dim=16):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(num_classes, dim)).astype(np.float32)
    b = rng.normal(scale=0.1, size=num_classes).astype(np.float32)
    x = rng.uniform(-0.3, 0.3, size=(num, 4, 4, 1)).astype(np.float32)
    model_fn = linear_model_fn(w, b)
    z = model_fn(x).numpy().astype(np.float64)
    y = np.argmax(z, axis=-1)
    # Closed form: the nearest of the hyperplanes z_k = z_y.
    dist = np.full(num, np.inf)
    for k in range(num_classes):
        normal = np.linalg.norm(w[k].astype(np.float64) - w[y].astype(np.float64), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            d_k = np.abs(z[:, k] - z[np.arange(num), y]) / normal
        dist = np.where(np.arange(num_classes)[k] != y, np.minimum(dist, d_k), dist)
    return model_fn, x, y, dist


@pytest.mark.parametrize("num_classes", [2, 3])
@pytest.mark.parametrize("overshoot", [0.0, 0.02])
def test_deepfool_finds_the_minimal_l2_perturbation_of_a_linear_model(num_classes, overshoot):
    model_fn, x, y, dist = linear_problem(num_classes, seed=num_classes)
    x_adv = attacks.deepfool(model_fn, x, y, overshoot=overshoot)
    found = attacks.l2_distance(x, x_adv)
    assert np.all(np.argmax(model_fn(x_adv).numpy(), -1) != y)
    assert np.all(np.abs(x_adv.numpy()) < 1.0)  # no clipping got in the way
    # Foolbox adds 1e-4 to the distance for numerical stability.
    np.testing.assert_allclose(found, (1.0 + overshoot) * (dist + 1e-4), rtol=1e-3)
    np.testing.assert_allclose(found / (1.0 + overshoot), dist, rtol=1e-2, atol=2e-4)


def test_decision_logits_of_draws_are_log_mean_softmax():
    logits = np.random.default_rng(0).normal(size=(5, 3, 4)).astype(np.float32) * 5
    expected = np.log(np.mean(tf.nn.softmax(logits).numpy(), axis=0))
    np.testing.assert_allclose(_common.decision_logits(logits).numpy(), expected,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(_common.decision_logits(logits[0]).numpy(), logits[0])


def test_min_norm_attacks_on_a_random_two_model_ensemble():
    rng = np.random.default_rng(7)
    w1, w2 = rng.normal(size=(2, 3, 16)).astype(np.float32)
    b1, b2 = rng.normal(scale=0.1, size=(2, 3)).astype(np.float32)
    model_fn = two_linear_models_fn(w1, b1, w2, b2)
    x = rng.uniform(-0.3, 0.3, size=(10, 4, 4, 1)).astype(np.float32)
    ensemble = lambda v: _common.decision_logits(model_fn(v))  # noqa: E731
    y = np.argmax(ensemble(x).numpy(), -1)
    for name, kwargs in [("deepfool", {}),
                         ("cw_l2", dict(c=10.0, steps=100, lr=0.05)),
                         ("ead", dict(c=10.0, steps=100, lr=0.05))]:
        x_adv = attacks.ATTACKS[name](model_fn, x, y, **kwargs)
        fooled = np.argmax(ensemble(x_adv).numpy(), -1) != y
        assert fooled.all(), (name, fooled)
        # Not fooled by luck: the adversarials are close.
        assert attacks.l2_distance(x, x_adv).max() < 1.0, name


def test_cw_and_ead_return_x_only_where_they_fail():
    model_fn, x, y, _ = linear_problem(3, seed=11, num=6)
    x_adv = attacks.cw_l2(model_fn, x, y, c=10.0, steps=50, lr=0.05)
    assert np.all(np.argmax(model_fn(x_adv).numpy(), -1) != y)
    assert np.all(attacks.l2_distance(x, x_adv) > 0)
    for fn in (attacks.cw_l2, attacks.ead):
        x_adv = fn(model_fn, x, y, c=1e-3, steps=5, lr=1e-3, abort_early=False)
        # Too weak to succeed: x comes back exactly, not Foolbox's all-zero image.
        np.testing.assert_array_equal(x_adv.numpy(), x)
