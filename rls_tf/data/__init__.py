"""Datasets of the paper (MNIST, Fashion-MNIST, CIFAR-10, SVHN) and any registered since, offline-friendly.

`registry` owns the entries (`DatasetSpec`: every fact about a dataset,
`register_dataset`); `datasets` the public loading API (numpy arrays,
tf.data pipelines, the errors); `offline` finds a split's files on disk and
`formats` reads the original file formats.
"""

from rls_tf.data.datasets import DatasetUnavailableError
from rls_tf.data.datasets import load_numpy
from rls_tf.data.datasets import make_dataset
from rls_tf.data.datasets import to_model_range
from rls_tf.data.formats import DataFileError
from rls_tf.data.offline import OriginalFiles
from rls_tf.data.registry import DATASET_SPECS
from rls_tf.data.registry import DATASETS
from rls_tf.data.registry import DatasetSpec
from rls_tf.data.registry import dataset_spec
from rls_tf.data.registry import get_dataset_spec
from rls_tf.data.registry import register_dataset
from rls_tf.data.registry import unregister_dataset

__all__ = [
    "DATASETS",
    "DATASET_SPECS",
    "DataFileError",
    "DatasetSpec",
    "DatasetUnavailableError",
    "OriginalFiles",
    "dataset_spec",
    "get_dataset_spec",
    "load_numpy",
    "make_dataset",
    "register_dataset",
    "to_model_range",
    "unregister_dataset",
]
