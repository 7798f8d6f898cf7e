"""Shared fixtures of the export tests: a model trained by train.py, exported once.

The model is a small_cnn RLS model (M=2, K=3) that `train.py` trains for one
epoch on real MNIST from ../shared/data when present (the accuracy test needs
it), else on tiny synthetic MNIST-shaped data. Exports are session-scoped:
each TFLite conversion takes tens of seconds on 2 cores.
"""

import os

import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver

from tests.synthetic_data import write_quadrant_mnist

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED_DATA = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "data"))
HAS_SHARED_MNIST = os.path.isfile(os.path.join(SHARED_DATA, "mnist_test.npz"))
EVAL_SAMPLES = 5
FLAGS = flags.FLAGS


def _train(model_dir, data_dir, num_submodels, max_train_examples):
    import train  # pylint: disable=import-outside-toplevel

    if not FLAGS.is_parsed():
        FLAGS(["train.py"])
    with flagsaver.flagsaver(
        dataset="mnist", backbone="small_cnn", data_dir=data_dir, model_dir=str(model_dir),
        num_submodels=num_submodels, epochs=1, batch_size=64, learning_rate=0.02,
        lr_decay_epochs=0, eval_samples=EVAL_SAMPLES, max_train_examples=max_train_examples,
        max_test_examples=200, verbose=0, seed=1,
    ):
        train.main(["train.py"])
    return str(model_dir)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    if HAS_SHARED_MNIST:
        return SHARED_DATA
    return write_quadrant_mnist(tmp_path_factory.mktemp("mnist"), n_train=512, n_test=128)


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory, data_dir):
    """A train.py run directory: small_cnn, M=2, K=3, one epoch of 10,000 images.

    Trained once per test session even under pytest-xdist: the workers share
    the parent of their base temporary directories, and the first one to
    take the lock trains while the others wait for its run (the pattern of
    pytest-xdist's documentation, with ``fcntl`` instead of ``filelock``).
    """
    import fcntl  # pylint: disable=import-outside-toplevel

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return _train(tmp_path_factory.mktemp("run") / "rls", data_dir, 2, 10000)
    shared = tmp_path_factory.getbasetemp().parent / "export_trained_rls"
    with open(str(shared) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (shared / "DONE").is_file():
                _train(shared, data_dir, 2, 10000)
                (shared / "DONE").write_text("ok")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return str(shared)


@pytest.fixture(scope="session")
def trained_model(trained_dir):
    from rls_tf.models import load_model_dir  # pylint: disable=import-outside-toplevel

    return load_model_dir(trained_dir)[0]


@pytest.fixture(scope="session")
def test_images(data_dir):
    """500 test images in the model range and their labels."""
    from rls_tf import data  # pylint: disable=import-outside-toplevel

    x, y = data.load_numpy("mnist", "test", data_dir=data_dir, max_examples=500)
    return data.to_model_range(x), np.asarray(y)


def all_path_outputs(model, x):
    """Probabilities of every one of the prod(M_l) sampled models: [P, B, C]."""
    import itertools  # pylint: disable=import-outside-toplevel

    counts = [layer.num_submodels for layer in model.rls_layers]
    paths = np.array(list(itertools.product(*[range(m) for m in counts])), np.int32)
    return np.asarray(model.outputs(x, paths, forward="loop"))


def assert_samples_are_sampled_models(samples, reference, atol=1e-4):
    """Every sample [B, N, C] equals the output of one path for its example.

    Args:
        samples: exported ``sample_probabilities`` ``[B, N, C]``.
        reference: `all_path_outputs` ``[P, B, C]``.

    Returns:
        int array ``[B, N]``: the index of the matching path of each sample.
    """
    matches = np.zeros(samples.shape[:2], np.int64)
    for b in range(samples.shape[0]):
        for n in range(samples.shape[1]):
            errors = np.abs(reference[:, b] - samples[b, n][None]).max(axis=-1)
            best = int(np.argmin(errors))
            assert errors[best] < atol, (
                f"sample {n} of example {b} matches no sampled model (error {errors[best]})"
            )
            matches[b, n] = best
    return matches
