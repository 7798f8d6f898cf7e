"""Readers for datasets stored in their original (non-TFDS) file formats.

Machines without network access cannot let TFDS download anything, and some
offline copies cannot go through TFDS at all (Debian re-compresses the
Fashion-MNIST files, so TFDS's checksums reject them). These readers parse the
original files directly with numpy/scipy.

Every loader returns raw arrays `(x, y)`: `x` uint8 `[N, H, W, C]` and `y`
int64 `[N]`. Checking them against a dataset's shape and number of classes is
the caller's job (`rls_tf.data.datasets`), so that all sources, TFDS included,
go through the same checks.
"""

import dataclasses
import gzip
import os
import pickle
from typing import Callable, Optional, Tuple

import numpy as np

Arrays = Tuple[np.ndarray, np.ndarray]

# Standard names of the MNIST-family IDX files (images, labels) per split.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR10_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}

# Original-format file families, by dataset name.
_FORMATS = {
    "mnist": "idx",
    "fashion_mnist": "idx",
    "cifar10": "cifar10",
    "svhn": "svhn",
}

_IDX_UBYTE = 0x08  # IDX type code for unsigned bytes; MNIST files use nothing else.
_GZIP_MAGIC = b"\x1f\x8b"


@dataclasses.dataclass(frozen=True)
class OfflineSource:
    """Files found on disk for one dataset split, and how to read them.

    Attributes:
        description: Human-readable summary (format and paths), for messages.
        load: Callable returning `(x, y)` raw arrays.
    """

    description: str
    load: Callable[[], Arrays]


def _open_maybe_gzip(path):
    # Sniff the gzip magic rather than trust the suffix: people gunzip files
    # and keep the name, or name compressed files without `.gz`.
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == _GZIP_MAGIC else open(path, "rb")


def read_idx(path, expected_ndim):
    """Reads an IDX file (the MNIST format), gzip-compressed or not.

    Args:
        path: Path of the file.
        expected_ndim: 3 for an image file, 1 for a label file.

    Returns:
        A uint8 numpy array with the dimensions stored in the header.

    Raises:
        ValueError: On a bad magic number, a wrong number of dimensions, or a
            payload whose size does not match the header.

    Example:
        >>> labels = read_idx("t10k-labels-idx1-ubyte.gz", expected_ndim=1)
    """
    with _open_maybe_gzip(path) as f:
        data = f.read()
    expected_magic = (_IDX_UBYTE << 8) | expected_ndim
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if magic != expected_magic:
        raise ValueError(
            f"Bad IDX magic number in {path}: Received: magic={magic!r}. "
            f"Expected {expected_magic} (unsigned bytes, {expected_ndim} "
            "dimension(s)). Is this an MNIST-format "
            f"{'image' if expected_ndim == 3 else 'label'} file?"
        )
    header_size = 4 + 4 * expected_ndim
    if len(data) < header_size:
        raise ValueError(f"Truncated IDX header in {path}.")
    dims = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big")
        for i in range(expected_ndim)
    )
    payload = np.frombuffer(data, dtype=np.uint8, offset=header_size)
    if payload.size != int(np.prod(dims)):
        raise ValueError(
            f"Corrupt IDX file {path}: header says dims={dims} "
            f"({int(np.prod(dims))} bytes) but it holds {payload.size} bytes."
        )
    return payload.reshape(dims)


def load_idx(images_path, labels_path):
    """Reads a pair of MNIST-format IDX files.

    Args:
        images_path: `*-images-idx3-ubyte[.gz]` file.
        labels_path: `*-labels-idx1-ubyte[.gz]` file.

    Returns:
        `(x, y)`: uint8 `[N, rows, cols, 1]` and int64 `[N]`.

    Example:
        >>> x, y = load_idx("t10k-images-idx3-ubyte.gz",
        ...                 "t10k-labels-idx1-ubyte.gz")
    """
    x = read_idx(images_path, expected_ndim=3)[..., np.newaxis]
    y = read_idx(labels_path, expected_ndim=1).astype(np.int64)
    if len(x) != len(y):
        raise ValueError(
            f"IDX files disagree: {images_path} holds {len(x)} images but "
            f"{labels_path} holds {len(y)} labels."
        )
    return x, y


