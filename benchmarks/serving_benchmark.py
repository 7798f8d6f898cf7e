"""Serving benchmark: the exported SavedModel of each defense as a server calls it, beside predict.

For every model (``--model_dirs`` of train.py runs, or ``--tiny``: untrained
small_cnn plain and RLS models built here, the CI size) the script exports a
SavedModel (N = ``--eval_samples`` sampled models per request), loads it once
and measures, in one process:

* ``predict``: ``model.predict_on_batch`` at batch ``--batch_size`` (the
  Keras path, prefix sharing on);
* ``defend``: ``model.defend`` in a ``tf.function`` (the interface's
  defender inference) at the same batch;
* ``saved_model``: the ``serving_default`` signature at the same batch;
* latency of one-image requests to the signature (p50, p99 over ``--calls``);
* ``concurrent``: requests per second from ``--threads`` threads calling the
  one loaded signature (the way a model server calls it);
* ``tflite`` (``--tflite``, where ``ai_edge_litert`` is installed): the
  interpreter's one-image latency (p50).

Every time is a median (`benchmarks/timing.py`); the ratios (each model
against plain, and served against predict) come from one run on one machine,
as the other benchmarks' do. The peak resident memory of the process after
each model is recorded too.

Usage:

    python benchmarks/serving_benchmark.py \\
        --model_dirs=plain=runs/mnist_plain,rls=runs/mnist_rls \\
        --output=benchmarks/results/serving_<machine>.json
    python benchmarks/serving_benchmark.py --tiny --calls=20 --output=/tmp/serving.json
"""

import argparse
import concurrent.futures
import json
import os
import platform
import resource
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import time_calls  # noqa: E402  pylint: disable=wrong-import-position

import rls_tf.models  # noqa: E402  pylint: disable=wrong-import-position
from rls_tf.export import export_saved_model  # noqa: E402  pylint: disable=wrong-import-position
from rls_tf.export import export_tflite  # noqa: E402  pylint: disable=wrong-import-position


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model_dirs", default=None,
                   help="NAME=DIR,... of train.py runs (one named plain is the reference).")
    p.add_argument("--tiny", action="store_true",
                   help="Untrained small_cnn plain and rls models built here (CI size).")
    p.add_argument("--eval_samples", type=int, default=10, help="N of the exports.")
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--calls", type=int, default=200, help="One-image requests per latency run.")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5, help="Timing rounds of the batch calls.")
    p.add_argument("--tflite", action="store_true", help="Also time the TFLite export.")
    p.add_argument("--output", default=None, help="JSON file to write.")
    args = p.parse_args(argv)
    if not args.tiny and not args.model_dirs:
        p.error("pass --model_dirs=NAME=DIR,... or --tiny")
    for name in ("eval_samples", "batch_size", "calls", "threads", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1. Received: --{name}={getattr(args, name)}")
    return args


def _models(args):
    if args.tiny:
        return {name: rls_tf.models.build_model("small_cnn", num_submodels=m,
                                                input_shape=(28, 28, 1),
                                                eval_samples=args.eval_samples)
                for name, m in (("plain", 1), ("rls", 2))}
    out = {}
    for entry in args.model_dirs.split(","):
        name, sep, directory = entry.partition("=")
        if not sep or not name or not directory:
            raise ValueError(f"--model_dirs entries must be NAME=DIR. Received: {entry!r}")
        out[name] = rls_tf.models.load_model_dir(directory, flag="model_dirs")[0]
    return out


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _latencies(fn, calls):
    fn()  # warm
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return {"p50_ms": 1e3 * float(np.percentile(out, 50)),
            "p99_ms": 1e3 * float(np.percentile(out, 99))}


def _concurrent(fn, calls, threads):
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: fn(), range(threads)))  # warm every thread
        start = time.perf_counter()
        list(pool.map(lambda _: fn(), range(calls)))
    return calls / (time.perf_counter() - start)


def _tflite_latency(model, args, workdir):
    try:
        from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
    except ImportError:
        return {"skipped": "ai_edge_litert is not installed"}
    path = os.path.join(workdir, "model.tflite")
    try:
        export_tflite(model, path, eval_samples=args.eval_samples)
    except ValueError as e:  # e.g. a defense whose randomness has no builtin op
        return {"skipped": str(e)}
    runner = Interpreter(model_path=path).get_signature_runner()
    image = np.zeros((1, *model.image_shape), np.float32)
    name = next(iter(runner.get_input_details()))
    return _latencies(lambda: runner(**{name: image}), args.calls)


def measure_model(model, args, workdir):
    """The measurements of one model (see the module docstring)."""
    shape = tuple(model.image_shape)
    rng = np.random.default_rng(0)
    batch = tf.constant(rng.uniform(-1, 1, (args.batch_size, *shape)), tf.float32)
    one = tf.constant(rng.uniform(-1, 1, (1, *shape)), tf.float32)
    path = export_saved_model(model, os.path.join(workdir, "serving"),
                              eval_samples=args.eval_samples)
    signature = tf.saved_model.load(path).signatures["serving_default"]
    defend = tf.function(lambda x: model.defend(x, args.eval_samples))

    def timed(fn):
        return time_calls(fn, warmup=2, steps=1, repeats=args.repeats).seconds

    out = {
        "predict_s": timed(lambda: model.predict_on_batch(batch)),
        "defend_s": timed(lambda: defend(batch)),
        "saved_model_s": timed(lambda: signature(images=batch)["probabilities"]),
        "saved_model_latency": _latencies(
            lambda: signature(images=one)["probabilities"].numpy(), args.calls),
        "concurrent_requests_per_s": _concurrent(
            lambda: signature(images=one)["probabilities"].numpy(), args.calls,
            args.threads),
        "stochastic": bool(model.is_stochastic),
    }
    out["saved_model_vs_predict"] = out["saved_model_s"] / out["predict_s"]
    out["defend_vs_predict"] = out["defend_s"] / out["predict_s"]
    if args.tflite:
        out["tflite_latency"] = _tflite_latency(model, args, workdir)
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def measure(args):
    """``{"machine", "settings", "models": {name: measurements}, "vs_plain"}``."""
    results = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                           "cpus": os.cpu_count(), "tensorflow": tf.__version__},
               "settings": {k: v for k, v in vars(args).items() if k != "output"},
               "models": {}}
    for name, model in _models(args).items():
        with tempfile.TemporaryDirectory() as workdir:
            results["models"][name] = measure_model(model, args, workdir)
    plain = results["models"].get("plain")
    if plain:
        results["vs_plain"] = {
            name: {key: m[key] / plain[key] for key in ("predict_s", "defend_s",
                                                          "saved_model_s")}
            for name, m in results["models"].items()}
    return results


def markdown(results):
    lines = ["| model | predict (ms) | defend (ms) | SavedModel (ms) | SavedModel / predict "
             "| 1-image p50 / p99 (ms) | concurrent req/s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, m in results["models"].items():
        lat = m["saved_model_latency"]
        lines.append(f"| {name} | {1e3 * m['predict_s']:.1f} | {1e3 * m['defend_s']:.1f} | "
                     f"{1e3 * m['saved_model_s']:.1f} | {m['saved_model_vs_predict']:.2f} | "
                     f"{lat['p50_ms']:.1f} / {lat['p99_ms']:.1f} | "
                     f"{m['concurrent_requests_per_s']:.0f} |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    results = measure(args)
    print(markdown(results))
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
        print(f"wrote {args.output}")
    return results


if __name__ == "__main__":
    main()
