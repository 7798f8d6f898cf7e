"""Export of the comparison defenses: the same signatures, written over the interface."""

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from rls_tf.export import SIGNATURE_KEY
from rls_tf.export import export_saved_model
from rls_tf.export import export_tflite
from rls_tf.export import tflite_op_names
from rls_tf.models import build_defense


@pytest.fixture(scope="module")
def ensemble():
    tf.keras.utils.set_random_seed(0)
    return build_defense("adp", "small_cnn", input_shape=(12, 12, 1), num_classes=4,
                         ensemble_size=3)


def _images(n=5):
    return np.random.default_rng(0).uniform(-1, 1, (n, 12, 12, 1)).astype("float32")


def test_ensemble_saved_model_serves_every_member(ensemble, tmp_path):
    path = export_saved_model(ensemble, str(tmp_path / "serving"))
    served = tf.saved_model.load(path).signatures[SIGNATURE_KEY](images=tf.constant(_images()))
    members = ensemble.member_outputs(_images()).numpy()
    np.testing.assert_allclose(served["sample_probabilities"].numpy(),
                               np.transpose(members, [1, 0, 2]), atol=1e-5)
    np.testing.assert_allclose(served["probabilities"].numpy(), members.mean(0), atol=1e-5)


def test_ensemble_tflite_is_builtin_and_equal(ensemble, tmp_path):
    path = export_tflite(ensemble, str(tmp_path / "m.tflite"))
    ops = tflite_op_names(path)
    assert not [op for op in ops if op.startswith("Flex") or op == "CUSTOM"], ops
    runner = Interpreter(model_path=path).get_signature_runner(SIGNATURE_KEY)
    out = runner(images=_images())
    np.testing.assert_allclose(out["probabilities"], ensemble.predict(_images(), verbose=0),
                               atol=1e-4)


def test_noise_defenses_refuse_tflite_with_the_reason(tmp_path):
    from rls_tf.defenses.noise_networks import build_rse  # pylint: disable=import-outside-toplevel

    rse = build_rse("small_cnn", input_shape=(12, 12, 1), num_classes=4, eval_samples=2)
    with pytest.raises(ValueError, match="cannot be exported to TFLite.*SavedModel"):
        export_tflite(rse, str(tmp_path / "rse.tflite"))
    assert not (tmp_path / "rse.tflite").exists()
