"""Tests for rls_tf.data: file readers, TFDS path, tf.data pipeline."""

import dataclasses
import gzip
import os
import pickle
import socket
import time

import numpy as np
import pytest
import scipy.io
import tensorflow as tf
import tensorflow_datasets as tfds

from rls_tf.data import (
    DATASETS,
    DataFileError,
    DatasetSpec,
    DatasetUnavailableError,
    dataset_spec,
    load_numpy,
    make_dataset,
    to_model_range,
)
from rls_tf.data import datasets as datasets_lib
from tests.synthetic_data import truncate
from tests.synthetic_data import write_idx
from tests.synthetic_data import write_quadrant_mnist

_TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_REPO_ROOT = os.path.dirname(_TESTS_DIR)
SHARED_DATA = os.path.normpath(os.path.join(_REPO_ROOT, "..", "shared", "data"))
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def _rng(seed=0):
    return np.random.default_rng(seed)


def _images(n, shape, seed=0):
    return _rng(seed).integers(0, 256, size=(n,) + shape, dtype=np.uint8)


def _labels(n, seed=0, high=10):
    return _rng(seed + 1).integers(0, high, size=n).astype(np.uint8)


def _write_idx(path, array, compress):
    write_idx(path, array, compress)


def _write_idx_split(directory, split, x, y, compress):
    os.makedirs(directory, exist_ok=True)
    prefix = "train" if split == "train" else "t10k"
    suffix = ".gz" if compress else ""
    images = os.path.join(directory, f"{prefix}-images-idx3-ubyte{suffix}")
    labels = os.path.join(directory, f"{prefix}-labels-idx1-ubyte{suffix}")
    _write_idx(images, x[..., 0], compress)
    _write_idx(labels, y, compress)


def _assert_loaded(x, y, expected_x, expected_y):
    assert x.dtype == np.uint8
    assert y.dtype == np.int64
    np.testing.assert_array_equal(x, expected_x)
    np.testing.assert_array_equal(y, expected_y)


@pytest.fixture
def cifar_npz_dir(tmp_path):
    """A data_dir with 50 train / 20 test random CIFAR-shaped images."""
    for split, n in (("train", 50), ("test", 20)):
        np.savez(
            tmp_path / f"cifar10_{split}.npz",
            x=_images(n, (32, 32, 3), seed=n),
            y=_labels(n, seed=n),
        )
    return tmp_path


# --- Specs and argument validation -------------------------------------------


