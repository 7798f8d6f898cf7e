"""Tests of the TFLite export: builtin ops only, sampling on every call, accuracy."""

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from rls_tf.export import SIGNATURE_KEY
from rls_tf.export import export_saved_model
from rls_tf.export import export_tflite
from rls_tf.export import tflite_op_names
from tests.export import conftest as h

N = h.EVAL_SAMPLES


@pytest.fixture(scope="module")
def tflite_models(trained_model, tmp_path_factory):
    base = tmp_path_factory.mktemp("tflite")
    return {
        "per_example": export_tflite(trained_model, str(base / "pe.tflite"),
                                     per_example_sampling=True),
        "seeded": export_tflite(trained_model, str(base / "seeded.tflite"), seed=11),
    }


def _runner(path):
    return Interpreter(model_path=path).get_signature_runner(SIGNATURE_KEY)


def test_builtin_ops_only_with_multinomial(tflite_models):
    for path in tflite_models.values():
        ops = tflite_op_names(path)
        assert "MULTINOMIAL" in ops, ops
        assert not [op for op in ops if op.startswith("Flex") or op == "CUSTOM"], ops
        # Per-example routing must be the builtin "select" form, not the Flex partition.
        assert not {"DYNAMIC_PARTITION", "DYNAMIC_STITCH"} & set(ops)


def test_signature_and_dynamic_batch(tflite_models):
    interpreter = Interpreter(model_path=tflite_models["per_example"])
    signature = interpreter.get_signature_list()[SIGNATURE_KEY]
    assert signature["inputs"] == ["images"]
    assert sorted(signature["outputs"]) == ["classes", "probabilities", "sample_probabilities"]
    runner = interpreter.get_signature_runner(SIGNATURE_KEY)
    for batch in (1, 7):
        out = runner(images=np.zeros((batch, 28, 28, 1), np.float32))
        assert out["sample_probabilities"].shape == (batch, N, 10)
        assert out["probabilities"].shape == (batch, 10) and out["classes"].shape == (batch,)


def test_samples_are_sampled_models_and_vary(trained_model, tflite_models, test_images):
    one = np.repeat(test_images[0][:1], 16, axis=0)
    runner = _runner(tflite_models["per_example"])
    first = runner(images=one)["sample_probabilities"]
    second = runner(images=one)["sample_probabilities"]
    assert not np.allclose(first, second), "two calls drew the same paths"
    paths = h.assert_samples_are_sampled_models(first, h.all_path_outputs(trained_model, one))
    assert len({tuple(row) for row in paths}) > 1, "examples of one call shared their paths"
    np.testing.assert_allclose(runner(images=one)["probabilities"].sum(-1), 1.0, atol=1e-5)


def test_fresh_interpreters_draw_fresh_paths_unless_seeded(tflite_models):
    x = np.linspace(-1, 1, 4 * 28 * 28, dtype=np.float32).reshape(4, 28, 28, 1)
    unseeded = [_runner(tflite_models["per_example"])(images=x)["sample_probabilities"]
                for _ in range(2)]
    assert not np.allclose(*unseeded)
    seeded = [_runner(tflite_models["seeded"])(images=x)["sample_probabilities"]
              for _ in range(2)]
    np.testing.assert_allclose(*seeded, atol=1e-6)


@pytest.mark.skipif(not h.HAS_SHARED_MNIST, reason="no ../shared/data")
def test_accuracy_matches_the_saved_model(trained_model, tflite_models, test_images, tmp_path):
    x, y = test_images
    saved = export_saved_model(trained_model, str(tmp_path / "sm"), per_example_sampling=True)
    serve = tf.saved_model.load(saved).signatures[SIGNATURE_KEY]
    runner = _runner(tflite_models["per_example"])
    requests = 4
    saved = np.stack([serve(images=tf.constant(x))["classes"].numpy() == y
                      for _ in range(requests)])
    lite = np.stack([runner(images=x)["classes"] == y for _ in range(requests)])
    assert saved.mean() > 0.8, saved.mean()
    # Both are fresh draws of N=5 sampled models per image: their accuracies
    # differ by sampling noise. If both exports are the same model, each
    # image's correctness is one Bernoulli(p_i) in both, so the difference of
    # the two means has std sqrt(sum_i p_i (1 - p_i) * 2 / requests) / n;
    # 4 std (pooled p_i) plus one image bounds it, while a broken export
    # (other weights, other routing) is off by far more.
    p = np.concatenate([saved, lite]).mean(axis=0)
    std = np.sqrt(np.sum(p * (1 - p)) * 2 / requests) / len(y)
    assert abs(lite.mean() - saved.mean()) <= 4 * std + 1 / len(y), (
        lite.mean(), saved.mean(), std)


def test_bad_path_raises(trained_model, tmp_path):
    with pytest.raises(ValueError, match=r"\.tflite.*Received: path="):
        export_tflite(trained_model, str(tmp_path / "model.bin"))
