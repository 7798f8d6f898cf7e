"""Serving benchmark: the exported SavedModel of each defense as a server calls it, beside predict.

For every model (``--model_dirs`` of train.py runs, or ``--tiny``: untrained
small_cnn plain and RLS models built here, the CI size) the script exports a
SavedModel (N = ``--eval_samples`` sampled models per request; an ensemble
averages its members whatever N), loads it once and measures, each model in
its own fresh process (so that its peak memory is its own):

* at batch ``--batch_size``, in interleaved rounds (`timing.time_interleaved`,
  so their ratios share the machine's conditions): ``predict``
  (``model.predict_on_batch``, the Keras path), ``defend`` (``model.defend``
  in a ``tf.function``, the harness's defender), ``saved_model`` (the
  ``serving_default`` signature) and, with ``--tflite``, ``tflite`` (the
  interpreter's signature runner on the TFLite export);
* latency of one-image requests (p50, p99 over ``--calls``) to the signature
  and, with ``--tflite``, to the interpreter;
* ``concurrent``: one-image requests per second and batch images per second
  from ``--threads`` threads calling the one loaded signature (the way a
  model server calls it);
* the process's peak resident memory.

Every time is a median; the ratios (each model against plain, served
against predict) come from one run on one machine, as the other benchmarks'
do.

Usage:

    python benchmarks/serving_benchmark.py \\
        --model_dirs=plain=runs/mnist_plain,rls=runs/mnist_rls --tflite \\
        --output=benchmarks/results/serving_<machine>.json
    python benchmarks/serving_benchmark.py --tiny --calls=20 --output=/tmp/serving.json
"""

import argparse
import concurrent.futures
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import time_interleaved  # noqa: E402  pylint: disable=wrong-import-position

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
    p.add_argument("--in_process", action="store_true",
                   help="Measure every model in this process (faster; peak memory then "
                        "accumulates over the models).")
    p.add_argument("--eval_forward", default=None, choices=("loop", "tiled"),
                   help="Set the RLS models' eval_forward before exporting (default: the "
                        "model's own; 'loop' shares prefixes). Compare both on a GPU.")
    p.add_argument("--only", default=None,
                   help="Measure only the model of this name (what each per-model process runs).")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    args.argv = argv
    if not args.tiny and not args.model_dirs:
        p.error("pass --model_dirs=NAME=DIR,... or --tiny")
    for name in ("eval_samples", "batch_size", "calls", "threads", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1. Received: --{name}={getattr(args, name)}")
    return args


TINY = (("plain", 1), ("rls", 2))


def _specs(args):
    """``{name: spec}``: a run directory, or the M of a tiny model built here."""
    if args.tiny:
        return dict(TINY)
    out = {}
    for entry in args.model_dirs.split(","):
        name, sep, directory = entry.partition("=")
        if not sep or not name or not directory:
            raise ValueError(f"--model_dirs entries must be NAME=DIR. Received: {entry!r}")
        out[name] = directory
    return out


def _load(spec, args):
    if isinstance(spec, int):
        model = rls_tf.models.build_model("small_cnn", num_submodels=spec,
                                          input_shape=(28, 28, 1))
    else:
        model = rls_tf.models.load_model_dir(spec, flag="model_dirs")[0]
    # predict runs the model's own N: the same N as defend and the export.
    if hasattr(model, "eval_samples") and model.defender_draws() is None:
        model.eval_samples = args.eval_samples
    if args.eval_forward and hasattr(model, "eval_forward"):
        model.eval_forward = args.eval_forward
    return model


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
    """Calls per second of `fn` from a pool of `threads` threads (after one warm call each)."""
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: fn(), range(threads)))  # warm every thread
        start = time.perf_counter()
        list(pool.map(lambda _: fn(), range(calls)))
    return calls / (time.perf_counter() - start)


