"""Datasets of the paper (MNIST, Fashion-MNIST, CIFAR-10, SVHN), offline-friendly."""

from rls_tf.data.datasets import (
    DATASETS,
    DatasetSpec,
    DatasetUnavailableError,
    dataset_spec,
    load_numpy,
    make_dataset,
    to_model_range,
)

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "DatasetUnavailableError",
    "dataset_spec",
    "load_numpy",
    "make_dataset",
    "to_model_range",
]
