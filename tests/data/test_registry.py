"""The dataset registry drives loading and training: a dataset registered here trains end to end.

The toy dataset below is declared in this test module only (no library file
names it): an 8x8x1 two-class set read from the npz files the test writes.
"""

import json

import numpy as np
import pytest

from rls_tf import data as rls_data
from rls_tf.cli import flags as shared
from rls_tf.data import DATASETS
from rls_tf.data import DatasetSpec
from rls_tf.data import DatasetUnavailableError
from rls_tf.data import get_dataset_spec
from rls_tf.data import load_numpy
from rls_tf.data import make_dataset
from rls_tf.data import register_dataset
from rls_tf.data import unregister_dataset
from rls_tf.data import offline
from rls_tf.training import TrainConfig
from rls_tf.training import paper_epochs
from rls_tf.training import train

TOY = DatasetSpec("toy8", None, (8, 8, 1), 2, 64, 16, title="Toy 8x8",
                  augment_pad=1, paper_epochs=3)


def _write_toy(directory, n_train=64, n_test=16, seed=0):
    """Class = which half (top or bottom) of a dark, noisy 8x8 image is bright."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        y = rng.integers(0, 2, size=n).astype(np.uint8)
        x = rng.integers(0, 60, size=(n, 8, 8, 1)).astype(np.uint8)
        for i, label in enumerate(y):
            x[i, 4 * label: 4 * label + 4] = 255
        np.savez(directory / f"toy8_{split}.npz", x=x, y=y)
    return str(directory)


@pytest.fixture
def toy_dataset():
    spec = register_dataset(TOY)
    try:
        yield spec
    finally:
        unregister_dataset("toy8")


def test_a_registered_dataset_trains_end_to_end(toy_dataset, tmp_path, capsys):
    data_dir = _write_toy(tmp_path)
    model_dir = tmp_path / "run"
    metrics = train(TrainConfig(
        dataset="toy8", backbone="small_cnn", backbone_width=4, defense="rls",
        num_submodels=2, num_samples=2, eval_samples=2, data_dir=data_dir,
        model_dir=str(model_dir), epochs=1, batch_size=16, verbose=0, seed=0,
        augment=True))
    config = json.loads((model_dir / "config.json").read_text())
    assert config["dataset"] == metrics["dataset"] == "toy8"
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert "toy8" in capsys.readouterr().out


def test_a_registered_dataset_is_listed_loaded_and_removed(toy_dataset, tmp_path):
    # The name lists are live: the names imported before registering show it.
    assert "toy8" in DATASETS and DATASETS[-1] == "toy8"
    assert get_dataset_spec("toy8") is TOY
    with pytest.raises(ValueError, match=r"dataset='nope'.*'toy8'"):
        get_dataset_spec("nope")
    x, y = load_numpy("toy8", "train", data_dir=_write_toy(tmp_path))
    assert x.shape == (64, 8, 8, 1) and set(np.unique(y)) <= {0, 1}
    images, _ = next(iter(make_dataset("toy8", "train", 8, data_dir=str(tmp_path),
                                       augment=True, seed=0)))
    assert images.shape == (8, 8, 8, 1)
    # Its paper length is its own; TrainConfig reads the registry at call time.
    assert paper_epochs("toy8") == 3
    TrainConfig(dataset="toy8", backbone="small_cnn").validate()
    # Not in TFDS and not on disk: the message says how to supply the files.
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetUnavailableError, match=r"TFDS does not provide it.*toy8_train\.npz"):
        load_numpy("toy8", "test", data_dir=empty)


def test_removed_dataset_is_gone():
    register_dataset(TOY)
    unregister_dataset("toy8")
    assert "toy8" not in DATASETS and DATASETS == ("mnist", "fashion_mnist", "cifar10", "svhn")
    with pytest.raises(ValueError, match="Unknown dataset: Received: dataset='toy8'"):
        load_numpy("toy8", "test")
    with pytest.raises(ValueError, match="dataset='toy8'"):
        TrainConfig(dataset="toy8", backbone="small_cnn").validate()
    with pytest.raises(ValueError, match="dataset='toy8'"):
        unregister_dataset("toy8")


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="two words"), "name='two words'"),
    (dict(tfds_name=""), "tfds_name=''"),
    (dict(input_shape=(8, 8)), r"input_shape=\(8, 8\)"),
    (dict(input_shape=(8, 0, 1)), "input_shape="),
    (dict(num_classes=1), "num_classes=1"),
    (dict(num_train=0), "num_train=0"),
    (dict(files="idx"), "files='idx'"),
    (dict(augment_pad=-1), "augment_pad=-1"),
    (dict(augment_flip="yes"), "augment_flip='yes'"),
    (dict(paper_epochs=0), "paper_epochs=0"),
])
def test_spec_is_validated(kwargs, match):
    settings = dict(name="toy8", tfds_name=None, input_shape=(8, 8, 1), num_classes=2,
                    num_train=64, num_test=16)
    settings.update(kwargs)
    with pytest.raises(ValueError, match=match):
        DatasetSpec(**settings)


def test_registration_is_checked():
    with pytest.raises(ValueError, match="name='mnist'"):
        register_dataset(get_dataset_spec("mnist"))
    with pytest.raises(ValueError, match="DatasetSpec"):
        register_dataset("mnist")
    with pytest.raises(ValueError, match="names"):
        offline.OriginalFiles(offline.IDX, {"train": ("a", "b")}, origin="-", help="-")


def test_entries_hold_every_fact():
    mnist, cifar = get_dataset_spec("mnist"), get_dataset_spec("cifar10")
    assert mnist.files.format is offline.IDX and mnist.subdirs == ("mnist",)
    assert dict(mnist.files.names) == offline.IDX_FILES
    assert (cifar.augment_pad, cifar.augment_flip) == (4, True)
    assert get_dataset_spec("fashion_mnist").default_dirs == ("/usr/share/datasets/fashion-mnist",)
    assert [paper_epochs(n) for n in DATASETS] == [50, 50, 150, 150]
    # The former table of offline.py is derived from the entries.
    assert offline.ORIGINS["svhn"] == get_dataset_spec("svhn").files.origin
    assert rls_data.dataset_spec is get_dataset_spec


def test_dataset_flag_choices_come_from_the_registry():
    flag = shared.define_dataset_flags() or shared.FLAGS["dataset"]
    assert flag.parser.enum_values == list(DATASETS)
    assert "cifar10 (CIFAR-10)" in flag.help
