"""Tiny synthetic datasets the tests write themselves (no download, no shared data)."""

import gzip
import os

import numpy as np

# Names of the original MNIST IDX files per split (images, labels).
IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def write_idx(path, array, compress=True):
    """Writes a uint8 array as an IDX file (the MNIST format), gzipped by default."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    payload = header + np.ascontiguousarray(array, np.uint8).tobytes()
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(payload)
    return str(path)


def write_quadrant_mnist(directory, n_train=256, n_test=64, seed=0, file_format="npz"):
    """Writes MNIST-shaped data whose class is the bright quadrant.

    Labels 0-3 say which 14x14 quadrant of a dark, noisy 28x28 image is white:
    learnable in a few steps, so a test can check that training works.

    Args:
        directory: where the files go (the ``data_dir`` of the loaders).
        n_train, n_test: number of examples per split.
        seed: NumPy seed of the images and labels.
        file_format: "npz" (``mnist_{train,test}.npz``) or "idx" (the four
            original gzipped IDX files, ``train-images-idx3-ubyte.gz`` ...).

    Returns:
        `directory` as a string.
    """
    if file_format not in ("npz", "idx"):
        raise ValueError(f"file_format must be 'npz' or 'idx'. Received: {file_format!r}")
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        y = rng.integers(0, 4, size=n).astype("uint8")
        x = rng.integers(0, 60, size=(n, 28, 28, 1)).astype("uint8")
        for i, label in enumerate(y):
            r, c = divmod(int(label), 2)
            x[i, 14 * r: 14 * r + 14, 14 * c: 14 * c + 14] = 255
        if file_format == "npz":
            np.savez_compressed(os.path.join(directory, f"mnist_{split}.npz"), x=x, y=y)
        else:
            images, labels = IDX_NAMES[split]
            write_idx(os.path.join(directory, images + ".gz"), x[..., 0])
            write_idx(os.path.join(directory, labels + ".gz"), y)
    return str(directory)


def truncate(path, keep=0.5):
    """Cuts a file to `keep` of its size (as an interrupted download leaves it)."""
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(int(size * keep))
    return str(path)


def quadrant_uint8(n, seed):
    """MNIST-shaped uint8 images ``[n, 28, 28, 1]`` whose class (0-3) is the bright quadrant."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=n).astype("uint8")
    x = rng.integers(0, 60, size=(n, 28, 28, 1)).astype("uint8")
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, 14 * r + 2: 14 * r + 12, 14 * c + 2: 14 * c + 12] = 255
    return x, y


def quadrant_images(n, seed, shape=(16, 16, 1)):
    """[-1, 1] float images whose class (0-3) is the bright quadrant, int64 labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.uniform(-1.0, -0.6, (n, *shape)).astype("float32")
    half_h, half_w = shape[0] // 2, shape[1] // 2
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, half_h * r:half_h * (r + 1), half_w * c:half_w * (c + 1)] = 1.0
    return x, y.astype("int64")
