"""Group losses (`rls_tf.losses`) and label smoothing of the ensembles' members."""

import keras
import numpy as np
import pytest

from rls_tf.defenses.adp import adp_loss_terms
from rls_tf.defenses.ensemble import member_cross_entropy
from rls_tf.losses import GroupCrossEntropy
from rls_tf.losses import GroupMSE


def _probs(shape, seed=0):
    logits = np.random.default_rng(seed).normal(0, 2, shape).astype("float32")
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.2])
def test_group_crossentropy_is_keras_label_smoothing(smoothing):
    y = np.array([0, 3, 2, 1, 4, 4])
    probs = _probs((6, 5))
    ours = float(GroupCrossEntropy(label_smoothing=smoothing)(y, probs))
    keras_loss = keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)
    reference = float(keras_loss(np.eye(5)[y], probs))
    assert ours == pytest.approx(reference, rel=1e-6)
    if smoothing == 0.0:
        sparse = float(keras.losses.SparseCategoricalCrossentropy()(y, probs))
        assert ours == pytest.approx(sparse, rel=1e-6)


def test_smoothing_changes_the_loss_by_the_formula():
    y, probs = np.array([1]), np.array([[0.2, 0.8]], "float32")
    plain = float(GroupCrossEntropy()(y, probs))
    smoothed = float(GroupCrossEntropy(label_smoothing=0.1)(y, probs))
    assert plain == pytest.approx(-np.log(0.8), rel=1e-6)
    assert smoothed == pytest.approx(-(0.05 * np.log(0.2) + 0.95 * np.log(0.8)), rel=1e-6)
    again = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(GroupCrossEntropy(label_smoothing=0.1)))
    assert again.label_smoothing == 0.1
    with pytest.raises(ValueError, match="Received: label_smoothing=1.0"):
        GroupCrossEntropy(label_smoothing=1.0)
    assert float(GroupMSE()(y, probs)) == pytest.approx(0.08, rel=1e-5)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_member_crossentropy_smooths_every_member_like_keras(smoothing):
    y = np.array([2, 0, 1, 2])
    probs = _probs((3, 4, 3), seed=1)  # [members, batch, classes]
    ours = member_cross_entropy(y, probs, smoothing).numpy()
    for m in range(3):
        reference = keras.losses.categorical_crossentropy(
            np.eye(3)[y], probs[m], label_smoothing=smoothing).numpy()
        np.testing.assert_allclose(ours[m], reference, rtol=1e-5)
    # ADP's cross-entropy part takes the same smoothing (alpha = beta = 0).
    np.testing.assert_allclose(adp_loss_terms(y, probs, 0.0, 0.0, smoothing).numpy(),
                               ours.sum(axis=0), rtol=1e-6)