def load_cifar10_batches(paths):
    """Reads CIFAR-10 "python version" batch files and concatenates them.

    Only open trusted files: the format is a pickle.

    Args:
        paths: Batch files (`data_batch_1`, ..., `test_batch`), each a pickled
            dict with bytes keys `b'data'` (uint8 `[N, 3072]`, channel-major
            rows of 1024 red, 1024 green, 1024 blue) and `b'labels'`.

    Returns:
        `(x, y)`: uint8 `[N, 32, 32, 3]` (NHWC) and int64 `[N]`.

    Example:
        >>> x, y = load_cifar10_batches(["cifar-10-batches-py/test_batch"])
    """
    xs, ys = [], []
    for path in paths:
        with open(path, "rb") as f:
            try:
                batch = pickle.load(f, encoding="bytes")
            except Exception as e:
                raise ValueError(
                    f"Cannot read CIFAR-10 batch {path}: {type(e).__name__}: {e}"
                ) from e
        if not isinstance(batch, dict) or not {b"data", b"labels"} <= set(batch):
            raise ValueError(
                f"CIFAR-10 batch {path} must be a pickled dict with keys "
                "b'data' and b'labels'."
            )
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[b"labels"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise ValueError(
                f"CIFAR-10 batch {path}: b'data' must be uint8 [N, 3072]. "
                f"Received: dtype={data.dtype}, shape={data.shape}."
            )
        if labels.shape != (len(data),):
            raise ValueError(
                f"CIFAR-10 batch {path}: b'labels' must have {len(data)} "
                f"entries. Received: shape={labels.shape}."
            )
        xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(labels.astype(np.int64))
    return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)


def load_svhn_mat(path):
    """Reads an SVHN "cropped digits" MATLAB file (`train_32x32.mat`, ...).

    Args:
        path: The `.mat` file, with `X` uint8 `[32, 32, 3, N]` and `y` `[N, 1]`
            where label 10 stands for digit 0.

    Returns:
        `(x, y)`: uint8 `[N, 32, 32, 3]` and int64 `[N]` with digit 0 as 0.

    Example:
        >>> x, y = load_svhn_mat("test_32x32.mat")
    """
    import scipy.io  # Only this format needs scipy; keep it off the import path.

    mat = scipy.io.loadmat(path, variable_names=["X", "y"])
    if "X" not in mat or "y" not in mat:
        raise ValueError(f"SVHN file {path} must hold variables 'X' and 'y'.")
    images, labels = mat["X"], np.asarray(mat["y"]).reshape(-1)
    if images.ndim != 4 or images.shape[-1] != len(labels):
        raise ValueError(
            f"SVHN file {path}: 'X' must be [H, W, C, N] with N = len(y) = "
            f"{len(labels)}. Received: shape={images.shape}."
        )
    if labels.size and (labels.min() < 0 or labels.max() > 10):
        raise ValueError(
            f"SVHN file {path}: labels must be in 1..10 (10 = digit 0). "
            f"Received: min={labels.min()}, max={labels.max()}."
        )
    x = np.ascontiguousarray(np.transpose(images, (3, 0, 1, 2)))
    y = labels.astype(np.int64)
    y[y == 10] = 0
    return x, y


def load_npz(path):
    """Reads a `.npz` file holding arrays `x` (images) and `y` (labels).

    Args:
        path: The `.npz` file.

    Returns:
        `(x, y)` exactly as stored (`y` as int64).

    Example:
        >>> x, y = load_npz("mnist_test.npz")
    """
    # allow_pickle=False: an npz must never run code on load.
    with np.load(path, allow_pickle=False) as f:
        missing = {"x", "y"} - set(f.files)
        if missing:
            raise ValueError(
                f"{path} must hold arrays 'x' and 'y'. Missing: "
                f"{sorted(missing)}; found: {sorted(f.files)}."
            )
        x, y = f["x"], f["y"]
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"{path}: labels 'y' must be integers. Received: dtype={y.dtype}."
        )
    return x, y.astype(np.int64)