def test_dataset_spec():
    assert DATASETS == ("mnist", "fashion_mnist", "cifar10", "svhn")
    assert dataset_spec("svhn") == DatasetSpec(
        "svhn", "svhn_cropped", (32, 32, 3), 10, 73257, 26032
    )
    assert dataset_spec("mnist").input_shape == (28, 28, 1)
    assert dataset_spec("fashion_mnist").tfds_name == "fashion_mnist"
    assert dataset_spec("cifar10").num_train == 50000
    with pytest.raises(dataclasses.FrozenInstanceError):
        dataset_spec("mnist").num_classes = 3


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: dataset_spec("foo"), "Unknown dataset: Received: dataset='foo'"),
        (lambda: load_numpy("cifar100", "train"), "dataset='cifar100'"),
        (lambda: load_numpy("mnist", "validation"), "split='validation'"),
        (lambda: make_dataset("mnist", "train", 0), "Received: batch_size=0"),
        (lambda: make_dataset("mnist", "train", -2), "batch_size=-2"),
        (lambda: make_dataset("mnist", "train", 1.5), "batch_size=1.5"),
        (lambda: make_dataset("mnist", "train", True), "batch_size=True"),
        (lambda: make_dataset("mnist", "train", 8, seed="a"), "seed='a'"),
        (lambda: load_numpy("mnist", "test", max_examples=0), "max_examples=0"),
        (lambda: load_numpy("mnist", "test", max_examples=2.0), "max_examples=2.0"),
    ],
)
def test_invalid_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_missing_data_dir(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_numpy("mnist", "test", data_dir=missing)


def test_to_model_range():
    pixels = np.array([0, 1, 127, 128, 255], np.uint8)
    scaled = to_model_range(pixels)
    assert isinstance(scaled, np.ndarray) and scaled.dtype == np.float32
    np.testing.assert_allclose(scaled, pixels / 127.5 - 1.0, atol=1e-6)
    assert scaled[0] == -1.0 and scaled[-1] == 1.0
    tensor = to_model_range(tf.constant(pixels))
    assert tf.is_tensor(tensor) and tensor.dtype == tf.float32
    np.testing.assert_allclose(tensor.numpy(), scaled)


# --- Original file formats ---------------------------------------------------


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize(
    "name, subdir", [("mnist", ""), ("fashion_mnist", "fashion-mnist")]
)
def test_idx(tmp_path, compress, name, subdir):
    for split, n in (("train", 7), ("test", 4)):
        x, y = _images(n, (28, 28, 1), seed=n), _labels(n, seed=n)
        _write_idx_split(tmp_path / subdir, split, x, y, compress)
    for split, n in (("train", 7), ("test", 4)):
        x, y = load_numpy(name, split, data_dir=tmp_path)
        _assert_loaded(x, y, _images(n, (28, 28, 1), seed=n), _labels(n, seed=n))
    x, y = load_numpy(name, "train", data_dir=tmp_path, max_examples=3)
    _assert_loaded(x, y, _images(7, (28, 28, 1), seed=7)[:3], _labels(7, seed=7)[:3])


def test_idx_bad_magic(tmp_path):
    x, y = _images(3, (28, 28, 1)), _labels(3)
    _write_idx_split(tmp_path, "test", x, y, compress=True)
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"\x00\x00\x08\x03" + (3).to_bytes(4, "big") + bytes(3))
    with pytest.raises(ValueError, match=r"Bad IDX magic number.*t10k-labels"):
        load_numpy("mnist", "test", data_dir=tmp_path)


def test_idx_missing_labels(tmp_path):
    images = _images(2, (28, 28))
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", images, compress=False)
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_numpy("mnist", "test", data_dir=tmp_path)


def test_cifar10_python_batches(tmp_path):
    directory = tmp_path / "cifar-10-batches-py"
    directory.mkdir()
    written = {"train": [], "test": []}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, batch_name in enumerate(names):
        data = _rng(i).integers(0, 256, size=(3, 3072), dtype=np.uint8)
        labels = [int(v) for v in _labels(3, seed=i)]
        with open(directory / batch_name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"x"}, f)
        split = "test" if batch_name == "test_batch" else "train"
        written[split].append((data, labels))

    for split in ("train", "test"):
        data = np.concatenate([d for d, _ in written[split]])
        labels = np.concatenate([l for _, l in written[split]])
        x, y = load_numpy("cifar10", split, data_dir=tmp_path)
        assert x.shape == (len(data), 32, 32, 3)
        # Rows of 1024 red, then green, then blue values, each row-major.
        for i, row, col, channel in [(0, 0, 0, 0), (1, 5, 7, 2), (2, 31, 30, 1)]:
            assert x[i, row, col, channel] == data[i, channel * 1024 + row * 32 + col]
        expected = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        _assert_loaded(x, y, expected, labels)


def test_cifar10_missing_batch(tmp_path):
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}, f)
    load_numpy("cifar10", "test", data_dir=tmp_path)  # test alone is fine
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        load_numpy("cifar10", "train", data_dir=tmp_path)


def test_svhn_mat(tmp_path):
    x = _images(6, (32, 32, 3))
    y = np.array([[10], [1], [9], [10], [5], [3]], np.uint8)
    mat = {"X": x.transpose(1, 2, 3, 0), "y": y}  # SVHN stores HWCN
    scipy.io.savemat(tmp_path / "test_32x32.mat", mat)
    got_x, got_y = load_numpy("svhn", "test", data_dir=tmp_path)
    _assert_loaded(got_x, got_y, x, [0, 1, 9, 0, 5, 3])
    with pytest.raises(FileNotFoundError, match="train_32x32.mat"):
        load_numpy("svhn", "train", data_dir=tmp_path)


