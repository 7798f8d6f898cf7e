"""Tests of `RLSModel`: group training, N-sample inference, paths, saving."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from rls_tf.losses import GroupMSE
from rls_tf.models import RLSModel
from rls_tf.models import build_model
from rls_tf.models import build_network

SHARED_DATA = os.path.normpath(
    os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")
)


def _plain_small_cnn():
    """`small_cnn` written with plain Keras layers (the M=1 reference)."""
    layers = keras.layers

    def conv_bn(filters, name):
        return [
            layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name),
            layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name + "_bn"),
            layers.ReLU(),
        ]

    return keras.Sequential(
        [keras.Input((28, 28, 1))]
        + conv_bn(32, "conv1") + [layers.MaxPooling2D(2)] + conv_bn(32, "conv2")
        + conv_bn(64, "conv3") + [layers.MaxPooling2D(2)] + conv_bn(64, "conv4")
        + [layers.Flatten(), layers.Dense(128, activation="relu", name="fc1"),
           layers.Dense(10, activation="softmax", name="fc2")]
    )


def _copy_weights(rls, plain, copy=0):
    for name in ("conv1", "conv2", "conv3", "conv4"):
        src = rls.network.get_layer(name)
        plain.get_layer(name).kernel.assign(src.kernel[copy])
        bn = plain.get_layer(name + "_bn")
        for attr in ("gamma", "beta", "moving_mean", "moving_variance"):
            getattr(bn, attr).assign(getattr(src, attr)[copy])
    for name in ("fc1", "fc2"):
        src = rls.network.get_layer(name)
        plain.get_layer(name).kernel.assign(src.kernel[copy])
        plain.get_layer(name).bias.assign(src.bias[copy])


def _toy_data(n=256, seed=0):
    """Images whose class is the position of a bright 7x7 square."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=n)
    x = rng.uniform(-1.0, -0.6, size=(n, 28, 28, 1)).astype("float32")
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, 3 + 14 * r: 10 + 14 * r, 3 + 14 * c: 10 + 14 * c] = 1.0
    return x, y.astype("int64")


def test_m1_equals_plain_keras_forward_and_training():
    keras.utils.set_random_seed(0)
    rls = build_model("small_cnn", num_submodels=1, input_shape=(28, 28, 1),
                      num_samples=3, eval_samples=10)
    plain = _plain_small_cnn()
    _copy_weights(rls, plain)
    x = np.random.default_rng(1).uniform(-1, 1, (32, 28, 28, 1)).astype("float32")
    y = np.arange(32) % 10
    np.testing.assert_array_equal(rls.predict_on_batch(x), plain.predict_on_batch(x))
    for model in (rls, plain):
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                      loss="sparse_categorical_crossentropy")
    for _ in range(3):
        plain_loss = plain.train_on_batch(x, y)
        rls_loss = rls.train_on_batch(x, y, return_dict=True)["loss"]
        np.testing.assert_allclose(rls_loss, plain_loss, rtol=1e-5)
    np.testing.assert_allclose(
        rls.network.get_layer("conv2").kernel[0], plain.get_layer("conv2").kernel,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        rls.network.get_layer("conv3").moving_variance[0],
        plain.get_layer("conv3_bn").moving_variance, atol=1e-6,
    )
    np.testing.assert_allclose(rls.predict_on_batch(x), plain.predict_on_batch(x),
                               atol=1e-5)


@pytest.mark.parametrize("train_forward", ["loop", "tiled"])
def test_group_training_decreases_loss(train_forward):
    keras.utils.set_random_seed(1)
    x, y = _toy_data()
    model = build_model("small_cnn", num_submodels=2, num_classes=4,
                        input_shape=(28, 28, 1), num_samples=3, eval_samples=4,
                        train_forward=train_forward)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    before = model.evaluate(x, y, verbose=0, return_dict=True)
    history = model.fit(x, y, batch_size=32, epochs=3, verbose=0).history
    after = model.evaluate(x, y, verbose=0, return_dict=True)
    assert history["loss"][-1] < history["loss"][0]
    assert after["loss"] < before["loss"] - 0.3
    assert after["accuracy"] > 0.9
    assert set(history) >= {"loss", "accuracy", "diversity"}
    assert 0.0 <= history["diversity"][-1] <= 1.0


