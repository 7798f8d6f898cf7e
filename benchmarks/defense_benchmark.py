"""Cost of every defense relative to the plain network: training step, inference, memory.

``python benchmarks/train_step_benchmark.py --defenses=plain,rls,ensemble,adp,rse,sap``
runs this (or ``python benchmarks/defense_benchmark.py --defenses=...``). For
each defense it builds the model with `rls_tf.models.build_defense` (SAP
wraps a plain network of the same backbone: only its inference is timed,
it is never trained) and measures, in ONE run, beside ``plain``:

* ``train_step_s``: one compiled Keras train step (``model.train_function``
  on a fixed random batch), median over rounds of interleaved blocks;
* ``inference_s``: the defender's inference on one batch,
  ``model.defend(x)`` in a ``tf.function`` (N draws for a stochastic defense,
  every member for an ensemble);
* ``peak_train_mb``: the peak memory of TF's (BFC) CPU allocator during a
  train step above what is held before it (`peak_memory`; SAP: inference),
  in a fresh subprocess per defense;
* ``*_ratio``: each relative to ``plain``, from the same run.

One JSON line per defense, then a markdown table. Wall times on a shared
2-core machine are noisy: compare ratios of one run, at low load.
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from rls_tf.models import DEFENSES  # noqa: E402
from rls_tf.models import build_defense  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import time_interleaved  # noqa: E402  pylint: disable=wrong-import-position

__all__ = ["build", "measure", "parse_args", "peak_memory"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--defenses", default="plain,rls,ensemble,adp,rse,sap")
    p.add_argument("--backbone", default="small_cnn")
    p.add_argument("--input_shape", default="28,28,1")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--eval_samples", "-N", type=int, default=10)
    p.add_argument("--ensemble_size", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--memory_steps", type=int, default=3)
    p.add_argument("--no_memory", action="store_true")
    p.add_argument("--_memory_of", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def build(name, args):
    """The compiled model of defense `name` (SAP: wraps a fresh plain network)."""
    shape = tuple(int(v) for v in args.input_shape.split(","))
    common = dict(input_shape=shape, num_classes=10, weight_decay=5e-4)
    if name == "sap":
        base = build_defense("plain", args.backbone, **common)
        model = build_defense("sap", args.backbone, base_model=base,
                              eval_samples=args.eval_samples, **common)
    else:
        options = {"eval_samples": args.eval_samples} if "eval_samples" in DEFENSES[
            name].options else {}
        if "ensemble_size" in DEFENSES[name].options:
            options["ensemble_size"] = args.ensemble_size
        model = build_defense(name, args.backbone, **common, **options)
    loss = None if name in ("ensemble", "adp") else "sparse_categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss=loss,
                  metrics=["accuracy"])
    return model


def _batch(args):
    shape = tuple(int(v) for v in args.input_shape.split(","))
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (args.batch_size, *shape)).astype("float32")
    y = rng.integers(0, 10, args.batch_size).astype("int64")
    return x, y


def _train_fn(model, x, y):
    iterator = iter(tf.data.Dataset.from_tensors((x, y)).repeat())
    model.make_train_function()

    def step():
        logs = model.train_function(iterator)
        np.asarray(logs["loss"] if isinstance(logs, dict) else logs)

    return step


def _infer_fn(model, x):
    fn = tf.function(model.defend)
    x = tf.constant(x)

    def step():
        fn(x).numpy()

    return step


def _time(fns, args):
    """Median per-call seconds of interleaved blocks of every function."""
    timed = time_interleaved(fns, args.warmup, args.steps, args.repeats, order="alternate")
    return {k: float(np.median(t.rounds)) for k, t in timed.items()}


def peak_memory(name, args):
    """Peak TF allocator memory (MB) of a train step above what was held before it.

    Runs in a subprocess started with ``TF_CPU_ALLOCATOR_USE_BFC=true`` (TF's
    CPU allocator then keeps statistics): after one traced step the peak is
    reset, a few steps run, and the figure is their peak minus the memory
    held before them (activations, gradients and temporaries of a step; the
    weights and optimizer slots are held before). SAP: inference steps.
    """
    model = build(name, args)
    x, y = _batch(args)
    step = _infer_fn(model, x) if name == "sap" else _train_fn(model, x, y)
    step()  # traces and creates the optimizer slots
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    tf.config.experimental.reset_memory_stats("CPU:0")
    for _ in range(args.memory_steps):
        step()
    return (tf.config.experimental.get_memory_info("CPU:0")["peak"] - before) / 2**20


def _memory_in_subprocess(name, argv):
    env = {**os.environ, "TF_CPU_ALLOCATOR_USE_BFC": "true"}
    out = subprocess.run([sys.executable, os.path.abspath(__file__), *argv,
                          f"--_memory_of={name}"], capture_output=True, text=True, check=True,
                         env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_train_mb"]


def measure(args, argv=()):
    names = [n for n in args.defenses.split(",") if n]
    if "plain" not in names:
        names.insert(0, "plain")
    x, y = _batch(args)
    models = {name: build(name, args) for name in names}
    train = {name: _train_fn(m, x, y) for name, m in models.items() if name != "sap"}
    infer = {name: _infer_fn(m, x) for name, m in models.items()}
    started = time.time()
    load = os.getloadavg()[0]
    train_s = _time(train, args)
    infer_s = _time(infer, args)
    results = []
    for name in names:
        row = {"defense": name, "backbone": args.backbone, "batch_size": args.batch_size,
               "eval_samples": args.eval_samples, "ensemble_size": args.ensemble_size,
               "train_step_s": train_s.get(name), "inference_s": infer_s[name]}
        row["train_step_ratio"] = (None if name not in train_s
                                   else train_s[name] / train_s["plain"])
        row["inference_ratio"] = infer_s[name] / infer_s["plain"]
        results.append(row)
    if not args.no_memory:
        memory = {name: _memory_in_subprocess(name, argv) for name in names}
        for row in results:
            row["peak_train_mb"] = memory[row["defense"]]
            row["peak_train_ratio"] = (memory[row["defense"]] / memory["plain"]
                                       if memory["plain"] > 0 else None)
    for row in results:
        row["load_average_start"] = load
        row["seconds"] = time.time() - started
        print(json.dumps(row))
    return results


def markdown(results):
    lines = ["| defense | train step (ms) | x plain | inference (ms) | x plain | "
             "peak train memory (MB) | x plain |", "|---|---|---|---|---|---|---|"]
    for r in results:
        def fmt(v, scale=1.0, digits=1):
            return "n/a" if v is None else f"{v * scale:.{digits}f}"

        lines.append(f"| {r['defense']} | {fmt(r['train_step_s'], 1e3)} | "
                     f"{fmt(r['train_step_ratio'], digits=2)} | {fmt(r['inference_s'], 1e3)} | "
                     f"{fmt(r['inference_ratio'], digits=2)} | {fmt(r.get('peak_train_mb'))} | "
                     f"{fmt(r.get('peak_train_ratio'), digits=2)} |")
    return "\n".join(lines)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args._memory_of:  # pylint: disable=protected-access
        print(json.dumps({"peak_train_mb": peak_memory(args._memory_of, args)}))  # pylint: disable=protected-access
        return
    results = measure(args, argv=[a for a in argv if not a.startswith("--_memory_of")])
    print(markdown(results))


if __name__ == "__main__":
    main()
