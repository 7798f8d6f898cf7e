"""Fixtures for the attack tests: a small undefended model that attacks must break.

The strength tests need a real, accurate, undefended classifier: an attack
that silently does nothing would otherwise pass and print false robustness.
The session fixture trains a tiny CNN on MNIST (``../shared/data`` next to the
repository root) to ~97% clean accuracy in a few seconds; without that file
it falls back to a synthetic 10-class image dataset (noisy prototypes) on
which the same CNN is as accurate and as fragile.
"""

import os
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

MNIST_TRAIN = (
    pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist_train.npz"
)
MNIST_TEST = MNIST_TRAIN.with_name("mnist_test.npz")
NUM_ATTACKED = 100
# Per data source: the L-inf budget at which PGD-20 leaves roughly a quarter to
# a half of the examples (to compare APGD with PGD), and the largest mean L1
# distortion accepted from EAD (DeepFool needs ~40 on MNIST, ~60 on synthetic).
SOURCE_SETTINGS = {
    "mnist": {"eps_compare": 0.3, "max_mean_l1": 50.0},
    "synthetic": {"eps_compare": 0.22, "max_mean_l1": 80.0},
}


def _to_unit_range(images):
    """uint8 [0, 255] -> float32 [-1, 1], the project's pixel convention."""
    return images.astype(np.float32) / 127.5 - 1.0


def synthetic_images(num, seed, size=28, num_classes=10):
    """A separable 10-class dataset of 28x28x1 images in [-1, 1].

    Each class is a fixed smooth random prototype (shared across calls: it
    depends only on ``size``/``num_classes``); an example is its class's
    prototype plus per-example noise and a random brightness shift.
    """
    proto_rng = np.random.default_rng(12345)
    coarse = proto_rng.uniform(-1, 1, size=(num_classes, 7, 7))
    protos = np.kron(coarse, np.ones((size // 7, size // 7)))  # smooth 4x4 blocks
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, size=num)
    noise = rng.normal(0.0, 0.35, size=(num, size, size))
    shift = rng.uniform(-0.2, 0.2, size=(num, 1, 1))
    images = np.clip(0.7 * protos[labels] + noise + shift, -1.0, 1.0)
    return images[..., None].astype(np.float32), labels.astype(np.int64)


def load_data():
    """(x_train, y_train, x_test, y_test, source).

    Set RLS_TF_SYNTHETIC_VICTIM=1 to use the synthetic fallback even where
    MNIST is present (to check that the strength tests hold on it too).
    """
    forced = os.environ.get("RLS_TF_SYNTHETIC_VICTIM", "") not in ("", "0")
    if not forced and MNIST_TRAIN.exists() and MNIST_TEST.exists():
        with np.load(MNIST_TRAIN) as train, np.load(MNIST_TEST) as test:
            return (
                _to_unit_range(train["x"]),
                train["y"].astype(np.int64),
                _to_unit_range(test["x"][:1000]),
                test["y"][:1000].astype(np.int64),
                "mnist",
            )
    x_train, y_train = synthetic_images(20000, seed=0)
    x_test, y_test = synthetic_images(1000, seed=1)
    return x_train, y_train, x_test, y_test, "synthetic"


def train_small_cnn(x_train, y_train, seed=1234):
    """A tiny CNN (two strided convs, one dense) on logits; one epoch of Adam."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input(x_train.shape[1:]),
            keras.layers.Conv2D(16, 5, strides=2, activation="relu"),
            keras.layers.Conv2D(32, 5, strides=2, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x_train, y_train, batch_size=128, epochs=1, verbose=0)
    return model


class Victim:
    """The trained model and the correctly classified examples to attack."""

    def __init__(self, model, x, y, clean_accuracy, source):
        self.model = model
        self.x = x
        self.y = y
        self.clean_accuracy = clean_accuracy
        self.source = source
        self.eps_compare = SOURCE_SETTINGS[source]["eps_compare"]
        self.max_mean_l1 = SOURCE_SETTINGS[source]["max_mean_l1"]

    def logits(self, x):
        return self.model(tf.convert_to_tensor(x), training=False).numpy()

    def accuracy(self, x_adv, y=None):
        y = self.y if y is None else y
        return float(np.mean(np.argmax(self.logits(x_adv), axis=-1) == y))

    def fooled(self, x_adv, y=None):
        y = self.y if y is None else y
        return np.argmax(self.logits(x_adv), axis=-1) != y


@pytest.fixture(scope="session")
def victim():
    """An undefended CNN at > 95% clean accuracy, and 100 examples it gets right."""
    x_train, y_train, x_test, y_test, source = load_data()
    model = train_small_cnn(x_train, y_train)
    pred = np.argmax(model.predict(x_test, batch_size=500, verbose=0), axis=-1)
    clean_accuracy = float(np.mean(pred == y_test))
    correct = np.flatnonzero(pred == y_test)[:NUM_ATTACKED]
    return Victim(model, x_test[correct], y_test[correct], clean_accuracy, source)


def linear_model_fn(weights, bias):
    """logits = W x + b on flattened x; ``weights`` [K, D], ``bias`` [K]."""
    weights = tf.constant(weights, tf.float32)
    bias = tf.constant(bias, tf.float32)

    def model_fn(x):
        flat = tf.reshape(x, [tf.shape(x)[0], -1])
        return tf.matmul(flat, weights, transpose_b=True) + bias

    return model_fn


def two_linear_models_fn(w1, b1, w2, b2):
    """An EOT model: [2, B, K], the two linear models' logits in random order.

    The order is drawn anew (by a TF op) at every call, so an attack that
    used one draw, or a draw-dependent loss, would not be reproducible; the
    mean over the draws is.
    """
    first = linear_model_fn(w1, b1)
    second = linear_model_fn(w2, b2)

    def model_fn(x):
        a, b = first(x), second(x)
        swap = tf.random.uniform([]) < 0.5
        return tf.where(swap, tf.stack([b, a]), tf.stack([a, b]))

    return model_fn
