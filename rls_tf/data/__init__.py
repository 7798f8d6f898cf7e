"""Datasets of the paper (MNIST, Fashion-MNIST, CIFAR-10, SVHN), offline-friendly.

`datasets` owns the public API (specs, numpy arrays, tf.data pipelines, the
errors); `offline` owns the readers of the original file formats.
"""

from rls_tf.data.datasets import (
    DATASETS,
    DataFileError,
    DatasetSpec,
    DatasetUnavailableError,
    dataset_spec,
    load_numpy,
    make_dataset,
    to_model_range,
)

__all__ = [
    "DATASETS",
    "DataFileError",
    "DatasetSpec",
    "DatasetUnavailableError",
    "dataset_spec",
    "load_numpy",
    "make_dataset",
    "to_model_range",
]