def test_npz_names(tmp_path):
    x, y = _images(5, (28, 28, 1)), _labels(5)
    np.savez(tmp_path / "mnist_test.npz", x=x, y=y)
    np.savez(tmp_path / "mnist_train_small.npz", x=x[:3], y=y[:3])
    _assert_loaded(*load_numpy("mnist", "test", data_dir=tmp_path), x, y)
    _assert_loaded(*load_numpy("mnist", "train", data_dir=tmp_path), x[:3], y[:3])
    # `mnist_*` files are not Fashion-MNIST's: it falls through to TFDS.
    with pytest.raises(DatasetUnavailableError):
        load_numpy("fashion_mnist", "test", data_dir=tmp_path, download=False)
    # `{split}.npz`, here in the dataset's subdirectory.
    svhn_dir = tmp_path / "svhn"
    svhn_dir.mkdir()
    sx, sy = _images(4, (32, 32, 3)), _labels(4)
    np.savez_compressed(svhn_dir / "test.npz", x=sx, y=sy)
    _assert_loaded(*load_numpy("svhn", "test", data_dir=tmp_path), sx, sy)


_MNIST_X = np.zeros((4, 28, 28, 1), np.uint8)
_CIFAR_X = np.zeros((4, 32, 32, 3), np.uint8)
_Y4 = np.zeros(4, np.uint8)


@pytest.mark.parametrize(
    "x, y, match",
    [
        (_MNIST_X, _Y4, r"must be uint8 with shape \[N, 32, 32, 3\]"),
        (_CIFAR_X[..., 0], _Y4, r"shape=\(4, 32, 32\)"),
        (_CIFAR_X.astype(np.float32), _Y4, "dtype=float32"),
        (_CIFAR_X, _Y4[:3], r"labels must have shape \[4\]"),
        (_CIFAR_X, np.array([0, 1, 10, 2]), r"labels must be in \[0, 10\)"),
        (_CIFAR_X, _Y4.astype(np.float32), "must be integers"),
    ],
)
def test_npz_validation(tmp_path, x, y, match):
    np.savez(tmp_path / "cifar10_test.npz", x=x, y=y)
    with pytest.raises(ValueError, match=match) as info:
        load_numpy("cifar10", "test", data_dir=tmp_path)
    assert "cifar10_test.npz" in str(info.value)


# --- TFDS ----------------------------------------------------------------------


@pytest.mark.parametrize("name, shape", [("svhn", (32, 32, 3)), ("mnist", (28, 28, 1))])
def test_tfds_mock(name, shape):
    with tfds.testing.mock_data(num_examples=6):
        x, y = load_numpy(name, "train")
        assert x.shape == (6,) + shape and x.dtype == np.uint8
        assert y.shape == (6,) and y.dtype == np.int64
        assert y.min() >= 0 and y.max() < 10
        x, _ = load_numpy(name, "test", max_examples=4)
        assert x.shape == (4,) + shape
        images, labels = next(iter(make_dataset(name, "test", batch_size=6)))
        assert images.shape == (6,) + shape and images.dtype == tf.float32
        assert labels.dtype == tf.int64


def test_download_failure_is_wrapped(tmp_path, monkeypatch):
    def fake_load(name, download, **kwargs):
        if not download:
            raise AssertionError("could not find data")  # TFDS: not prepared
        raise ConnectionError("connection reset")

    monkeypatch.setattr(datasets_lib, "_check_download_reachable", lambda *a: None)
    monkeypatch.setattr(tfds, "load", fake_load)
    with pytest.raises(DatasetUnavailableError, match="ConnectionError: connection"):
        load_numpy("cifar10", "test", data_dir=tmp_path)


