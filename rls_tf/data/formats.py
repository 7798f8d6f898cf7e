"""Readers of the original (non-TFDS) dataset file formats, and `DataFileError`.

Machines without network access cannot let TFDS download anything, and some
offline copies cannot go through TFDS at all (Debian re-compresses the
Fashion-MNIST files, so TFDS's checksums reject them). These readers parse the
original files directly with numpy/scipy. Where the files of a dataset are
and which reader reads them is `rls_tf.data.offline`'s (the finders) and the
dataset's entry's (`rls_tf.data.registry.DatasetSpec.files`).

Every loader returns raw arrays `(x, y)`: `x` uint8 `[N, H, W, C]` and `y`
int64 `[N]`. Checking them against a dataset's shape and number of classes is
the caller's job (`rls_tf.data.datasets`), so that all sources, TFDS included,
go through the same checks.

A file that exists but cannot be read as its format (truncated by an
interrupted download or copy, damaged, or not the file its name says) raises
`DataFileError`: it names the file and says how to replace it, instead of the
raw `EOFError` / `BadZipFile` / `UnpicklingError` of the underlying reader.
"""

import gzip
import os
import pickle
import zipfile
import zlib
from typing import Tuple

import numpy as np

__all__ = ["Arrays", "DataFileError", "load_cifar10_batches", "load_idx", "load_npz",
           "load_svhn_mat", "read_idx"]

Arrays = Tuple[np.ndarray, np.ndarray]

_IDX_UBYTE = 0x08  # IDX type code for unsigned bytes; MNIST files use nothing else.
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"  # an .npz is a zip archive

_GENERIC_REMEDY = "Delete it and put a complete copy in its place (download it again)."
_NPZ_REMEDY = ("Delete it and write it again (numpy.savez with arrays x and y), or remove "
               "it to use the dataset's original files or TFDS instead.")


class DataFileError(ValueError):
    """A dataset file exists but cannot be read: truncated, damaged, or of another format.

    A `ValueError`, so every caller that reports bad data cleanly (`train.py`,
    `attack_eval.py`) reports this too. The message names the file, its size,
    what is wrong, and how to replace it.

    Attributes:
        path: the damaged file.
        problem: what is wrong with it (without the remedy).
        remedy: how to replace it.
    """

    def __init__(self, path, problem, remedy=None):
        self.path = path
        self.problem = problem
        self.remedy = remedy or _GENERIC_REMEDY
        super().__init__(f"{problem} {self.remedy}")

    def with_remedy(self, remedy):
        """The same error with another remedy (e.g. the dataset's download page)."""
        error = DataFileError(self.path, self.problem, remedy)
        error.__cause__ = self.__cause__
        return error


def _size(path):
    try:
        return f"{os.path.getsize(path)} bytes"
    except OSError:
        return "size unknown"


