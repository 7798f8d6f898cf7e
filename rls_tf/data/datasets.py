"""The registered datasets (`rls_tf.data.registry`) as numpy arrays or tf.data.

Data comes from, in order of preference:

1. Files in `data_dir` (or one of the entry's `subdirs` in it), detected from
   their names: `{name}_{split}.npz`, `{name}_{split}_*.npz` or `{split}.npz`
   holding arrays `x` (uint8 NHWC) and `y`, then the entry's original files
   (MNIST/Fashion-MNIST IDX files, CIFAR-10 python batches, SVHN `.mat`
   files). See `rls_tf.data.offline`.
2. Otherwise TFDS, with `data_dir` as its data directory (TFDS's default when
   None). When `data_dir` is None, the entry's `default_dirs` are searched
   first (Fashion-MNIST: where Debian's `dataset-fashion-mnist` package
   installs it).

Images are kept as raw uint8 pixels until `to_model_range` scales them to
[-1, 1], the convention of the paper.
"""

import os

import numpy as np
import tensorflow as tf

from rls_tf.data import offline
from rls_tf.data.offline import DataFileError
from rls_tf.data.registry import DATASETS
from rls_tf.data.registry import SPLITS
from rls_tf.data.registry import DatasetSpec
from rls_tf.data.registry import dataset_spec
from rls_tf.data.registry import get_dataset_spec
from rls_tf.validation import check_bool
from rls_tf.validation import check_int
from rls_tf.validation import check_seed

__all__ = ["DATASETS", "SPLITS", "DataFileError", "DatasetSpec", "DatasetUnavailableError",
           "dataset_spec", "load_numpy", "make_dataset", "to_model_range"]

_PROBE_TIMEOUT_S = 5.0


class DatasetUnavailableError(RuntimeError):
    """The dataset is neither on disk nor downloadable (e.g. no network)."""


# --- Argument validation ---------------------------------------------------


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(
            f"Unknown split: Received: split={split!r}. Expected one of {SPLITS}."
        )


def _check_data_dir(data_dir):
    if data_dir is None:
        return None
    path = os.path.expanduser(os.fspath(data_dir))
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"data_dir does not exist or is not a directory: "
            f"Received: data_dir={path!r}."
        )
    return path


def _check_arrays(x, y, spec, source):
    """Checks loaded arrays against the dataset; `source` names the origin."""
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != spec.input_shape:
        raise ValueError(
            f"{source}: images for {spec.name!r} must be uint8 with shape "
            f"[N, {', '.join(map(str, spec.input_shape))}]. "
            f"Received: dtype={x.dtype}, shape={x.shape}."
        )
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(
            f"{source}: labels must have shape [{len(x)}] to match the images. "
            f"Received: shape={y.shape}."
        )
    if len(y) == 0:
        raise ValueError(f"{source}: holds no examples.")
    if y.min() < 0 or y.max() >= spec.num_classes:
        raise ValueError(
            f"{source}: labels must be in [0, {spec.num_classes}). "
            f"Received: min={y.min()}, max={y.max()}."
        )


# --- Public API ------------------------------------------------------------


def load_numpy(name, split, data_dir=None, max_examples=None, download=True):
    """Loads a dataset split as numpy arrays of raw pixels.

    Args:
        name: One of `DATASETS`.
        split: `"train"` or `"test"`.
        data_dir: A directory of dataset files (npz, IDX, CIFAR-10 python
            batches or SVHN `.mat`; see the module docstring), or a TFDS data
            directory. None: TFDS's default (Fashion-MNIST is first looked for
            in `/usr/share/datasets/fashion-mnist`).
        max_examples: If set, keep only the first `max_examples` examples
            (deterministic: the split's stored order).
        download: Whether TFDS may download the dataset when it is not
            prepared in its data directory.

    Returns:
        `(x, y)`: uint8 `[N, H, W, C]` images and int64 `[N]` labels.

    Raises:
        ValueError: For invalid arguments or malformed files.
        DataFileError: (a ValueError) When a file in `data_dir` is truncated
            or damaged; the message names it and says how to replace it.
        FileNotFoundError: When `data_dir` does not exist, or holds only part
            of a dataset's original files.
        DatasetUnavailableError: When TFDS can neither find nor download it.

    Example:
        (Not run as a doctest: it reads dataset files.)

        >>> x, y = load_numpy("mnist", "test", data_dir="/data", max_examples=100)  # doctest: +SKIP
        >>> x.shape, y.dtype  # doctest: +SKIP
        ((100, 28, 28, 1), dtype('int64'))
    """
    spec = get_dataset_spec(name)
    _check_split(split)
    max_examples = check_int("max_examples", max_examples, minimum=1, allow_none=True)
    download = check_bool("download", download)
    path = _check_data_dir(data_dir)

    source = _find_offline_source(spec, split, path)
    if source is not None:
        x, y = source.load()
        origin = source.description
    else:
        x, y = _load_tfds(spec, split, path, download, max_examples)
        origin = f"TFDS dataset {spec.tfds_name!r} ({split})"
    _check_arrays(x, y, spec, origin)
    if max_examples is not None and max_examples < len(x):
        # Copy, so the full arrays can be freed.
        x, y = x[:max_examples].copy(), y[:max_examples].copy()
    return x, y