def _network_reachable():
    try:
        socket.create_connection(("ufldl.stanford.edu", 80), timeout=3).close()
        return True
    except OSError:
        return False


def test_tfds_offline_fails_fast(tmp_path):
    if _network_reachable():
        pytest.skip("network available: TFDS would really download SVHN")
    start = time.monotonic()
    with pytest.raises(DatasetUnavailableError) as info:
        load_numpy("svhn", "test", data_dir=tmp_path)
    assert time.monotonic() - start < 30
    message = str(info.value)
    for expected in ("svhn", "train_32x32.mat", "test_32x32.mat", "--data_dir"):
        assert expected in message
    assert isinstance(info.value, RuntimeError)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("mnist", ["t10k-images-idx3-ubyte", "mnist_test.npz"]),
        ("fashion_mnist", ["apt-get install dataset-fashion-mnist"]),
        ("cifar10", ["data_batch_1", "test_batch", "cifar10_train.npz"]),
    ],
)
def test_not_prepared_without_download(tmp_path, name, expected):
    with pytest.raises(DatasetUnavailableError) as info:
        load_numpy(name, "test", data_dir=tmp_path, download=False)
    for text in expected + ["--data_dir", "download=False"]:
        assert text in str(info.value)


# --- tf.data pipeline ------------------------------------------------------------


def _labels_order(ds):
    return np.concatenate([labels.numpy() for _, labels in ds])


def test_make_dataset_batches_and_range(cifar_npz_dir):
    ds = make_dataset("cifar10", "train", 16, data_dir=cifar_npz_dir, seed=0)
    batches = list(ds)
    assert [b[0].shape[0] for b in batches] == [16, 16, 16, 2]
    for images, labels in batches:
        assert images.dtype == tf.float32 and labels.dtype == tf.int64
        assert images.shape[1:] == (32, 32, 3)
        assert tf.reduce_min(images) >= -1.0 and tf.reduce_max(images) <= 1.0
    ds = make_dataset(
        "cifar10", "train", 16, data_dir=cifar_npz_dir, drop_remainder=True
    )
    assert ds.element_spec[0].shape == (16, 32, 32, 3)
    assert len(list(ds)) == 3


def test_make_dataset_eval_keeps_order(cifar_npz_dir):
    x, y = load_numpy("cifar10", "test", data_dir=cifar_npz_dir)
    ds = make_dataset("cifar10", "test", 20, data_dir=cifar_npz_dir)
    images, labels = next(iter(ds))
    np.testing.assert_array_equal(labels.numpy(), y)
    np.testing.assert_allclose(images.numpy(), to_model_range(x))


def test_make_dataset_seeded_shuffle(cifar_npz_dir):
    def order(seed, training=True):
        return _labels_order(make_dataset(
            "cifar10", "train", 8, data_dir=cifar_npz_dir, seed=seed, training=training
        ))

    x, y = load_numpy("cifar10", "train", data_dir=cifar_npz_dir)
    first = order(1)
    np.testing.assert_array_equal(first, order(1))
    assert not np.array_equal(first, order(2))
    assert not np.array_equal(first, y)
    np.testing.assert_array_equal(np.sort(first), np.sort(y))
    np.testing.assert_array_equal(order(1, training=False), y)

    ds = make_dataset("cifar10", "train", 50, data_dir=cifar_npz_dir, seed=1)
    epoch_1, epoch_2 = _labels_order(ds), _labels_order(ds)
    assert not np.array_equal(epoch_1, epoch_2)  # reshuffled each epoch


def test_make_dataset_augmentation(cifar_npz_dir):
    def images(seed, augment, training=None):
        ds = make_dataset(
            "cifar10", "train", 50, data_dir=cifar_npz_dir, seed=seed,
            augment=augment, training=training,
        )
        batch, _ = next(iter(ds))
        return batch.numpy()

    plain, augmented = images(3, False), images(3, True)
    assert augmented.shape == plain.shape == (50, 32, 32, 3)
    assert augmented.min() >= -1.0 and augmented.max() <= 1.0
    changed = [not np.array_equal(a, p) for a, p in zip(augmented, plain)]
    assert sum(changed) > 25
    np.testing.assert_array_equal(augmented, images(3, True))
    assert not np.array_equal(augmented, images(4, True))
    # Never applied outside training.
    eval_images = images(3, True, training=False)
    x, _ = load_numpy("cifar10", "train", data_dir=cifar_npz_dir)
    np.testing.assert_allclose(eval_images, to_model_range(x))


