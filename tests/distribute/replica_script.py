"""Runs one distributed check in a fresh process and prints its result as JSON.

TensorFlow fixes its device list when it starts, so the checks that split
the CPU into logical devices cannot run inside the pytest process (other
tests have started TensorFlow there). `tests/distribute/test_training.py`
runs this script with one of the modes below and reads the last line.

    python tests/distribute/replica_script.py MODE [ARGS...]
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np  # noqa: E402


def _quadrant_data(n, seed=0):
    """MNIST-shaped images whose class is the bright quadrant."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=n).astype("int32")
    x = rng.uniform(-1, -0.5, size=(n, 28, 28, 1)).astype("float32")
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, 14 * r: 14 * r + 14, 14 * c: 14 * c + 14] = 1.0
    return x, y


def _compile(model, keras, learning_rate=0.05):
    model.compile(optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def _no_bn_model(keras):
    """An M=1 RLS model without batch norm, with an L2 penalty.

    Batch norm is left out on purpose: each replica normalises with its own
    share of the batch (as Keras' BatchNormalization does by default), so a
    model with it is not expected to equal the single-device step.
    """
    from rls_tf.layers import RLSConv2D
    from rls_tf.layers import RLSDense
    from rls_tf.models import RLSModel

    inputs = keras.Input((28, 28, 1))
    h = RLSConv2D(8, 3, strides=2, activation="relu", num_submodels=1,
                  kernel_regularizer=keras.regularizers.L2(5e-4))(inputs)
    h = keras.layers.Flatten()(h)
    h = RLSDense(16, activation="relu", num_submodels=1)(h)
    outputs = RLSDense(4, activation="softmax", num_submodels=1)(h)
    return RLSModel(keras.Model(inputs, outputs), num_samples=3, eval_samples=2)


def one_step_m1():
    """One SGD step of an M=1 model: single device against 2 replicas."""
    import keras
    import tensorflow as tf
    from rls_tf.distribute import make_strategy

    x, y = _quadrant_data(16)
    keras.utils.set_random_seed(0)
    single = _no_bn_model(keras)
    initial = single.get_weights()
    _compile(single, keras)
    single.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    strategy = make_strategy("mirrored")
    with strategy.scope():
        mirrored = _no_bn_model(keras)
        mirrored.set_weights(initial)
        _compile(mirrored, keras)
    history = mirrored.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    diffs = [float(np.max(np.abs(a - b)))
             for a, b in zip(single.get_weights(), mirrored.get_weights())]
    moved = [float(np.max(np.abs(a - b))) for a, b in zip(initial, single.get_weights())]
    return {"replicas": strategy.num_replicas_in_sync, "max_diff": max(diffs),
            "max_update": max(moved), "loss": history.history["loss"][0],
            "devices": [d.name for d in tf.config.list_logical_devices("CPU")]}


def train_m2(seed):
    """An M=2 model under MirroredStrategy: loss and per-replica draws."""
    import keras
    import tensorflow as tf
    from rls_tf.distribute import make_strategy
    from rls_tf.models import build_model

    seed = None if seed == "none" else int(seed)
    x, y = _quadrant_data(256)
    strategy = make_strategy("mirrored")
    keras.utils.set_random_seed(0)  # the weights; unseeded layers still draw freshly
    with strategy.scope():
        model = build_model("small_cnn", num_submodels=2, input_shape=(28, 28, 1),
                            num_classes=4, seed=seed)
        _compile(model, keras, learning_rate=0.01)
    history = model.fit(x, y, batch_size=32, epochs=4, verbose=0)
    layers = model.rls_layers

    @tf.function
    def draws():
        return strategy.run(lambda: tf.stack([layer.draw_indices(64) for layer in layers]))

    per_replica = [v.numpy().tolist() for v in strategy.experimental_local_results(draws())]
    return {"replicas": strategy.num_replicas_in_sync, "loss": history.history["loss"],
            "accuracy": history.history["accuracy"], "draws": per_replica}


def train_py(model_dir, data_dir, epochs, strategy="mirrored"):
    """rls_tf.training.train (what train.py runs) under a strategy."""
    from rls_tf.training import TrainConfig
    from rls_tf.training import train

    metrics = train(TrainConfig(
        dataset="mnist", backbone="small_cnn", data_dir=data_dir, model_dir=model_dir,
        epochs=int(epochs), batch_size=32, learning_rate=0.02, lr_decay_epochs=0,
        eval_samples=2, verbose=0, strategy=strategy, seed=1,
    ))
    return {k: metrics[k] for k in ("num_replicas", "strategy", "test_accuracy", "history")}


def main():
    import keras
    keras.config.disable_traceback_filtering()
    mode, args = sys.argv[1], sys.argv[2:]
    devices = int(os.environ.get("RLS_LOGICAL_CPUS", "2"))
    if devices > 1:
        from rls_tf.distribute import split_cpu
        split_cpu(devices)
    modes = {"one_step_m1": one_step_m1, "train_m2": train_m2, "train_py": train_py,
             # One process for several seeds: TensorFlow's start-up is most of the cost.
             "train_m2_seeds": lambda *seeds: {s: train_m2(s) for s in seeds}}
    result = modes[mode](*args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