def test_train_step_minimises_loss_of_mean_prediction():
    """One SGD step moves weights along the gradient of CE(mean_k f_k)."""
    keras.utils.set_random_seed(2)
    network = build_network("small_cnn", num_submodels=2, input_shape=(28, 28, 1),
                            num_classes=4)
    model = RLSModel(network, num_samples=3)
    model.compile(optimizer=keras.optimizers.SGD(1.0),
                  loss="sparse_categorical_crossentropy")
    x, y = _toy_data(8)
    paths = np.asarray(model.draw(3, seed=0))
    before = [w.numpy() for w in model.trainable_weights]
    # Reference gradient for the pinned paths, computed by hand.
    with tf.GradientTape() as tape:
        probs = model.outputs(x, paths, training=True)
        loss = keras.losses.sparse_categorical_crossentropy(
            y, tf.reduce_mean(probs, 0)
        )
        loss = tf.reduce_mean(loss) + tf.add_n(model.losses or [tf.constant(0.0)])
    expected = tape.gradient(loss, model.trainable_weights)
    for w, value in zip(model.trainable_weights, before):
        w.assign(value)
    # The same step through train_step, with the same paths pinned.
    model._training_samples = lambda inputs: model.outputs(inputs, paths, training=True)
    model.train_on_batch(x, y)
    for w, value, grad in zip(model.trainable_weights, before, expected):
        np.testing.assert_allclose(w.numpy(), value - grad.numpy(), atol=2e-5)


def test_inference_is_mean_of_n_sampled_models():
    keras.utils.set_random_seed(3)
    model = build_model("small_cnn", num_submodels=2, input_shape=(28, 28, 1),
                        eval_samples=5)
    x, _ = _toy_data(4)
    paths = np.asarray(model.draw(5, seed=1))
    samples = model.outputs(x, paths).numpy()
    assert samples.shape == (5, 4, 10)
    for s in range(5):
        single = model.outputs(x, paths[s:s + 1]).numpy()[0]
        np.testing.assert_allclose(samples[s], single, atol=1e-5)
    np.testing.assert_allclose(
        model.outputs(x, paths, forward="loop"), samples, atol=1e-5
    )
    with pytest.raises(ValueError, match="forward='fast'"):
        model.sample_outputs(x, 5, forward="fast")
    # Unpinned N-sample predictions vary from call to call, and each is a
    # probability vector.
    predictions = [model.predict_on_batch(x) for _ in range(5)]
    assert any(not np.allclose(predictions[0], p) for p in predictions[1:])
    np.testing.assert_allclose(predictions[0].sum(-1), 1.0, atol=1e-5)


def test_sample_paths_follow_mu_and_pin_layers():
    network = build_network("small_cnn", num_submodels=3, mu=[0.6, 0.3, 0.1],
                            input_shape=(28, 28, 1))
    model = RLSModel(network)
    paths = np.asarray(model.draw(20000, seed=0))
    assert paths.shape == (20000, len(model.rls_layers)) == (20000, 6)
    freq = np.bincount(paths.ravel(), minlength=3) / paths.size
    np.testing.assert_allclose(freq, [0.6, 0.3, 0.1], atol=0.01)
    np.testing.assert_array_equal(paths, np.asarray(model.draw(20000, seed=0)))


def test_paths_shape_is_checked():
    model = build_model("small_cnn", num_submodels=2, input_shape=(28, 28, 1))
    x = np.zeros((2, 28, 28, 1), "float32")
    with pytest.raises(ValueError, match="one column per RLS layer"):
        with pytest.warns(DeprecationWarning, match="use `outputs"):
            model.sample_outputs(x, 1, paths=np.zeros((1, 3), "int32"))
    with pytest.raises(ValueError, match="rows for num_samples=2"):
        with pytest.warns(DeprecationWarning):
            model.sample_outputs(x, 2, paths=np.zeros((3, 6), "int32"))


def test_draw_vocabulary_and_deprecated_aliases():
    model = build_model("small_cnn", num_submodels=2, input_shape=(28, 28, 1))
    x = np.zeros((2, 28, 28, 1), "float32")
    with pytest.raises(ValueError, match=r"`draws` must have shape .* Received: draws.shape"):
        model.outputs(x, np.zeros((1, 3), "int32"))
    with pytest.warns(DeprecationWarning, match="use `draw"):
        paths = model.sample_paths(2, seed=0)
    np.testing.assert_array_equal(paths, np.asarray(model.draw(2, seed=0)))
    with pytest.warns(DeprecationWarning):
        old = model.sample_outputs(x, 2, paths=paths).numpy()
    np.testing.assert_allclose(old, model.outputs(x, paths).numpy())


