"""Training steps per second under tf.distribute: 1 device against 2 logical devices.

Runs RLS group training (default small_cnn, M=2, K=3, global batch 64) in a
fresh process per configuration, because TensorFlow fixes its device list
when it starts:

* ``default``: no strategy, one device;
* ``mirrored_1``: `MirroredStrategy` over one device (the strategy's own cost);
* ``mirrored_2``: `MirroredStrategy` over the CPU split into 2 logical devices
  (`rls_tf.distribute.split_cpu`), each replica 32 of the 64 images.

Logical CPU devices share the same cores: they add no compute, so on a CPU
machine ``mirrored_2_vs_default`` measures the overhead of replication
(splitting the batch, all-reducing the gradients, per-replica tracing), not a
speed-up. On a machine with 2 GPUs use ``--strategy=mirrored`` of train.py
for real data parallelism.

The configurations run in the order default, mirrored_1, mirrored_2,
default: the two default runs bracket drift from other load, and ratios use
their mean. Each process times ``--rounds`` rounds of ``--steps`` steps of
``model.fit`` after one warm-up round (tracing), and reports the median.

    python benchmarks/distribute_benchmark.py                 # prints JSON lines + summary
    python benchmarks/distribute_benchmark.py --steps=5 --rounds=1   # quick check
"""

import argparse
import json
import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(config, backbone, batch_size, steps, rounds, num_submodels, num_samples):
    """Steps per second of one configuration (run in its own process)."""
    sys.path.insert(0, REPO_ROOT)
    from rls_tf import distribute  # pylint: disable=import-outside-toplevel

    devices = 2 if config == "mirrored_2" else 1
    if devices > 1:
        distribute.split_cpu(devices)
    import keras  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from rls_tf.models import build_model  # pylint: disable=import-outside-toplevel

    keras.utils.set_random_seed(0)
    strategy = distribute.make_strategy("default" if config == "default" else "mirrored")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (batch_size, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, batch_size).astype("int32")
    dataset = tf.data.Dataset.from_tensors((x, y)).repeat()
    with strategy.scope():
        model = build_model(backbone, num_submodels=num_submodels, input_shape=(28, 28, 1),
                            num_samples=num_samples, weight_decay=5e-4)
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from timing import time_calls  # pylint: disable=import-outside-toplevel

    # One call is one round (``steps`` steps of fit); the first is the warm-up (tracing).
    timing = time_calls(lambda: model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0),
                        warmup=1, steps=1, repeats=rounds)
    times = timing.rounds
    seconds = float(np.median(times))
    return {"config": config, "replicas": strategy.num_replicas_in_sync,
            "steps_per_second": steps / seconds, "round_seconds": times,
            "load_average": os.getloadavg()[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="small_cnn")
    parser.add_argument("--batch_size", type=int, default=64, help="global batch")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--num_submodels", type=int, default=2)
    parser.add_argument("--num_samples", type=int, default=3)
    parser.add_argument("--config", help=argparse.SUPPRESS)  # internal: one process
    args = parser.parse_args()
    settings = (args.backbone, args.batch_size, args.steps, args.rounds,
                args.num_submodels, args.num_samples)
    if args.config:
        print(json.dumps(measure(args.config, *settings)))
        return
    results = []
    for config in ("default", "mirrored_1", "mirrored_2", "default"):
        command = [sys.executable, os.path.abspath(__file__), f"--config={config}",
                   f"--backbone={args.backbone}", f"--batch_size={args.batch_size}",
                   f"--steps={args.steps}", f"--rounds={args.rounds}",
                   f"--num_submodels={args.num_submodels}", f"--num_samples={args.num_samples}"]
        out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO_ROOT)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps(result), flush=True)
        results.append(result)
    default = (results[0]["steps_per_second"] + results[3]["steps_per_second"]) / 2
    summary = {
        "backbone": args.backbone, "global_batch": args.batch_size,
        "M": args.num_submodels, "K": args.num_samples,
        "default_steps_per_second": default,
        "mirrored_1_vs_default": results[1]["steps_per_second"] / default,
        "mirrored_2_vs_default": results[2]["steps_per_second"] / default,
        "default_drift": results[3]["steps_per_second"] / results[0]["steps_per_second"],
    }
    print(json.dumps(summary))
    print(f"{args.backbone}, global batch {args.batch_size}, M={args.num_submodels}, "
          f"K={args.num_samples}: {default:.2f} steps/s on one device; "
          f"MirroredStrategy x1 {summary['mirrored_1_vs_default']:.2f}x, "
          f"x2 logical CPU devices {summary['mirrored_2_vs_default']:.2f}x of that "
          "(logical CPU devices add no compute: this is overhead, not speed-up).")


if __name__ == "__main__":
    main()
