"""The dataset registry: one `DatasetSpec` per dataset, holding every fact about it.

An entry says what the data is (image shape, classes, split sizes), where it
comes from (its TFDS name, its original files and their format, the
sub-directories and system directories searched, the download URL probed
before TFDS downloads), how it is augmented and how long the paper trained
on it. `rls_tf.data.datasets` (loading, tf.data), ``--dataset`` of every
command and `rls_tf.training.TrainConfig` read the registry, so adding a
dataset is one `register_dataset` call (here for the library's own).

| name | what | TFDS |
|---|---|---|
| ``mnist`` | handwritten digits, 28x28x1 | ``mnist`` |
| ``fashion_mnist`` | Zalando's clothing images, 28x28x1 | ``fashion_mnist`` |
| ``cifar10`` | tiny natural images, 32x32x3 | ``cifar10`` |
| ``svhn`` | house-number digits, 32x32x3 | ``svhn_cropped`` |

Example:

>>> spec = register_dataset(DatasetSpec("toy", None, (8, 8, 1), 2, 64, 16))
>>> "toy" in DATASETS
True
>>> unregister_dataset("toy")
"""

import dataclasses
from typing import Optional, Tuple

from rls_tf.data import offline
from rls_tf.params import Names
from rls_tf.validation import check_bool
from rls_tf.validation import check_int

__all__ = ["DATASETS", "DATASET_SPECS", "DatasetSpec", "SPLITS", "dataset_spec",
           "get_dataset_spec", "register_dataset", "unregister_dataset"]

SPLITS = ("train", "test")

# Name -> DatasetSpec, in registration order.
DATASET_SPECS = {}
# The registered names, always current (`rls_tf.params.Names`).
DATASETS = Names(DATASET_SPECS)