def test_wrong_image_shape_raises_clear_error():
    model = build_model("small_cnn", num_submodels=2, input_shape=(28, 28, 1))
    with pytest.raises(ValueError, match=r"Received: x.shape=\(2, 32, 32, 3\)"):
        model.predict_on_batch(np.zeros((2, 32, 32, 3), "float32"))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"backbone": "resnet9000"}, "backbone='resnet9000'"),
        ({"num_submodels": 0}, "num_submodels=0"),
        ({"mu": [0.5, 0.6]}, "must sum to 1"),
        ({"mu": [1.0]}, "one probability per sub-model"),
        ({"num_samples": 0}, "num_samples=0"),
        ({"eval_samples": -1}, "eval_samples=-1"),
        ({"train_forward": "fast"}, "train_forward='fast'"),
    ],
)
def test_bad_model_arguments_raise(kwargs, match):
    args = {"backbone": "small_cnn", "input_shape": (28, 28, 1)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        build_model(args.pop("backbone"), **args)


def test_group_mse_loss_trains():
    keras.utils.set_random_seed(4)
    x, y = _toy_data(128)
    model = build_model("small_cnn", num_submodels=2, num_classes=4,
                        input_shape=(28, 28, 1), num_samples=2, eval_samples=2)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss=GroupMSE(), metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]


def test_save_and_load_keeps_weights_and_settings(tmp_path):
    keras.utils.set_random_seed(5)
    model = build_model("small_cnn", num_submodels=2, input_shape=(28, 28, 1),
                        num_samples=4, eval_samples=7, train_forward="tiled")
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = _toy_data(32)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, RLSModel)
    assert (loaded.num_samples, loaded.eval_samples, loaded.train_forward) == (4, 7, "tiled")
    paths = np.asarray(model.draw(3, seed=0))
    np.testing.assert_allclose(
        loaded.outputs(x, paths), model.outputs(x, paths),
        atol=1e-6,
    )
    # The optimizer state comes back too, so training resumes where it was.
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 2


@pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason="no ../shared/data")
def test_short_fit_on_real_mnist_exceeds_90_percent():
    from rls_tf.data import make_dataset

    keras.utils.set_random_seed(0)
    train = make_dataset("mnist", "train", 32, data_dir=SHARED_DATA,
                         max_examples=6000, seed=0)
    test = make_dataset("mnist", "test", 250, data_dir=SHARED_DATA, max_examples=1000)
    model = build_model("small_cnn", num_submodels=2, input_shape=(28, 28, 1),
                        num_samples=3, eval_samples=10)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train, epochs=2, verbose=0)
    result = model.evaluate(test, verbose=0, return_dict=True)
    assert result["accuracy"] > 0.90, result


@pytest.mark.parametrize("forward", ["loop", "tiled"])
def test_enclosing_scope_sets_per_example_sampling_and_routing(forward):
    from rls_tf.layers import sampling_scope  # pylint: disable=import-outside-toplevel

    model = build_model("small_cnn", num_submodels=2, input_shape=(28, 28, 1))
    assert model.per_example_sampling is None
    x = np.repeat(_toy_data(1)[0], 32, axis=0)  # one image, 32 times
    with sampling_scope(per_example=True):
        per_example = np.asarray(model.sample_outputs(x, 2, forward=forward))
    # Rows of one sample differ: every example drew its own path.
    assert not np.allclose(per_example[0], per_example[0, :1], atol=1e-6)
    batch_wide = np.asarray(model.sample_outputs(x, 2, forward=forward))
    np.testing.assert_allclose(batch_wide[0], np.broadcast_to(batch_wide[0, :1], (32, 10)),
                               atol=1e-6)
    # The select routing (TFLite's) gives the same outputs as the partition one.
    paths = np.asarray(model.draw(2, seed=0))
    with sampling_scope(routing="select"):
        selected = np.asarray(model.outputs(x[:4], paths, forward=forward))
    np.testing.assert_allclose(
        selected, np.asarray(model.outputs(x[:4], paths, forward=forward)),
        atol=1e-5)