def _tflite_runner(model, args, workdir):
    """The TFLite export's signature runner and its input name, or ``{"skipped": why}``."""
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
    return runner, next(iter(runner.get_input_details()))


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
    fns = {"predict": lambda: model.predict_on_batch(batch),
           "defend": lambda: defend(batch),
           "saved_model": lambda: signature(images=batch)["probabilities"]}
    tflite = _tflite_runner(model, args, workdir) if args.tflite else None
    if isinstance(tflite, tuple):
        runner, name = tflite
        batch_np, one_np = batch.numpy(), one.numpy()
        fns["tflite"] = lambda: runner(**{name: batch_np})
    timings = time_interleaved(fns, warmup=2, steps=1, repeats=args.repeats)
    out = {f"{key}_s": t.wall for key, t in timings.items()}
    out["spread"] = {key: t.spread for key, t in timings.items()}
    out["images_per_s"] = {key: args.batch_size / t.wall for key, t in timings.items()}
    out["saved_model_latency"] = _latencies(
        lambda: signature(images=one)["probabilities"].numpy(), args.calls)
    out["concurrent_requests_per_s"] = _concurrent(
        lambda: signature(images=one)["probabilities"].numpy(), args.calls, args.threads)
    batch_calls = max(2 * args.threads, args.calls // 10)
    out["concurrent_batch_images_per_s"] = args.batch_size * _concurrent(
        lambda: signature(images=batch)["probabilities"].numpy(), batch_calls, args.threads)
    out["stochastic"] = bool(model.is_stochastic)
    out["eval_forward"] = getattr(model, "eval_forward", None)
    out["saved_model_vs_predict"] = out["saved_model_s"] / out["predict_s"]
    out["defend_vs_predict"] = out["defend_s"] / out["predict_s"]
    if isinstance(tflite, tuple):
        out["tflite_vs_predict"] = out["tflite_s"] / out["predict_s"]
        out["tflite_latency"] = _latencies(lambda: runner(**{name: one_np}), args.calls)
    elif tflite is not None:
        out["tflite_latency"] = tflite
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def _measure_spec(spec, args):
    model = _load(spec, args)
    with tempfile.TemporaryDirectory() as workdir:
        return measure_model(model, args, workdir)


def measure(args):
    """``{"machine", "settings", "models": {name: measurements}, "vs_plain"}``."""
    results = {"machine": {"platform": platform.platform(), "processor": _cpu_model(),
                           "cpus": os.cpu_count(), "tensorflow": tf.__version__,
                           "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
                           "load_average_at_start": list(os.getloadavg())},
               "settings": {k: v for k, v in vars(args).items()
                            if k not in ("output", "argv", "only", "in_process")},
               "models": {}}
    specs = _specs(args)
    if args.only is not None:
        if args.only not in specs:
            raise ValueError(f"--only must name one of {sorted(specs)}. Received: "
                             f"--only={args.only!r}")
        specs = {args.only: specs[args.only]}
    for name, spec in specs.items():
        if args.in_process:
            results["models"][name] = _measure_spec(spec, args)
        else:
            results["models"][name] = _measure_in_subprocess(name, args)
    plain = results["models"].get("plain")
    if plain:
        keys = [k for k in ("predict_s", "defend_s", "saved_model_s", "tflite_s") if k in plain]
        results["vs_plain"] = {name: {key: m[key] / plain[key] for key in keys if key in m}
                               for name, m in results["models"].items()}
    return results


def _measure_in_subprocess(name, args):
    """One model measured by this script in a fresh process.

    Its peak memory is then its own, and no model's graphs or thread pools
    slow down the next one.
    """
    with tempfile.TemporaryDirectory() as workdir:
        output = os.path.join(workdir, "one.json")
        argv = [a for a in args.argv if not a.startswith(("--output", "--only", "--in_process"))]
        subprocess.run([sys.executable, os.path.abspath(__file__), *argv, "--in_process",
                        f"--only={name}", f"--output={output}"], check=True,
                       stdout=subprocess.DEVNULL)
        with open(output, encoding="utf-8") as f:
            return json.load(f)["models"][name]


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def markdown(results):
    """The results as a Markdown table (ms per batch; ratios to predict and to plain)."""
    batch = results["settings"]["batch_size"]
    lines = [f"| model | predict (ms / {batch}) | defend / predict | SavedModel / predict "
             "| TFLite / predict | SavedModel x plain | 1-image p50 / p99 (ms) "
             "| TFLite 1-image p50 (ms) | concurrent req/s | concurrent images/s "
             "| peak RSS (MB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    vs_plain = results.get("vs_plain", {})
    for name, m in results["models"].items():
        lat = m["saved_model_latency"]
        tfl = m.get("tflite_latency")
        tfl_p50 = f"{tfl['p50_ms']:.1f}" if tfl and "p50_ms" in tfl else "—"
        tfl_ratio = f"{m['tflite_vs_predict']:.2f}" if "tflite_vs_predict" in m else "—"
        x_plain = (f"{vs_plain[name]['saved_model_s']:.2f}" if name in vs_plain else "—")
        lines.append(f"| {name} | {1e3 * m['predict_s']:.1f} | {m['defend_vs_predict']:.2f} | "
                     f"{m['saved_model_vs_predict']:.2f} | {tfl_ratio} | {x_plain} | "
                     f"{lat['p50_ms']:.1f} / {lat['p99_ms']:.1f} | {tfl_p50} | "
                     f"{m['concurrent_requests_per_s']:.0f} | "
                     f"{m['concurrent_batch_images_per_s']:.0f} | {m['peak_rss_mb']:.0f} |")
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
