"""Tiny synthetic datasets the tests write themselves (no download, no shared data)."""

import os

import numpy as np


def write_quadrant_mnist(directory, n_train=256, n_test=64, seed=0):
    """Writes MNIST-shaped ``mnist_{train,test}.npz`` whose class is the bright quadrant.

    Labels 0-3 say which 14x14 quadrant of a dark, noisy 28x28 image is white:
    learnable in a few steps, so a test can check that training works.

    Args:
        directory: where the two files go (the ``data_dir`` of the loaders).
        n_train, n_test: number of examples per split.
        seed: NumPy seed of the images and labels.

    Returns:
        `directory` as a string.
    """
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        y = rng.integers(0, 4, size=n).astype("uint8")
        x = rng.integers(0, 60, size=(n, 28, 28, 1)).astype("uint8")
        for i, label in enumerate(y):
            r, c = divmod(int(label), 2)
            x[i, 14 * r: 14 * r + 14, 14 * c: 14 * c + 14] = 255
        np.savez_compressed(os.path.join(directory, f"mnist_{split}.npz"), x=x, y=y)
    return str(directory)
