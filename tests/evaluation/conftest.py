"""Tiny RLS models for the evaluation tests (seconds to build and train).

* ``one_layer_model``: 4x4x1 images -> Flatten -> one RLSDense (M=2, 3
  classes, softmax). Two sampled models only, so expectations over the
  sampling are exact sums over the two paths.
* ``tiny_models``: a narrow ``small_cnn`` (width 4, 12x12x1 images, 4
  classes) as an RLS model (M=2) and its undefended M=1 twin, each fitted
  for a few steps on toy data (class = quadrant of a bright square).
* ``quadrant_cnn``: a plain Keras CNN (16x16x1 -> 4 logits) fitted for 5
  epochs on `tests.synthetic_data.quadrant_images`: the healthy external
  model of the indicator and binarization tests.
"""

import keras
import numpy as np
import pytest

from rls_tf.layers import RLSDense
from rls_tf.models import RLSModel
from rls_tf.models.backbones.small_cnn import small_cnn_network
from tests.synthetic_data import quadrant_images

QUADRANT_SHAPE = (16, 16, 1)


def toy_images(n, size=12, num_classes=4, seed=0):
    """Images in [-1, 1] whose class is the quadrant holding a bright square."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, size=n)
    x = rng.uniform(-1.0, -0.5, size=(n, size, size, 1)).astype("float32")
    half = size // 2
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, r * half + 1: r * half + half - 1, c * half + 1: c * half + half - 1] = 1.0
    return x, y.astype("int64")


def make_one_layer_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4, 4, 1))
    flat = keras.layers.Flatten()(inputs)
    outputs = RLSDense(3, num_submodels=2, activation="softmax", name="dense")(flat)
    model = RLSModel(keras.Model(inputs, outputs), num_samples=2, eval_samples=4)
    # Spread the two copies apart so that their gradients differ clearly.
    dense = model.network.get_layer("dense")
    rng = np.random.default_rng(seed)
    dense.kernel.assign(rng.normal(0, 1.0, size=dense.kernel.shape).astype("float32"))
    dense.bias.assign(rng.normal(0, 0.5, size=dense.bias.shape).astype("float32"))
    return model


def make_micro_model(num_submodels, seed=0):
    """8x8x1 images -> two RLSDense layers (4 classes): traces in a blink."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Flatten()(inputs)
    h = RLSDense(16, num_submodels=num_submodels, activation="relu", name="fc1")(h)
    outputs = RLSDense(4, num_submodels=num_submodels, activation="softmax", name="fc2")(h)
    model = RLSModel(keras.Model(inputs, outputs), num_samples=2, eval_samples=4)
    x, y = toy_images(256, size=8, seed=seed + 1)
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=64, epochs=3, verbose=0)
    return model


def make_tiny_model(num_submodels, seed=0, train=True):
    keras.utils.set_random_seed(seed)
    network = small_cnn_network(num_submodels=num_submodels, num_classes=4,
                                input_shape=(12, 12, 1), width=4)
    model = RLSModel(network, num_samples=2, eval_samples=4)
    if train:
        x, y = toy_images(128, seed=seed + 1)
        model.compile(optimizer=keras.optimizers.Adam(0.01),
                      loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    return model


@pytest.fixture(scope="session")
def one_layer_model():
    return make_one_layer_model()


@pytest.fixture(scope="session")
def tiny_models():
    """{"baseline": M=1, "rls": M=2} tiny trained small_cnn models."""
    return {"baseline": make_tiny_model(1, seed=0), "rls": make_tiny_model(2, seed=0)}


@pytest.fixture(scope="session")
def micro_models():
    """{"baseline": M=1, "rls": M=2} two-dense-layer models on 8x8 images."""
    return {"baseline": make_micro_model(1, seed=0), "rls": make_micro_model(2, seed=0)}


@pytest.fixture(scope="session")
def toy_test_data():
    return toy_images(8, size=8, seed=99)


TINY_PRESET_CHANGES = dict(
    fgsm_eps=(0.1, 0.3), pgd_eps=(0.1, 0.3), cw_c=(1.0,), ead_c=(10.0,),
    pgd_steps=3, cw_steps=5, ead_steps=5, deepfool_max_iter=3, apgd_steps=4,
    eot_samples=3, eot_pgd_steps=3, eot_pgd_restarts=2, eot_min_norm=True,
    eot_min_norm_steps=3, multi_sample_paths=(2,),
    square_queries=10, spsa_iters=2, spsa_samples=4, transfer_steps=2, arc_steps=2, arc_paths=2,
)


@pytest.fixture(scope="session")
def tiny_results(micro_models, toy_test_data):
    """One full run: all attacks x all threat models, tiny settings."""
    from rls_tf.evaluation import presets, runner

    preset = presets.get_preset("paper_mnist").replace(**TINY_PRESET_CHANGES)
    config = runner.EvalConfig(
        attacks=runner.ATTACK_NAMES, threat_models=("paper", "multi_sample", "eot", "apgd_rand"),
        preset=preset, eval_samples=3, repeats=2, sample_counts=(1, 3, 5), batch_size=8,
        seed=5, verbose=0,
    )
    x, y = toy_test_data
    results = runner.run_evaluation(micro_models, x, y, config, log=None)
    results["data"] = {"dataset": "toy"}
    return results


@pytest.fixture(scope="session")
def quadrant_cnn():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(QUADRANT_SHAPE),
                              keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(4)])
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = quadrant_images(512, 0)
    model.fit(x, y, epochs=5, batch_size=64, verbose=0)
    return model