@pytest.mark.parametrize("pad, flip", [(4, True), (2, False)])
def test_augment_is_translation_and_flip(pad, flip):
    batch = tf.constant(_images(16, (8, 8, 3)) // 2 + 1)  # no zeros: padding is visible
    seed = tf.constant([5, 7], tf.int64)
    out = datasets_lib._augment_batch(batch, seed, pad, flip).numpy()
    padded = np.pad(batch.numpy(), [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    for original, result in zip(padded, out):
        candidates = [
            view[dy : dy + 8, dx : dx + 8]
            for view in ([original, original[:, ::-1]] if flip else [original])
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
        ]
        assert any(np.array_equal(result, c) for c in candidates)


def test_make_dataset_max_examples(cifar_npz_dir):
    ds = make_dataset(
        "cifar10", "train", 4, data_dir=cifar_npz_dir, max_examples=10, seed=0
    )
    labels = _labels_order(ds)
    assert len(labels) == 10
    _, y = load_numpy("cifar10", "train", data_dir=cifar_npz_dir)
    np.testing.assert_array_equal(np.sort(labels), np.sort(y[:10]))


@pytest.mark.parametrize("name", ["mnist", "svhn"])
def test_make_dataset_augment_other_datasets(tmp_path, name):
    shape = dataset_spec(name).input_shape
    np.savez(tmp_path / f"{name}_train.npz", x=_images(12, shape), y=_labels(12))
    ds = make_dataset(name, "train", 12, data_dir=tmp_path, augment=True, seed=0)
    images, _ = next(iter(ds))
    assert images.shape == (12,) + shape


# --- Real data (skipped when absent) ----------------------------------------------


@pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason="no ../shared/data")
def test_shared_mnist_test():
    x, y = load_numpy("mnist", "test", data_dir=SHARED_DATA)
    assert x.shape == (10000, 28, 28, 1)
    np.testing.assert_array_equal(y[:10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    assert np.sum(y == 1) == 1135


@pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason="no ../shared/data")
def test_shared_cifar10_test():
    x, y = load_numpy("cifar10", "test", data_dir=SHARED_DATA)
    assert x.shape == (1000, 32, 32, 3)
    np.testing.assert_array_equal(y[:10], [3, 8, 8, 0, 6, 6, 1, 6, 3, 1])


@pytest.mark.skipif(
    not os.path.isdir(DEBIAN_FASHION_MNIST),
    reason="dataset-fashion-mnist not installed",
)
def test_debian_fashion_mnist_default_location():
    x_train, y_train = load_numpy("fashion_mnist", "train")
    x_test, y_test = load_numpy("fashion_mnist", "test")
    assert x_train.shape == (60000, 28, 28, 1) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28, 1) and y_test.shape == (10000,)
    np.testing.assert_array_equal(np.bincount(y_test), [1000] * 10)


# --- Damaged files -------------------------------------------------------------


def _assert_names_file_and_remedy(info, path, remedy):
    message = str(info.value)
    assert str(path) in message and "Received:" in message
    assert "Delete it" in message and remedy in message
    assert info.value.path == str(path)
    assert "\n" not in message  # one line for the command lines


def test_truncated_gzip_idx_names_the_file(tmp_path):
    write_quadrant_mnist(tmp_path, n_train=32, n_test=8, file_format="idx")
    damaged = tmp_path / "train-images-idx3-ubyte.gz"
    truncate(damaged)
    load_numpy("mnist", "test", data_dir=tmp_path)  # the other split still loads
    with pytest.raises(DataFileError, match="Truncated or damaged gzip-compressed IDX") as info:
        load_numpy("mnist", "train", data_dir=tmp_path)
    assert isinstance(info.value, ValueError)
    assert "EOFError" in str(info.value)
    _assert_names_file_and_remedy(info, damaged, "download it again from https://")
    # Fashion-MNIST's remedy names the Debian package.
    fashion = tmp_path / "fashion"
    fashion.mkdir()
    for name in os.listdir(tmp_path):
        if name.endswith(".gz"):
            os.link(tmp_path / name, fashion / name)
    with pytest.raises(DataFileError) as info:
        load_numpy("fashion_mnist", "train", data_dir=fashion)
    _assert_names_file_and_remedy(info, fashion / "train-images-idx3-ubyte.gz",
                                  "dataset-fashion-mnist")


def test_truncated_raw_idx_names_the_file(tmp_path):
    x, y = _images(5, (28, 28, 1)), _labels(5)
    _write_idx_split(tmp_path, "test", x, y, compress=False)
    for damaged, keep in (("t10k-images-idx3-ubyte", 0.5), ("t10k-labels-idx1-ubyte", 0.0)):
        _write_idx_split(tmp_path, "test", x, y, compress=False)
        truncate(tmp_path / damaged, keep)
        with pytest.raises(DataFileError) as info:
            load_numpy("mnist", "test", data_dir=tmp_path)
        _assert_names_file_and_remedy(info, tmp_path / damaged, "download it again")


@pytest.mark.parametrize("keep", [0.0, 0.001, 0.5, 0.99])
def test_truncated_npz_names_the_file(tmp_path, keep):
    write_quadrant_mnist(tmp_path, n_train=32, n_test=8)
    damaged = tmp_path / "mnist_train.npz"
    truncate(damaged, keep)
    with pytest.raises(DataFileError, match=r"Truncated or damaged \.npz file") as info:
        load_numpy("mnist", "train", data_dir=tmp_path)
    _assert_names_file_and_remedy(info, damaged, "numpy.savez")


def test_npz_with_a_bad_crc_names_the_file(tmp_path):
    path = tmp_path / "cifar10_test.npz"
    np.savez(path, x=_images(4, (32, 32, 3)), y=_labels(4))
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))
    with pytest.raises(DataFileError, match="CRC") as info:
        load_numpy("cifar10", "test", data_dir=tmp_path)
    _assert_names_file_and_remedy(info, path, "numpy.savez")