def to_model_range(x):
    """Scales uint8 pixels to float32 in [-1, 1] (the paper's convention).

    Args:
        x: Pixels in [0, 255], as a numpy array or a tensor of any dtype.

    Returns:
        `x / 127.5 - 1` as float32, a tensor if `x` is one, else a numpy array.

    Example:
        >>> to_model_range(np.array([0, 255], np.uint8))
        array([-1.,  1.], dtype=float32)
    """
    if tf.is_tensor(x):
        return tf.cast(x, tf.float32) / 127.5 - 1.0
    return np.asarray(x, np.float32) / np.float32(127.5) - np.float32(1.0)


def make_dataset(
    name,
    split,
    batch_size,
    data_dir=None,
    training=None,
    augment=False,
    max_examples=None,
    seed=None,
    download=True,
    drop_remainder=False,
):
    """Builds a batched `tf.data.Dataset` of `(images, labels)`.

    Images are float32 `[B, H, W, C]` in [-1, 1]; labels int64 `[B]`.

    Args:
        name: One of `DATASETS`.
        split: `"train"` or `"test"`.
        batch_size: Positive batch size.
        data_dir: See `load_numpy`.
        training: Shuffle (reshuffled every epoch) and allow augmentation.
            Defaults to `split == "train"`.
        augment: When training, apply light augmentation: random translation
            by zero-padding then cropping back (the entry's `augment_pad`: 4
            pixels for CIFAR-10, 2 otherwise), plus a random horizontal flip
            where its `augment_flip` says so (CIFAR-10 only).
        max_examples: See `load_numpy`.
        seed: None (random), or an int in ``[0, 2**31)`` that makes
            shuffling and augmentation reproducible.
        download: See `load_numpy`.
        drop_remainder: Drop the last batch when it is smaller.

    Returns:
        A `tf.data.Dataset`, prefetched.

    Raises:
        ValueError: For invalid arguments.

    Example:
        (Not run as a doctest: it reads dataset files.)

        >>> ds = make_dataset("cifar10", "train", 128, data_dir="/data",  # doctest: +SKIP
        ...                   augment=True, seed=0)
        >>> images, labels = next(iter(ds))  # doctest: +SKIP
    """
    spec = get_dataset_spec(name)
    _check_split(split)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    seed = check_seed("seed", seed)
    training = check_bool("training", split == "train" if training is None else training)
    augment = check_bool("augment", augment)
    drop_remainder = check_bool("drop_remainder", drop_remainder)
    x, y = load_numpy(name, split, data_dir, max_examples, download)

    # Shuffle and batch indices, then gather whole batches: the shuffle buffer
    # holds integers instead of images, and gathering is vectorised.
    images, labels = tf.constant(x), tf.constant(y)
    indices = tf.data.Dataset.range(len(x))
    if training:
        indices = indices.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    indices = indices.batch(batch_size, drop_remainder=drop_remainder)

    if training and augment:
        pad, flip = spec.augment_pad, spec.augment_flip
        # One stateless seed per batch; the stream is reproducible from `seed`
        # yet differs between epochs.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip(indices, seeds.batch(2))

        def load_batch(idx, batch_seed):
            batch = _augment_batch(tf.gather(images, idx), batch_seed, pad, flip)
            return to_model_range(batch), tf.gather(labels, idx)

    else:
        ds = indices

        def load_batch(idx):
            return to_model_range(tf.gather(images, idx)), tf.gather(labels, idx)

    ds = ds.map(load_batch, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


# --- Internals --------------------------------------------------------------


def _augment_batch(batch, seed, pad, flip):
    """Random per-image translation (pad + crop) and optional flip, stateless."""
    shape = tf.shape(batch)
    n, height, width = shape[0], shape[1], shape[2]
    crop_seed, flip_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=2)
    )
    padded = tf.pad(batch, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    offsets = tf.random.stateless_uniform(
        [n, 2], crop_seed, minval=0, maxval=2 * pad + 1, dtype=tf.int32
    )
    # Gather each image's rows, then its columns: a per-image crop in two ops.
    rows = offsets[:, :1] + tf.range(height)[tf.newaxis]
    cols = offsets[:, 1:] + tf.range(width)[tf.newaxis]
    batch = tf.gather(padded, rows, axis=1, batch_dims=1)
    batch = tf.gather(batch, cols, axis=2, batch_dims=1)
    if flip:
        do_flip = tf.random.stateless_uniform([n], flip_seed) < 0.5
        batch = tf.where(
            do_flip[:, tf.newaxis, tf.newaxis, tf.newaxis],
            tf.reverse(batch, axis=[2]),
            batch,
        )
    return batch


def _find_offline_source(spec, split, data_dir):
    roots = (data_dir,) if data_dir is not None else spec.default_dirs
    for root in roots:
        candidates = [root] + [os.path.join(root, sub) for sub in spec.subdirs]
        for directory in candidates:
            if os.path.isdir(directory):
                source = offline.find_source(spec.name, split, directory, spec.files)
                if source is not None:
                    return source
    return None


def _load_tfds(spec, split, data_dir, download, max_examples):
    # Imported here: TFDS is slow to import and unneeded for local files.
    import tensorflow_datasets as tfds

    if spec.tfds_name is None:
        raise DatasetUnavailableError(_unavailable_message(spec, data_dir, None, download))
    kwargs = dict(split=split, data_dir=data_dir, as_supervised=True)
    try:
        ds = tfds.load(spec.tfds_name, download=False, **kwargs)
    except AssertionError as e:
        # TFDS's way of saying "not prepared in data_dir".
        if not download:
            raise DatasetUnavailableError(
                _unavailable_message(spec, data_dir, e, download)
            ) from e
        _check_download_reachable(spec, data_dir)
        try:
            ds = tfds.load(spec.tfds_name, download=True, **kwargs)
        except Exception as e2:
            raise DatasetUnavailableError(
                _unavailable_message(spec, data_dir, e2, download)
            ) from e2
    if max_examples is not None:
        ds = ds.take(max_examples)
    xs, ys = [], []
    for x, y in tfds.as_numpy(ds.batch(4096)):
        xs.append(x)
        ys.append(y)
    if not xs:
        raise ValueError(f"TFDS dataset {spec.tfds_name!r} ({split}) is empty.")
    return np.concatenate(xs), np.concatenate(ys).astype(np.int64)


def _check_download_reachable(spec, data_dir):
    """Fails fast when TFDS's download host cannot be reached."""
    import requests  # A TFDS dependency; honours the same proxy settings.

    url = spec.download_url
    if url is None:
        return
    try:
        # Any HTTP answer, even an error status, proves the network works.
        requests.head(url, timeout=_PROBE_TIMEOUT_S, allow_redirects=False)
    except requests.exceptions.RequestException as e:
        raise DatasetUnavailableError(
            _unavailable_message(spec, data_dir, e, download=True)
        ) from e


def _unavailable_message(spec, data_dir, error, download):
    where = repr(data_dir) if data_dir else "TFDS's default data directory"
    if spec.tfds_name is None:
        reason = "TFDS does not provide it"
    elif download:
        reason = f"downloading it failed ({type(error).__name__}: {error})"
    else:
        reason = f"download=False and it is not prepared there ({error})"
    h, w, c = spec.input_shape
    npz = (
        f"save numpy arrays x (uint8 [N, {h}, {w}, {c}], raw pixels) and y "
        f"(integer labels [N]) with numpy.savez as DIR/{spec.name}_train.npz "
        f"and DIR/{spec.name}_test.npz"
    )
    how = npz if spec.files is None else f"{spec.files.help}, or {npz}"
    tfds = "" if spec.tfds_name is None else f" (TFDS {spec.tfds_name!r})"
    return (
        f"Dataset {spec.name!r}{tfds} is unavailable: "
        f"it is not in {where} and {reason}. To use it offline, {how}; then "
        "pass --data_dir=DIR (data_dir=DIR in Python)."
    )