def _find_npz(name, split, directory) -> Optional[str]:
    exact = os.path.join(directory, f"{name}_{split}.npz")
    if os.path.isfile(exact):
        return exact
    prefix = f"{name}_{split}_"
    variants = sorted(
        f for f in os.listdir(directory) if f.startswith(prefix) and f.endswith(".npz")
    )
    if len(variants) > 1:
        raise ValueError(
            f"Several files match {prefix}*.npz in {directory}: {variants}. "
            "Keep one, or point data_dir at a directory that holds one."
        )
    if variants:
        return os.path.join(directory, variants[0])
    generic = os.path.join(directory, f"{split}.npz")
    return generic if os.path.isfile(generic) else None


def _existing(directory, filename, compressed_too=False):
    for candidate in (filename, filename + ".gz") if compressed_too else (filename,):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def _missing_error(what, directory, missing):
    return FileNotFoundError(
        f"Incomplete {what} files in {directory}: missing {missing}."
    )


def _find_idx(split, directory):
    images_name, labels_name = IDX_FILES[split]
    images = _existing(directory, images_name, compressed_too=True)
    labels = _existing(directory, labels_name, compressed_too=True)
    if images is None and labels is None:
        return None
    if images is None or labels is None:
        missing = images_name if images is None else labels_name
        raise _missing_error("IDX", directory, [missing + "[.gz]"])
    return OfflineSource(
        description=f"IDX files {images} and {labels}",
        load=lambda: load_idx(images, labels),
    )


def _find_cifar10(split, directory):
    names = CIFAR10_FILES[split]
    every_name = CIFAR10_FILES["train"] + CIFAR10_FILES["test"]
    if not any(_existing(directory, n) for n in every_name):
        return None
    missing = [n for n in names if _existing(directory, n) is None]
    if missing:
        raise _missing_error("CIFAR-10 python batch", directory, missing)
    paths = [os.path.join(directory, n) for n in names]
    return OfflineSource(
        description=f"CIFAR-10 python batches {paths}",
        load=lambda: load_cifar10_batches(paths),
    )


def _find_svhn(split, directory):
    if not any(_existing(directory, n) for n in SVHN_FILES.values()):
        return None
    path = _existing(directory, SVHN_FILES[split])
    if path is None:
        raise _missing_error("SVHN", directory, [SVHN_FILES[split]])
    return OfflineSource(
        description=f"SVHN file {path}", load=lambda: load_svhn_mat(path)
    )


_FINDERS = {"idx": _find_idx, "cifar10": _find_cifar10, "svhn": _find_svhn}


def find_source(name, split, directory) -> Optional[OfflineSource]:
    """Finds the files of a dataset split in one directory, if any.

    Looks, in this order, for `{name}_{split}.npz`, `{name}_{split}_*.npz`,
    `{split}.npz`, then the dataset's original files (see `IDX_FILES`,
    `CIFAR10_FILES`, `SVHN_FILES`).

    Args:
        name: Dataset name (`"mnist"`, `"fashion_mnist"`, `"cifar10"`, `"svhn"`).
        split: `"train"` or `"test"`.
        directory: An existing directory.

    Returns:
        An `OfflineSource`, or None when the directory holds no such files.

    Raises:
        FileNotFoundError: When only part of the original files is present.
        ValueError: When several npz files match.

    Example:
        >>> source = find_source("mnist", "test", "/data")
        >>> x, y = source.load() if source else (None, None)
    """
    npz = _find_npz(name, split, directory)
    if npz is not None:
        return OfflineSource(description=f"npz file {npz}", load=lambda: load_npz(npz))
    return _FINDERS[_FORMATS[name]](split, directory)
