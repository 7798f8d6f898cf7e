"""Tests of the SavedModel export: the TF Serving contract and its randomness."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from rls_tf.export import SIGNATURE_KEY
from rls_tf.export import UINT8_SIGNATURE_KEY
from rls_tf.export import export_saved_model
from rls_tf.export import next_version
from rls_tf.models import build_model
from tests.export import conftest as h

N = h.EVAL_SAMPLES

# Loads exports in a fresh process and saves the sample probabilities of one
# fixed input for each: what a server restarted on the same files would
# answer. Arguments: output .npz, then the export directories.
_RELOAD_SCRIPT = """
import sys, numpy as np, tensorflow as tf
x = np.linspace(-1, 1, 4 * 28 * 28, dtype=np.float32).reshape(4, 28, 28, 1)
outs = {}
for i, path in enumerate(sys.argv[2:]):
    loaded = tf.saved_model.load(path)
    outs[str(i)] = loaded.signatures["serving_default"](images=tf.constant(x))[
        "sample_probabilities"].numpy()
np.savez(sys.argv[1], **outs)
"""


@pytest.fixture(scope="module")
def exports(trained_model, tmp_path_factory):
    """{name: version dir}: unseeded per-example, seeded per-batch."""
    base = tmp_path_factory.mktemp("serving")
    return {
        "per_example": export_saved_model(trained_model, str(base / "pe"), per_example_sampling=True),
        "seeded": export_saved_model(trained_model, str(base / "seeded"), seed=7),
    }


def _signature(path, key=SIGNATURE_KEY):
    return tf.saved_model.load(path).signatures[key]


def _run_fresh_process(paths, out_file):
    subprocess.run([sys.executable, "-c", _RELOAD_SCRIPT, str(out_file), *paths], check=True,
                   cwd=h.REPO_ROOT, timeout=300, capture_output=True)
    with np.load(out_file) as data:
        return [data[str(i)] for i in range(len(paths))]


@pytest.fixture(scope="module")
def fresh_loads(exports, tmp_path_factory):
    """Two fresh processes, each loading both exports: ``{name: (first, second)}``."""
    base = tmp_path_factory.mktemp("fresh")
    names = ["per_example", "seeded"]
    runs = [_run_fresh_process([exports[n] for n in names], base / f"{r}.npz") for r in "ab"]
    return {name: (runs[0][i], runs[1][i]) for i, name in enumerate(names)}


def test_versioned_layout(trained_model, tmp_path):
    base = str(tmp_path / "serving")
    assert next_version(base) == 1
    first = export_saved_model(trained_model, base, eval_samples=2)
    second = export_saved_model(trained_model, base, eval_samples=2)
    assert first == os.path.join(base, "1") and second == os.path.join(base, "2")
    assert os.path.isfile(os.path.join(first, "saved_model.pb"))
    assert os.path.isdir(os.path.join(first, "variables"))
    assert next_version(base) == 3
    with pytest.raises(FileExistsError, match="exists already"):
        export_saved_model(trained_model, base, version=1)
    assert sorted(os.listdir(base)) == ["1", "2"]  # no staging left over


def test_saved_model_cli_shows_the_serving_contract(exports):
    show = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show",
         "--dir", exports["per_example"], "--all"],
        check=True, capture_output=True, text=True, timeout=300,
    ).stdout
    blocks = show.split("signature_def[")
    default = next(b for b in blocks if b.startswith(f"'{SIGNATURE_KEY}'"))
    uint8 = next(b for b in blocks if b.startswith(f"'{UINT8_SIGNATURE_KEY}'"))
    for block, dtype in ((default, "DT_FLOAT"), (uint8, "DT_UINT8")):
        inputs, outputs = block.split("The given SavedModel SignatureDef contains the following output(s):")
        assert "inputs['images'] tensor_info:" in inputs
        assert f"dtype: {dtype}" in inputs and "shape: (-1, 28, 28, 1)" in inputs
        assert "Method name is: tensorflow/serving/predict" in outputs
        for name, out_dtype, shape in (("probabilities", "DT_FLOAT", "(-1, 10)"),
                                       ("classes", "DT_INT64", "(-1)"),
                                       ("sample_probabilities", "DT_FLOAT", f"(-1, {N}, 10)")):
            part = outputs.split(f"outputs['{name}'] tensor_info:")[1].split("outputs[")[0]
            assert f"dtype: {out_dtype}" in part and f"shape: {shape}" in part, part


def test_outputs_are_the_mean_of_sampled_models(trained_model, exports, test_images):
    x = test_images[0][:6]
    out = _signature(exports["per_example"])(images=tf.constant(x))
    samples = out["sample_probabilities"].numpy()
    assert samples.shape == (6, N, 10)
    np.testing.assert_allclose(out["probabilities"].numpy(), samples.mean(axis=1), atol=1e-6)
    np.testing.assert_array_equal(out["classes"].numpy(), samples.mean(axis=1).argmax(-1))
    np.testing.assert_allclose(samples.sum(-1), 1.0, atol=1e-5)
    # Each sample is exactly one of the 2^L sampled models of the trained model.
    h.assert_samples_are_sampled_models(samples, h.all_path_outputs(trained_model, x))


def test_fresh_paths_on_every_call_and_for_every_example(trained_model, exports, test_images):
    one = np.repeat(test_images[0][:1], 32, axis=0)  # one image, 32 times
    serve = _signature(exports["per_example"])
    first = serve(images=tf.constant(one))["sample_probabilities"].numpy()
    second = serve(images=tf.constant(one))["sample_probabilities"].numpy()
    assert not np.allclose(first, second)
    paths = h.assert_samples_are_sampled_models(first, h.all_path_outputs(trained_model, one))
    # Copies of the same image got different paths within one request.
    assert len({tuple(row) for row in paths}) > 1


def test_batch_wide_export_shares_each_path_across_the_batch(trained_model, exports, test_images):
    x = test_images[0][:4]
    samples = _signature(exports["seeded"])(images=tf.constant(x))["sample_probabilities"].numpy()
    paths = h.assert_samples_are_sampled_models(samples, h.all_path_outputs(trained_model, x))
    # Per-batch sampling: sample n uses one path for all 4 examples.
    outputs = h.all_path_outputs(trained_model, x)
    for n in range(N):
        np.testing.assert_allclose(samples[:, n], outputs[paths[0, n]], atol=1e-4)


def test_unseeded_export_differs_across_fresh_processes(fresh_loads):
    a, b = fresh_loads["per_example"]
    assert a.shape == (4, N, 10)
    assert not np.allclose(a, b), "two fresh loads replayed the same sampled paths"


def test_seeded_export_replays_across_fresh_processes(exports, fresh_loads):
    a, b = fresh_loads["seeded"]
    np.testing.assert_allclose(a, b, atol=1e-6)
    # Within one load the sequence advances: calls still differ.
    serve = _signature(exports["seeded"])
    images = tf.zeros((2, 28, 28, 1))
    calls = [serve(images=images)["sample_probabilities"].numpy() for _ in range(3)]
    assert not (np.allclose(calls[0], calls[1]) and np.allclose(calls[1], calls[2]))


def test_uint8_signature_scales_pixels_like_training(exports, data_dir):
    from rls_tf import data  # pylint: disable=import-outside-toplevel

    raw, _ = data.load_numpy("mnist", "test", data_dir=data_dir, max_examples=8)
    # Two fresh loads of the seeded export draw the same first paths.
    from_float = _signature(exports["seeded"])(images=tf.constant(data.to_model_range(raw)))
    from_uint8 = _signature(exports["seeded"], UINT8_SIGNATURE_KEY)(images=tf.constant(raw))
    np.testing.assert_allclose(from_uint8["sample_probabilities"].numpy(),
                               from_float["sample_probabilities"].numpy(), atol=1e-5)


def test_bad_requests_raise_clear_errors(exports):
    serve = _signature(exports["per_example"])
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError),
                       match=r"must have shape \[batch, 28, 28, 1\]"):
        serve(images=tf.zeros((2, 32, 32, 3)))
    with pytest.raises((TypeError, tf.errors.InvalidArgumentError), match="float.*int32"):
        serve(images=tf.zeros((2, 28, 28, 1), tf.int32))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"pixels in \[-1, 1\].*serving_uint8"):
        serve(images=tf.fill((2, 28, 28, 1), 255.0))


def test_saved_model_cli_run_gives_stochastic_outputs(exports, tmp_path):
    x = np.zeros((3, 28, 28, 1), np.float32)
    np.save(tmp_path / "x.npy", x)
    results = []
    for run in ("a", "b"):
        outdir = tmp_path / run
        subprocess.run(
            [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "run",
             "--dir", exports["per_example"], "--tag_set", "serve",
             "--signature_def", SIGNATURE_KEY, "--inputs", f"images={tmp_path / 'x.npy'}",
             "--outdir", str(outdir)],
            check=True, capture_output=True, text=True, timeout=300,
        )
        results.append(np.load(outdir / "sample_probabilities.npy"))
    assert results[0].shape == (3, N, 10)
    assert not np.allclose(results[0], results[1])
    # Different sampled models within one run, too.
    assert not np.allclose(results[0][:, :1], results[0])


def test_predict_request_matches_the_signature(exports, test_images):
    from tensorflow_serving.apis import predict_pb2  # pylint: disable=import-outside-toplevel

    x = test_images[0][:2]
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "rls"
    request.model_spec.signature_name = SIGNATURE_KEY
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(x))
    serve = _signature(exports["per_example"])
    spec_args, spec_kwargs = serve.structured_input_signature
    assert not spec_args and set(spec_kwargs) == set(request.inputs)
    for key, proto in request.inputs.items():
        assert tf.dtypes.as_dtype(proto.dtype) == spec_kwargs[key].dtype
        assert spec_kwargs[key].shape.is_compatible_with(
            [d.size for d in proto.tensor_shape.dim])
    # Answer it as the server would: decode the protos, run the signature.
    outputs = serve(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
    response = predict_pb2.PredictResponse()
    for key, value in outputs.items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
    assert tf.make_ndarray(response.outputs["sample_probabilities"]).shape == (2, N, 10)
    assert tf.make_ndarray(response.outputs["classes"]).dtype == np.int64


def test_single_copy_model_exports_the_plain_network(tmp_path):
    model = build_model("small_cnn", num_submodels=1, input_shape=(28, 28, 1), eval_samples=3)
    path = export_saved_model(model, str(tmp_path / "plain"))
    x = np.random.default_rng(0).uniform(-1, 1, (4, 28, 28, 1)).astype("float32")
    serve = _signature(path)
    a, b = (serve(images=tf.constant(x))["probabilities"].numpy() for _ in range(2))
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(a, np.asarray(model(x)), atol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(eval_samples=0), "eval_samples"),
    (dict(eval_samples=2.5), "eval_samples"),
    (dict(seed=-1), "seed"),
    (dict(seed="7"), "seed"),
    (dict(version=0), "version"),
    (dict(per_example_sampling="yes"), "per_example_sampling"),
])
def test_bad_arguments_raise(trained_model, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=rf"{match}.*Received: {match}="):
        export_saved_model(trained_model, str(tmp_path / "x"), **kwargs)


def test_non_rls_model_is_refused(tmp_path):
    import keras  # pylint: disable=import-outside-toplevel

    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="RLSModel.*Sequential"):
        export_saved_model(plain, str(tmp_path / "x"))


def test_export_is_readable_by_other_users(exports):
    # TF Serving often runs as another user than the one who exported.
    version_dir = exports["per_example"]
    assert os.stat(version_dir).st_mode & 0o005 == 0o005
    assert os.stat(os.path.join(version_dir, "saved_model.pb")).st_mode & 0o004
