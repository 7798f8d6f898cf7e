"""Finding a dataset split's files on disk: npz files and the original file formats.

A dataset's entry (`rls_tf.data.registry.DatasetSpec`) points to its
original files as an `OriginalFiles`: their `FileFormat` (`IDX`,
`CIFAR10_PYTHON`, `SVHN_MAT`: how to find a split's files in a directory
and which reader of `rls_tf.data.formats` reads them), their names per
split and where to get a damaged one again. `{name}_{split}.npz` files
work for every dataset, with or without original files.

The readers and `DataFileError` live in `rls_tf.data.formats` and stay
importable from here.
"""

import dataclasses
import os
from typing import Callable, Mapping, Optional, Tuple

# The readers' former home was this module: keep them importable from here.
from rls_tf.data.formats import Arrays
from rls_tf.data.formats import DataFileError
from rls_tf.data.formats import load_cifar10_batches
from rls_tf.data.formats import load_idx
from rls_tf.data.formats import load_npz
from rls_tf.data.formats import load_svhn_mat
from rls_tf.data.formats import read_idx

__all__ = ["CIFAR10_FILES", "CIFAR10_PYTHON", "DataFileError", "FileFormat", "IDX", "IDX_FILES",
           "OfflineSource", "OriginalFiles", "SVHN_FILES", "SVHN_MAT", "find_source",
           "load_cifar10_batches", "load_idx", "load_npz", "load_svhn_mat", "read_idx"]

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


@dataclasses.dataclass(frozen=True)
class OfflineSource:
    """Files found on disk for one dataset split, and how to read them.

    Attributes:
        description: Human-readable summary (format and paths), for messages.
        load: Callable returning `(x, y)` raw arrays.
    """

    description: str
    load: Callable[[], Arrays]


@dataclasses.dataclass(frozen=True)
class FileFormat:
    """A family of original files: how to find one split's files in a directory.

    Attributes:
        name: Short name, e.g. ``"idx"``.
        title: The files, for help texts, e.g. ``"MNIST IDX"``.
        find: ``find(names, split, directory) -> OfflineSource or None``:
            `names` maps each split to the dataset's file names in this
            format; None when the directory holds none of them. Raises
            FileNotFoundError when it holds only part of them.
    """

    name: str
    title: str
    find: Callable[[Mapping[str, Tuple[str, ...]], str, str], Optional[OfflineSource]]


@dataclasses.dataclass(frozen=True)
class OriginalFiles:
    """A dataset's files in their original format, as its entry declares them.

    Attributes:
        format: Their `FileFormat` (e.g. `IDX`).
        names: Split -> the file names in that format (a dict is frozen to
            a tuple of ``(split, names)`` pairs).
        origin: Where a damaged one can be fetched again, completing
            "Delete it and ..." (e.g. ``"download it again from URL"``).
        help: How to put them in ``DIR`` for offline use, for the message of
            a dataset that is unavailable (the npz alternative is added).
    """

    format: FileFormat
    names: Tuple[Tuple[str, Tuple[str, ...]], ...]
    origin: str
    help: str

    def __post_init__(self):
        if not isinstance(self.format, FileFormat):
            raise ValueError(f"`format` must be a FileFormat. Received: format={self.format!r}")
        names = dict(self.names)
        if sorted(names) != ["test", "train"]:
            raise ValueError("`names` must give the file names of the splits 'train' and "
                             f"'test'. Received: names={self.names!r}")
        object.__setattr__(self, "names",
                           tuple((split, tuple(names[split])) for split in ("train", "test")))

    def find(self, split, directory):
        """The split's files in `directory` (an `OfflineSource`), or None.

        A damaged file's `DataFileError` then says where to get it again.
        """
        source = self.format.find(dict(self.names), split, directory)
        if source is None:
            return None
        return dataclasses.replace(source, load=_with_origin(source.load, self.origin))


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


def _find_idx(names, split, directory):
    images_name, labels_name = names[split]
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


def _find_cifar10(names, split, directory):
    every_name = [n for split_names in names.values() for n in split_names]
    if not any(_existing(directory, n) for n in every_name):
        return None
    missing = [n for n in names[split] if _existing(directory, n) is None]
    if missing:
        raise _missing_error("CIFAR-10 python batch", directory, missing)
    paths = [os.path.join(directory, n) for n in names[split]]
    return OfflineSource(
        description=f"CIFAR-10 python batches {paths}",
        load=lambda: load_cifar10_batches(paths),
    )


def _find_svhn(names, split, directory):
    if not any(_existing(directory, n) for split_names in names.values() for n in split_names):
        return None
    (name,) = names[split]
    path = _existing(directory, name)
    if path is None:
        raise _missing_error("SVHN", directory, [name])
    return OfflineSource(
        description=f"SVHN file {path}", load=lambda: load_svhn_mat(path)
    )


IDX = FileFormat("idx", "MNIST IDX", _find_idx)
CIFAR10_PYTHON = FileFormat("cifar10", "CIFAR-10 python batches", _find_cifar10)
SVHN_MAT = FileFormat("svhn", "SVHN .mat", _find_svhn)


def find_source(name, split, directory, files=None) -> Optional[OfflineSource]:
    """Finds the files of a dataset split in one directory, if any.

    Looks, in this order, for `{name}_{split}.npz`, `{name}_{split}_*.npz`,
    `{split}.npz`, then the dataset's original files (`files`).

    Args:
        name: Dataset name (one of `rls_tf.data.DATASETS`).
        split: `"train"` or `"test"`.
        directory: An existing directory.
        files: The dataset's `OriginalFiles`, or None for those of its
            registered entry (`rls_tf.data.registry`).

    Returns:
        An `OfflineSource`, or None when the directory holds no such files.

    Raises:
        FileNotFoundError: When only part of the original files is present.
        ValueError: When several npz files match.

    The source's `load` raises `DataFileError` (naming the file and where to
    get it again) when a file is truncated or damaged.

    Example:
        (Not run as a doctest: it reads dataset files.)

        >>> source = find_source("mnist", "test", "/data")  # doctest: +SKIP
        >>> x, y = source.load() if source else (None, None)  # doctest: +SKIP
    """
    npz = _find_npz(name, split, directory)
    if npz is not None:
        return OfflineSource(description=f"npz file {npz}", load=lambda: load_npz(npz))
    if files is None:
        # Callers of the former signature: the registry sits above this module.
        from rls_tf.data.registry import get_dataset_spec  # pylint: disable=import-outside-toplevel
        files = get_dataset_spec(name).files
    return None if files is None else files.find(split, directory)


def _with_origin(load, origin):
    """Wraps `load` so that a damaged original file's error says where to get it again."""

    def load_or_explain():
        try:
            return load()
        except DataFileError as e:
            raise e.with_remedy(f"Delete it and {origin}.") from e.__cause__

    return load_or_explain


def __getattr__(name):
    # ORIGINS (dataset -> where to get a damaged file again) is now each
    # entry's `files.origin`; the former name stays readable, always current.
    if name == "ORIGINS":
        from rls_tf.data.registry import DATASET_SPECS  # pylint: disable=import-outside-toplevel
        return {n: s.files.origin for n, s in DATASET_SPECS.items() if s.files is not None}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