def test_truncated_cifar10_batch_names_the_file(tmp_path):
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": _rng().integers(0, 256, (4, 3072), dtype=np.uint8),
                     b"labels": [0, 1, 2, 3]}, f)
    truncate(tmp_path / "test_batch")
    with pytest.raises(DataFileError, match="Truncated or damaged CIFAR-10 batch") as info:
        load_numpy("cifar10", "test", data_dir=tmp_path)
    _assert_names_file_and_remedy(info, tmp_path / "test_batch", "cifar-10-python.tar.gz")


@pytest.mark.parametrize("keep", [0.0, 0.02, 0.5])
def test_truncated_svhn_mat_names_the_file(tmp_path, keep):
    path = tmp_path / "test_32x32.mat"
    scipy.io.savemat(path, {"X": _images(6, (32, 32, 3)).transpose(1, 2, 3, 0),
                            "y": np.ones((6, 1), np.uint8)})
    truncate(path, keep)
    with pytest.raises(DataFileError) as info:
        load_numpy("svhn", "test", data_dir=tmp_path)
    _assert_names_file_and_remedy(info, path, "ufldl.stanford.edu")


def test_seed_is_a_valid_op_seed():
    # One rule for seeds across the package (rls_tf.validation.check_seed).
    for bad in (-1, 2**31, 1.0, True):
        with pytest.raises(ValueError, match=r"`seed` must be None or an int in \[0, 2\*\*31\)"):
            make_dataset("mnist", "train", 8, seed=bad)