def _no_compare(default):
    # Two specs are equal when they describe the same data (name, TFDS name,
    # shape, classes, split sizes); where its files are and how it trains
    # are not part of that.
    return dataclasses.field(default=default, compare=False)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: every fact about it in one entry.

    Attributes:
        name: Name used by this library (``--dataset``, `load_numpy`).
        tfds_name: TFDS builder name; None for a dataset TFDS does not
            have (then only files in ``data_dir`` provide it).
        input_shape: Image shape `(H, W, C)`.
        num_classes: Number of classes; labels are `0..num_classes - 1`.
        num_train: Size of the full training split.
        num_test: Size of the full test split.
        title: Printed name (default: `name`).
        files: Its original files (`rls_tf.data.offline.OriginalFiles`:
            format, names per split, where to get a damaged one again, how
            to put them in place); None: only ``{name}_{split}.npz`` files
            (which every dataset also accepts) or TFDS.
        subdirs: Sub-directories of ``data_dir`` also searched for files
            (default: ``(name,)``).
        default_dirs: Directories searched before TFDS when ``data_dir`` is
            None (e.g. where a system package installs the files).
        download_url: Where TFDS downloads it from; only probed, so that an
            offline machine fails in seconds (TFDS's own downloader retries
            for minutes). None: not probed.
        augment_pad: Zero padding in pixels of the random translation of
            ``augment=True``.
        augment_flip: Whether ``augment=True`` also flips horizontally
            (not for digits: a mirrored digit is not the same class).
        paper_epochs: Training length of the paper (50 on the MNIST-like
            sets, 150 otherwise): a run's default number of epochs.
    """

    name: str
    tfds_name: Optional[str]
    input_shape: Tuple[int, int, int]
    num_classes: int
    num_train: int
    num_test: int
    title: str = _no_compare("")
    files: Optional[offline.OriginalFiles] = _no_compare(None)
    subdirs: Tuple[str, ...] = _no_compare(())
    default_dirs: Tuple[str, ...] = _no_compare(())
    download_url: Optional[str] = _no_compare(None)
    augment_pad: int = _no_compare(2)
    augment_flip: bool = _no_compare(False)
    paper_epochs: int = _no_compare(150)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"`name` must be an identifier. Received: name={self.name!r}")
        if self.tfds_name is not None and (not isinstance(self.tfds_name, str)
                                           or not self.tfds_name):
            raise ValueError("`tfds_name` must be None or a non-empty string. "
                             f"Received: tfds_name={self.tfds_name!r}")
        shape = self.input_shape
        if (not isinstance(shape, (tuple, list)) or len(shape) != 3
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1
                           for d in shape)):
            raise ValueError("`input_shape` must be three positive ints (H, W, C). "
                             f"Received: input_shape={shape!r}")
        object.__setattr__(self, "input_shape", tuple(shape))
        check_int("num_classes", self.num_classes, minimum=2)
        check_int("num_train", self.num_train, minimum=1)
        check_int("num_test", self.num_test, minimum=1)
        if self.files is not None and not isinstance(self.files, offline.OriginalFiles):
            raise ValueError("`files` must be None or an rls_tf.data.offline.OriginalFiles. "
                             f"Received: files={self.files!r}")
        check_int("augment_pad", self.augment_pad, minimum=0)
        check_bool("augment_flip", self.augment_flip)
        check_int("paper_epochs", self.paper_epochs, minimum=1)
        object.__setattr__(self, "title", self.title or self.name)
        object.__setattr__(self, "subdirs", tuple(self.subdirs) or (self.name,))
        object.__setattr__(self, "default_dirs", tuple(self.default_dirs))


def register_dataset(spec):
    """Adds `spec` (a `DatasetSpec`) to the registry; returns it.

    Args:
        spec: The dataset's entry.

    Returns:
        `spec`.

    Raises:
        ValueError: `spec` is not a `DatasetSpec`, or its name is taken.
    """
    if not isinstance(spec, DatasetSpec):
        raise ValueError(f"`spec` must be a DatasetSpec. Received: spec={spec!r}")
    if spec.name in DATASET_SPECS:
        raise ValueError(f"A dataset of that name is registered. Received: name={spec.name!r}")
    DATASET_SPECS[spec.name] = spec
    return spec


def unregister_dataset(name):
    """Removes dataset `name` from the registry (e.g. one a test registered).

    Raises:
        ValueError: No dataset of that name is registered.
    """
    get_dataset_spec(name)
    del DATASET_SPECS[name]


def get_dataset_spec(name):
    """Returns the `DatasetSpec` of a registered dataset.

    Args:
        name: One of `DATASETS`.

    Returns:
        The dataset's `DatasetSpec`.

    Raises:
        ValueError: For an unknown name (the message lists the registered ones).

    Example:
        >>> get_dataset_spec("cifar10").input_shape
        (32, 32, 3)
    """
    if not isinstance(name, str) or name not in DATASET_SPECS:
        raise ValueError(
            f"Unknown dataset: Received: dataset={name!r}. "
            f"Expected one of {DATASETS}."
        )
    return DATASET_SPECS[name]


# The former name of `get_dataset_spec`.
dataset_spec = get_dataset_spec


# --- The library's datasets ---------------------------------------------------

_FASHION_MNIST_DEBIAN = "/usr/share/datasets/fashion-mnist"

for _spec in (
    DatasetSpec(
        "mnist", "mnist", (28, 28, 1), 10, 60000, 10000, title="MNIST",
        files=offline.OriginalFiles(
            offline.IDX, offline.IDX_FILES,
            origin="download it again from https://storage.googleapis.com/cvdf-datasets/"
                   "mnist/ (same name, gzipped or not)",
            help="put the original IDX files train-images-idx3-ubyte.gz, "
                 "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
                 "t10k-labels-idx1-ubyte.gz (gzipped or not) in DIR"),
        download_url="https://storage.googleapis.com/cvdf-datasets/mnist/",
        augment_pad=2, augment_flip=False, paper_epochs=50,
    ),
    DatasetSpec(
        "fashion_mnist", "fashion_mnist", (28, 28, 1), 10, 60000, 10000,
        title="Fashion-MNIST",
        files=offline.OriginalFiles(
            offline.IDX, offline.IDX_FILES,
            origin="reinstall it (`apt-get install --reinstall dataset-fashion-mnist` for "
                   f"{_FASHION_MNIST_DEBIAN}) or download it again from "
                   "https://github.com/zalandoresearch/fashion-mnist (same name, gzipped "
                   "or not)",
            help="run `apt-get install dataset-fashion-mnist` (Debian/Ubuntu; it "
                 f"installs the IDX files in {_FASHION_MNIST_DEBIAN}, "
                 "which is used automatically when no data_dir is given), or put "
                 "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                 "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz in DIR"),
        subdirs=("fashion_mnist", "fashion-mnist"),
        # Searched before TFDS when data_dir is None, so that an offline
        # machine with the Debian package works without any flag.
        default_dirs=(_FASHION_MNIST_DEBIAN,),
        download_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        augment_pad=2, augment_flip=False, paper_epochs=50,
    ),
    DatasetSpec(
        "cifar10", "cifar10", (32, 32, 3), 10, 50000, 10000, title="CIFAR-10",
        files=offline.OriginalFiles(
            offline.CIFAR10_PYTHON, offline.CIFAR10_FILES,
            origin="extract it again from cifar-10-python.tar.gz "
                   "(https://www.cs.toronto.edu/~kriz/cifar.html)",
            help="extract cifar-10-python.tar.gz (from "
                 "https://www.cs.toronto.edu/~kriz/cifar.html) so that DIR/"
                 "cifar-10-batches-py/ holds data_batch_1 ... data_batch_5 and "
                 "test_batch"),
        subdirs=("cifar10", "cifar-10-batches-py"),
        download_url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        augment_pad=4, augment_flip=True, paper_epochs=150,
    ),
    DatasetSpec(
        "svhn", "svhn_cropped", (32, 32, 3), 10, 73257, 26032, title="SVHN",
        files=offline.OriginalFiles(
            offline.SVHN_MAT, {split: (name,) for split, name in offline.SVHN_FILES.items()},
            origin="download it again from http://ufldl.stanford.edu/housenumbers/",
            help="put train_32x32.mat and test_32x32.mat (from "
                 "http://ufldl.stanford.edu/housenumbers/) in DIR"),
        download_url="http://ufldl.stanford.edu/housenumbers/",
        augment_pad=2, augment_flip=False, paper_epochs=150,
    ),
):
    register_dataset(_spec)
del _spec