def _damaged(path, what, error=None, detail=None):
    """A `DataFileError` for `path`: `what` it is, the reader's `error` or a `detail`."""
    reason = detail if error is None else f"{type(error).__name__}: {error}"
    return DataFileError(
        path,
        f"Truncated or damaged {what} {path} ({reason}). "
        f"Received: {path} ({_size(path)}).",
    )


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
        DataFileError: (a ValueError) On a truncated or damaged gzip stream, a
            bad magic number, a wrong number of dimensions, or a payload whose
            size does not match the header.

    Example:
        (Not run as a doctest: it reads dataset files.)

        >>> labels = read_idx("t10k-labels-idx1-ubyte.gz", expected_ndim=1)  # doctest: +SKIP
    """
    try:
        with _open_maybe_gzip(path) as f:
            data = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise _damaged(path, "gzip-compressed IDX file", e) from e
    kind = "image" if expected_ndim == 3 else "label"
    if len(data) < 4:
        raise _damaged(path, f"IDX {kind} file", detail=f"only {len(data)} bytes of data")
    expected_magic = (_IDX_UBYTE << 8) | expected_ndim
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise DataFileError(
            path,
            f"Bad IDX magic number in {path}: Received: magic={magic!r}. "
            f"Expected {expected_magic} (unsigned bytes, {expected_ndim} "
            f"dimension(s)). Is this an MNIST-format {kind} file?",
        )
    header_size = 4 + 4 * expected_ndim
    if len(data) < header_size:
        raise _damaged(path, f"IDX {kind} file",
                       detail=f"header of {header_size} bytes, only {len(data)} present")
    dims = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big")
        for i in range(expected_ndim)
    )
    payload = np.frombuffer(data, dtype=np.uint8, offset=header_size)
    if payload.size != int(np.prod(dims)):
        raise _damaged(
            path, f"IDX {kind} file",
            detail=f"corrupt IDX file: header says dims={dims} ({int(np.prod(dims))} bytes) "
                   f"but it holds {payload.size} bytes",
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
        (Not run as a doctest: it reads dataset files.)

        >>> x, y = load_idx("t10k-images-idx3-ubyte.gz",  # doctest: +SKIP
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

    Raises:
        DataFileError: A batch is truncated, damaged or not such a dict.

    Example:
        (Not run as a doctest: it reads dataset files.)

        >>> x, y = load_cifar10_batches(["cifar-10-batches-py/test_batch"])  # doctest: +SKIP
    """
    xs, ys = [], []
    for path in paths:
        with open(path, "rb") as f:
            try:
                batch = pickle.load(f, encoding="bytes")
            except Exception as e:  # EOFError, UnpicklingError, ... of a damaged file
                raise _damaged(path, "CIFAR-10 batch", e) from e
        if not isinstance(batch, dict) or not {b"data", b"labels"} <= set(batch):
            raise DataFileError(
                path,
                f"CIFAR-10 batch {path} must be a pickled dict with keys "
                f"b'data' and b'labels'. Received: {type(batch).__name__}.",
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

    Raises:
        DataFileError: The file is truncated or damaged, or lacks `X` or `y`.

    Example:
        (Not run as a doctest: it reads dataset files.)

        >>> x, y = load_svhn_mat("test_32x32.mat")  # doctest: +SKIP
    """
    import scipy.io  # Only this format needs scipy; keep it off the import path.

    try:
        mat = scipy.io.loadmat(path, variable_names=["X", "y"])
    except Exception as e:  # MatReadError, OSError, IndexError, ... of a damaged file
        raise _damaged(path, "SVHN .mat file", e) from e
    if "X" not in mat or "y" not in mat:
        raise DataFileError(path, f"SVHN file {path} must hold variables 'X' and 'y'. "
                                  f"Received: {sorted(k for k in mat if not k.startswith('__'))}.")
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

    Raises:
        DataFileError: The file is truncated or damaged (not a complete zip
            archive, a bad CRC, ...) or lacks `x` or `y`.
        ValueError: The labels are not integers.

    Example:
        (Not run as a doctest: it reads dataset files.)

        >>> x, y = load_npz("mnist_test.npz")  # doctest: +SKIP
    """
    with open(path, "rb") as f:
        magic = f.read(len(_ZIP_MAGIC))
    if magic != _ZIP_MAGIC:
        # np.load would try it as a pickle and blame allow_pickle.
        raise _damaged(path, ".npz file", detail=f"not a zip archive: starts with {magic!r}") \
            .with_remedy(_NPZ_REMEDY)
    try:
        # allow_pickle=False: an npz must never run code on load.
        with np.load(path, allow_pickle=False) as f:
            names = set(f.files)
            missing = {"x", "y"} - names
            if not missing:
                x, y = f["x"], f["y"]
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError, ValueError) as e:
        raise _damaged(path, ".npz file", e).with_remedy(_NPZ_REMEDY) from e
    if missing:
        raise DataFileError(
            path,
            f"{path} must hold arrays 'x' and 'y'. Missing: "
            f"{sorted(missing)}; found: {sorted(names)}.",
            _NPZ_REMEDY,
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"{path}: labels 'y' must be integers. Received: dtype={y.dtype}."
        )
    return x, y.astype(np.int64)
