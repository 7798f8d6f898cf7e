"""One-shot accelerator check: RLS speed under XLA and mixed precision, then a short real run.

Meant to run ONCE on a GPU machine (time there is scarce: the default run is
sized to finish in under 8 minutes on one H100/H200) and at a tiny size on CPU
in CI. It records:

1. the device (``tf.config.list_physical_devices("GPU")`` and
   ``tf.config.experimental.get_device_details``; on a machine without a GPU
   ``"cpu"`` and the CPU model from /proc/cpuinfo), TF/Keras versions, time;
2. images per second, on random 32x32x3 data with 10 classes, of

   * ``train_plain``: one training step of the plain network (M=1),
   * ``train_rls_<forward>``: one RLS training step (M=2 copies, K=3 sampled
     models, ``train_forward`` loop / tiled),
   * ``predict_plain``: the plain network's inference on one batch,
   * ``predict_rls_<forward>``: the defended prediction (``model(x)``, the
     mean of N=10 sampled models, ``eval_forward`` loop / tiled),

   each without and with XLA and under every mixed-precision policy asked
   for. A variant that fails (XLA cannot compile it, a dtype the layers do
   not support, float16 without a GPU) is recorded with its error and the
   run goes on; ratios between the variants follow;
3. a 2-epoch RLS training run through the library (`rls_tf.training.train`)
   on the CIFAR-10 10,000-image file, with its test accuracy and wall time
   (skipped, with the reason, when the data is absent);
4. the serving paths (issue 26): ``predict``, ``defend`` and the exported
   SavedModel of an untrained ``--serving_backbone`` (resnet9), plain and RLS
   with each forward as its ``eval_forward``, at batch 1 and ``--batch_size``
   (`serving_benchmark.measure_model`).

Variant names are ``<policy>/<xla|noxla>/<kind>``, e.g.
``mixed_bfloat16/xla/train_rls_tiled``. One JSON line is printed per
variant as it finishes, and the whole record (device, versions, args,
variants, ratios, training) is rewritten to ``--output`` after every variant,
so that a run killed by its time limit leaves its partial results.

Usage:

    python benchmarks/gpu_check.py --data_dir=../shared/data \\
        --output=benchmarks/results/gpu_check_h100.json          # the GPU run
    python benchmarks/gpu_check.py --backbone=small_cnn --backbone_width=4 \\
        --batch_size=4 --steps=1 --repeats=1 --warmup=1 \\
        --policies=float32,mixed_bfloat16 --train_epochs=1 \\
        --max_train_examples=64 --max_test_examples=32           # CI size

`main(argv)` returns the record, so tests run it in-process.
"""

import argparse
import datetime
import gc
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

import rls_tf  # noqa: E402
from rls_tf import data as rls_data  # noqa: E402
from rls_tf.models import BACKBONES  # noqa: E402
from rls_tf.models import TRAIN_FORWARDS  # noqa: E402
from rls_tf.models import build_defense  # noqa: E402
from rls_tf.models.backbones import check_backbone_options  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import keras_train_step  # noqa: E402  pylint: disable=wrong-import-position
from timing import time_calls  # noqa: E402  pylint: disable=wrong-import-position

tf.get_logger().setLevel("ERROR")  # retracing warnings are expected here

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
XLA_MODES = {"both": (False, True), "off": (False,), "on": (True,)}
INPUT_SHAPE = (32, 32, 3)
NUM_CLASSES = 10
# Error messages are cut here: the first useful line is what a reader needs.
_MAX_ERROR_CHARS = 400


# -- arguments ----------------------------------------------------------------

def _csv(value):
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_args(argv=None):
    """Parses and checks the flags; exits with a message naming a bad one."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbone", default="resnet50", help=f"one of {BACKBONES}")
    p.add_argument("--backbone_width", type=int, default=None,
                   help="the backbone's width option (small_cnn, resnet9); default: its own")
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--num_submodels", "-M", type=int, default=2, help="M of the RLS model")
    p.add_argument("--num_samples", "-K", type=int, default=3,
                   help="K, sampled models per training step")
    p.add_argument("--eval_samples", "-N", type=int, default=10,
                   help="N, sampled models averaged at inference")
    p.add_argument("--weight_decay", type=float, default=5e-4,
                   help="L2 weight decay of the kernels (the library's training default)")
    p.add_argument("--steps", type=int, default=10, help="timed calls per round")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds (median taken)")
    p.add_argument("--warmup", type=int, default=2,
                   help="untimed calls per variant (tracing / XLA compilation happen here)")
    p.add_argument("--policies", default=",".join(POLICIES),
                   help=f"comma-separated Keras mixed-precision policies, some of {POLICIES}")
    p.add_argument("--xla", default="both", help=f"one of {tuple(XLA_MODES)}")
    p.add_argument("--forwards", default="loop,tiled",
                   help=f"comma-separated RLS forwards, some of {TRAIN_FORWARDS}")
    p.add_argument("--train_epochs", type=int, default=2,
                   help="epochs of the real CIFAR-10 run (0: skip it)")
    p.add_argument("--max_train_examples", type=int, default=None)
    p.add_argument("--max_test_examples", type=int, default=None)
    p.add_argument("--data_dir", default="../shared/data",
                   help="directory holding the CIFAR-10 files (e.g. cifar10_train_10k.npz)")
    p.add_argument("--runs_dir", default=None,
                   help="keep the training run's model_dir under this directory "
                   "(default: a temporary directory, deleted afterwards)")
    p.add_argument("--output", default="results/gpu_check.json", help="JSON record path")
    p.add_argument("--budget_s", type=float, default=270.0,
                   help="start no new variant after this many seconds of the run; the "
                   "rest are recorded as skipped")
    p.add_argument("--train_deadline_s", type=float, default=360.0,
                   help="skip the training run (recorded as skipped) when the variants "
                   "end after this many seconds of the run (it takes about 1.5 min "
                   "with resnet50 on a GPU, mostly tracing)")
    p.add_argument("--serving_backbone", default="resnet9",
                   help="backbone of the serving paths' check (predict, defend, SavedModel "
                   "per forward, batch 1 and --batch_size; issue 26); 'none' skips it")
    p.add_argument("--serving_width", type=int, default=None,
                   help="width option of --serving_backbone (default: its own)")
    p.add_argument("--serving_calls", type=int, default=50,
                   help="one-image requests per latency measurement of the serving check")
    p.add_argument("--serving_deadline_s", type=float, default=450.0,
                   help="skip the serving check (recorded as skipped) when the run is "
                   "already this many seconds old")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    if args.backbone not in BACKBONES:
        p.error(f"--backbone must be one of {BACKBONES}. Received: --backbone={args.backbone!r}")
    if args.backbone_width is not None:
        if args.backbone_width < 1:
            p.error(f"--backbone_width must be >= 1. Received: "
                    f"--backbone_width={args.backbone_width}")
        try:
            check_backbone_options(args.backbone, {"width": args.backbone_width})
        except ValueError:
            p.error(f"backbone {args.backbone!r} has no width option. Received: "
                    f"--backbone_width={args.backbone_width}")
    for name, minimum in (("batch_size", 1), ("num_submodels", 2), ("num_samples", 1),
                          ("eval_samples", 1), ("steps", 1), ("repeats", 1), ("warmup", 0),
                          ("train_epochs", 0), ("max_train_examples", 1),
                          ("max_test_examples", 1)):
        value = getattr(args, name)
        if value is not None and value < minimum:
            p.error(f"--{name} must be >= {minimum}. Received: --{name}={value}")
    for name in ("budget_s", "train_deadline_s"):
        if not getattr(args, name) > 0:  # NaN too
            p.error(f"--{name} must be > 0. Received: --{name}={getattr(args, name)}")
    if args.xla not in XLA_MODES:
        p.error(f"--xla must be one of {tuple(XLA_MODES)}. Received: --xla={args.xla!r}")
    for flag, choices in (("policies", POLICIES), ("forwards", TRAIN_FORWARDS)):
        values = _csv(getattr(args, flag))
        bad = [v for v in values if v not in choices]
        if not values or bad:
            p.error(f"--{flag} must be a comma-separated list of some of {choices}. "
                    f"Received: --{flag}={getattr(args, flag)!r}")
        setattr(args, flag, list(dict.fromkeys(values)))
    return args


# -- what the run ran on ------------------------------------------------------

def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def device_info():
    """The accelerator (or "cpu"), the host CPU and the CUDA build of TF."""
    info = {"kind": "cpu", "cpu_model": _cpu_model(), "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "gpus": []}
    for gpu in tf.config.list_physical_devices("GPU"):
        entry = {"name": gpu.name}
        try:
            details = tf.config.experimental.get_device_details(gpu)
            entry["device_name"] = details.get("device_name")
            capability = details.get("compute_capability")
            entry["compute_capability"] = (".".join(map(str, capability))
                                           if capability else None)
        except Exception as err:  # noqa: BLE001 - a record, not essential
            entry["details_error"] = _error_line(err)
        info["gpus"].append(entry)
    if info["gpus"]:
        info["kind"] = "gpu"
    # On Ampere and later GPUs float32 matmuls and convolutions run as TF32
    # unless this is off: "float32" numbers mean TF32 there.
    info["tensor_float_32"] = tf.config.experimental.tensor_float_32_execution_enabled()
    build = tf.sysconfig.get_build_info()
    info["tf_build"] = {k: build.get(k) for k in
                        ("is_cuda_build", "cuda_version", "cudnn_version") if k in build}
    return info


def versions():
    return {"tensorflow": tf.__version__, "keras": keras.__version__,
            "rls_tf": rls_tf.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _error_line(err):
    """`Type: reason (node ...)` of an exception, on one line.

    TF's graph errors wrap the reason in generic lines ("Graph execution
    error:", "Detected at node ...", stack traces, "tf2xla conversion
    failed ..."), so the first line that is none of those is taken, with the
    name of the failing op when the message gives one.
    """
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    generic = ("Graph execution error", "Detected at node", "<stack traces",
               "Stack trace for op definition", "File ", "[[", "tf2xla conversion failed")
    reasons = [ln for ln in lines if not ln.startswith(generic)]
    line = reasons[0] if reasons else (lines[0] if lines else "")
    node = re.search(r"Detected at node (\S+)|\[\[\{\{node (\S+?)\}\}\]\]", str(err))
    if node:
        line += f" (node {node.group(1) or node.group(2)})"
    return f"{type(err).__name__}: {line}"[:_MAX_ERROR_CHARS]


# -- the record ---------------------------------------------------------------

class Record:
    """The run's JSON record, rewritten to `path` after every change."""

    def __init__(self, path, args):
        self.path = path
        self.started = time.perf_counter()
        self.data = {
            "what": "benchmarks/gpu_check.py: RLS images/s under XLA and mixed "
                    "precision, then a short CIFAR-10 run",
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "finished": None,
            "device": device_info(),
            "versions": versions(),
            "args": vars(args),
            "variants": [],
            "ratios": {},
            "training": None,
        }

    def elapsed(self):
        return time.perf_counter() - self.started

    def add_variant(self, entry):
        self.data["variants"].append(entry)
        print(json.dumps(entry), flush=True)
        self.write()

    def write(self):
        self.data["elapsed_s"] = round(self.elapsed(), 1)
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.data, f, indent=1)
        # Atomic: a run killed mid-write keeps the previous complete record.
        os.replace(tmp, self.path)


# -- the variants -------------------------------------------------------------

def plan(args):
    """Every variant as ``(policy, xla, kind)`` in the order they run.

    The full matrix does not fit the GPU budget with resnet50 (tracing and
    XLA compilation take most of the time), so the groups of one policy and
    one XLA setting run in the order that answers every question as early
    as possible: the first two policies of ``--policies`` without XLA
    (RLS vs plain, tiled vs loop, mixed precision vs float32), then the same
    two with XLA (XLA vs not), then the remaining policies, each without and
    with XLA. Within a group: training steps (plain, RLS per forward), then
    inference.
    """
    kinds = (["train_plain"] + [f"train_rls_{f}" for f in args.forwards]
             + ["predict_plain"] + [f"predict_rls_{f}" for f in args.forwards])

    def order(group):
        index, xla = args.policies.index(group[0]), group[1]
        return (0, xla, index) if index < 2 else (1, index, xla)

    groups = sorted(((policy, xla) for policy in args.policies
                     for xla in XLA_MODES[args.xla]), key=order)
    return [(policy, xla, kind) for policy, xla in groups for kind in kinds]


def variant_name(policy, xla, kind):
    return f"{policy}/{'xla' if xla else 'noxla'}/{kind}"


class Models:
    """The models of one policy, built on first use, compiled per XLA setting.

    The global policy must be set before a model is built (its layers take
    their dtypes from it then), so a policy's models are built after it is
    set and dropped before the next one.
    """

    def __init__(self, args):
        self.args = args
        self.models = {}      # "plain" or a forward -> model, or the build error
        self.compiled = {}    # same key -> jit_compile it was last compiled with

    def get(self, key, xla):
        """The model `key` compiled with ``jit_compile=xla``; raises its build error."""
        if key not in self.models:
            try:
                self.models[key] = self._build(key)
            except Exception as err:  # noqa: BLE001 - recorded by every variant of it
                self.models[key] = err
        model = self.models[key]
        if isinstance(model, Exception):
            raise model
        if self.compiled.get(key) != xla:
            # A fresh optimizer per compile: the previous variant's state
            # does not matter for the timing.
            extra = {} if key == "plain" else {"eval_forward": key}
            model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                          jit_compile=xla, **extra)
            self.compiled[key] = xla
        return model

    def _build(self, key):
        args = self.args
        keras.utils.set_random_seed(args.seed)
        options = {} if args.backbone_width is None else {"width": args.backbone_width}
        common = dict(input_shape=INPUT_SHAPE, num_classes=NUM_CLASSES,
                      weight_decay=args.weight_decay, backbone_options=options,
                      eval_samples=args.eval_samples)
        if key == "plain":
            return build_defense("plain", args.backbone, **common)
        return build_defense("rls", args.backbone, num_submodels=args.num_submodels,
                             num_samples=args.num_samples, train_forward=key, **common)


def _timed_fn(models, kind, xla, x, y):
    """``(callable, jit_compile)``: what variant `kind` times, and whether under XLA."""
    key = kind.rsplit("_", 1)[1]  # "plain", "loop" or "tiled"
    model = models.get(key, xla)
    if kind.startswith("train_"):
        return keras_train_step(model, x, y), bool(model.jit_compile)
    # The defended prediction exactly as `model(x)` computes it (the mean of
    # N sampled models through `eval_forward`), traced once.
    predict = tf.function(lambda t: model(t, training=False), jit_compile=xla)
    xt = tf.constant(x)
    return (lambda: predict(xt)), xla


def run_variants(args, record):
    """Times every planned variant; each failure is recorded, never raised."""
    rng = np.random.default_rng(args.seed)
    x = rng.uniform(-1, 1, (args.batch_size, *INPUT_SHAPE)).astype("float32")
    y = rng.integers(0, NUM_CLASSES, (args.batch_size,)).astype("int32")
    original_policy = keras.mixed_precision.global_policy().name
    models, current = None, None
    try:
        for policy, xla, kind in plan(args):
            entry = {"name": variant_name(policy, xla, kind), "policy": policy,
                     "xla": xla, "kind": kind, "batch_size": args.batch_size}
            if kind.startswith("train_rls"):
                entry.update(M=args.num_submodels, K=args.num_samples)
            elif kind.startswith("predict_rls"):
                entry.update(M=args.num_submodels, N=args.eval_samples)
            if record.elapsed() > args.budget_s:
                entry["skipped"] = (f"budget: {record.elapsed():.0f} s spent, "
                                    f"--budget_s={args.budget_s:g}")
                record.add_variant(entry)
                continue
            if policy != current:
                models, current = None, policy
                keras.backend.clear_session()
                gc.collect()
                try:
                    keras.mixed_precision.set_global_policy(policy)
                    models = Models(args)
                except Exception as err:  # noqa: BLE001 - recorded per variant
                    models = err
            start = time.perf_counter()
            try:
                if isinstance(models, Exception):
                    raise models
                fn, jit = _timed_fn(models, kind, xla, x, y)
                # Keras silently falls back to no XLA for some models: record what ran.
                entry["jit_compile"] = jit
                entry["setup_s"] = round(time.perf_counter() - start, 2)
                timing = time_calls(fn, warmup=args.warmup, steps=args.steps,
                                    repeats=args.repeats)
                entry.update(
                    step_s=round(timing.seconds, 6),
                    images_per_s=round(args.batch_size / timing.seconds, 2),
                    spread=round(timing.spread, 3),
                    warmup_s=round(timing.warmup_seconds, 2),
                    rounds_s=[round(r, 6) for r in timing.rounds])
            except Exception as err:  # noqa: BLE001 - any failure is a result here
                entry["error"] = _error_line(err)
            entry["wall_s"] = round(time.perf_counter() - start, 2)
            record.add_variant(entry)
    finally:
        keras.mixed_precision.set_global_policy(original_policy)
        keras.backend.clear_session()
        gc.collect()


# -- ratios -------------------------------------------------------------------

def compute_ratios(variants, args):
    """Time ratios between measured variants (< 1: the first one is faster).

    Per image and per step are the same here (every variant runs the same
    batch). A ratio is None when either side failed or was skipped.

    Returns:
        ``{"<policy>/<xla|noxla>": {...}, "xla_vs_noxla": {...},
        "vs_float32": {...}}`` with, per policy and XLA setting,
        ``train_rls_<f>_vs_plain`` (an RLS step against a plain step; K=3
        sampled models make about 3 the naive cost), ``predict_rls_<f>_vs_plain``
        (N=10: about 10 naively), ``train_tiled_vs_loop`` and
        ``predict_tiled_vs_loop``; ``xla_vs_noxla["<policy>/<kind>"]``;
        ``vs_float32["<policy>/<xla>/<kind>"]`` for the mixed policies.
    """
    seconds = {v["name"]: v.get("step_s") for v in variants}

    def ratio(a, b):
        ta, tb = seconds.get(a), seconds.get(b)
        return round(ta / tb, 4) if ta and tb else None

    ratios = {}
    kinds = sorted({v["kind"] for v in variants})
    for policy in args.policies:
        for xla in XLA_MODES[args.xla]:
            tag = f"{policy}/{'xla' if xla else 'noxla'}"
            group = {}
            for f in args.forwards:
                group[f"train_rls_{f}_vs_plain"] = ratio(f"{tag}/train_rls_{f}",
                                                         f"{tag}/train_plain")
                group[f"predict_rls_{f}_vs_plain"] = ratio(f"{tag}/predict_rls_{f}",
                                                           f"{tag}/predict_plain")
            if {"loop", "tiled"} <= set(args.forwards):
                for what in ("train", "predict"):
                    group[f"{what}_tiled_vs_loop"] = ratio(f"{tag}/{what}_rls_tiled",
                                                           f"{tag}/{what}_rls_loop")
            ratios[tag] = group
    if args.xla == "both":
        ratios["xla_vs_noxla"] = {
            f"{policy}/{kind}": ratio(f"{policy}/xla/{kind}", f"{policy}/noxla/{kind}")
            for policy in args.policies for kind in kinds}
    if "float32" in args.policies and len(args.policies) > 1:
        ratios["vs_float32"] = {
            f"{policy}/{tag}/{kind}": ratio(f"{policy}/{tag}/{kind}", f"float32/{tag}/{kind}")
            for policy in args.policies if policy != "float32"
            for tag in ("xla" if x else "noxla" for x in XLA_MODES[args.xla])
            for kind in kinds}
    return ratios


# -- the real training run ----------------------------------------------------

def run_training(args, elapsed=0.0):
    """Trains RLS on CIFAR-10 through `rls_tf.training.train`; returns its record.

    Args:
        args: the parsed flags.
        elapsed: seconds the run has taken so far (against
            ``--train_deadline_s``).
    """
    from rls_tf.training import TrainConfig  # pylint: disable=import-outside-toplevel
    from rls_tf.training import train  # pylint: disable=import-outside-toplevel

    entry = {"dataset": "cifar10", "backbone": args.backbone,
             "backbone_width": args.backbone_width, "epochs": args.train_epochs,
             "batch_size": args.batch_size, "seed": args.seed,
             "policy": "float32", "xla": False, "data_dir": args.data_dir}
    if args.train_epochs == 0:
        entry["skipped"] = "--train_epochs=0"
        return entry
    if elapsed > args.train_deadline_s:
        entry["skipped"] = (f"deadline: {elapsed:.0f} s spent, "
                            f"--train_deadline_s={args.train_deadline_s:g}")
        return entry
    data_dir = os.path.abspath(os.path.expanduser(args.data_dir))
    if not os.path.isdir(data_dir):
        entry["skipped"] = f"no data: --data_dir={args.data_dir!r} is not a directory"
        return entry
    try:
        # The same lookup `train` makes, without downloading: absent data is
        # a skip here, not a failure.
        for split in ("train", "test"):
            rls_data.load_numpy("cifar10", split, data_dir, max_examples=1, download=False)
    except (OSError, ValueError, rls_data.DatasetUnavailableError, ImportError) as err:
        entry["skipped"] = f"no CIFAR-10 data in {data_dir}: {_error_line(err)}"
        return entry

    keep = args.runs_dir is not None
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    if keep:
        model_dir = os.path.join(args.runs_dir, f"gpu_check_{args.backbone}_{stamp}")
    else:
        model_dir = os.path.join(tempfile.mkdtemp(prefix="gpu_check_"), "run")
    entry["model_dir"] = model_dir if keep else None
    config = TrainConfig(
        dataset="cifar10", backbone=args.backbone, backbone_width=args.backbone_width,
        defense="rls", num_submodels=args.num_submodels, num_samples=args.num_samples,
        eval_samples=args.eval_samples, epochs=args.train_epochs,
        batch_size=args.batch_size, seed=entry["seed"], data_dir=data_dir,
        model_dir=model_dir, max_train_examples=args.max_train_examples,
        max_test_examples=args.max_test_examples, verbose=2)
    entry["train_forward"] = config.train_forward
    start = time.perf_counter()
    try:
        metrics = train(config)
        history = metrics.get("history") or {}
        entry.update(
            test_accuracy=round(metrics["test_accuracy"], 4),
            test_loss=round(metrics["test_loss"], 4),
            test_examples=metrics["test_examples"],
            train_accuracy_last_epoch=(round(history["accuracy"][-1], 4)
                                       if history.get("accuracy") else None),
            # `fit` alone, first-epoch tracing included.
            train_s=round(metrics["train_seconds_this_run"], 1))
    except Exception as err:  # noqa: BLE001 - recorded, the record is still written
        entry["error"] = _error_line(err)
    finally:
        if not keep:
            shutil.rmtree(os.path.dirname(model_dir), ignore_errors=True)
    # Data loading, fit, evaluation with N samples and saving the model.
    entry["wall_s"] = round(time.perf_counter() - start, 1)
    return entry


# -- serving paths (issue 26) --------------------------------------------------

def run_serving(args, elapsed=0.0):
    """predict, defend and the SavedModel of plain and of RLS per forward.

    `serving_benchmark.measure_model` on an untrained ``--serving_backbone``
    (float32): interleaved batch rounds at ``--batch_size`` and one-image
    latencies, for the plain network and for RLS with each of ``--forwards``
    as its ``eval_forward`` (loop shares prefixes; tiled is one call on the
    batch tiled N times).
    """
    if args.serving_backbone == "none":
        return {"skipped": "--serving_backbone=none"}
    if elapsed > args.serving_deadline_s:
        return {"skipped": f"the run was {elapsed:.0f} s old, past --serving_deadline_s="
                           f"{args.serving_deadline_s:g}"}
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import serving_benchmark  # pylint: disable=import-outside-toplevel
    keras.mixed_precision.set_global_policy("float32")
    options = {} if args.serving_width is None else {"width": args.serving_width}
    settings = argparse.Namespace(eval_samples=args.eval_samples, batch_size=args.batch_size,
                                  calls=args.serving_calls, threads=4, repeats=args.repeats,
                                  tflite=False)
    out = {"backbone": args.serving_backbone, "backbone_options": options, "paths": {}}
    keys = ["plain"] + [f for f in args.forwards if f in ("loop", "tiled")]
    for key in keys:
        keras.utils.set_random_seed(args.seed)
        common = dict(input_shape=INPUT_SHAPE, num_classes=NUM_CLASSES,
                      backbone_options=options, eval_samples=args.eval_samples)
        try:
            if key == "plain":
                model = build_defense("plain", args.serving_backbone, **common)
            else:
                model = build_defense("rls", args.serving_backbone,
                                      num_submodels=args.num_submodels, **common)
                model.eval_forward = key
            with tempfile.TemporaryDirectory() as workdir:
                out["paths"][key] = serving_benchmark.measure_model(model, settings, workdir)
        except Exception as err:  # noqa: BLE001 - recorded, the run goes on
            out["paths"][key] = {"error": _error_line(err)}
        print(json.dumps({"serving": key, **out["paths"][key]}), flush=True)
        gc.collect()
    return out


# -- main ---------------------------------------------------------------------

def _summary(data):
    """A human table of the record, printed at the end."""
    device = data["device"]
    names = ", ".join(g.get("device_name") or g["name"] for g in device["gpus"])
    lines = ["", f"=== gpu_check on {device['kind']} ({names or device['cpu_model']}), "
             f"{data['elapsed_s']} s ==="]
    for v in data["variants"]:
        if "images_per_s" in v:
            what = f"{v['images_per_s']:10.1f} images/s  (warm-up {v['warmup_s']} s)"
        else:
            what = v.get("error") or f"skipped: {v.get('skipped')}"
        lines.append(f"{v['name']:42s} {what}")
    t = data["training"] or {}
    if "test_accuracy" in t:
        lines.append(f"training: {t['epochs']} epochs, test accuracy {t['test_accuracy']} "
                     f"on {t['test_examples']} images, {t['wall_s']} s")
    else:
        lines.append(f"training: {t.get('error') or 'skipped: ' + str(t.get('skipped'))}")
    serving = data.get("serving") or {}
    for key, m in (serving.get("paths") or {}).items():
        if "predict_s" in m:
            lines.append(f"serving {key:6s} predict {1e3 * m['predict_s']:.1f} ms, defend "
                         f"{m['defend_vs_predict']:.2f}x, SavedModel "
                         f"{m['saved_model_vs_predict']:.2f}x predict; 1-image p50 "
                         f"{m['saved_model_latency']['p50_ms']:.1f} ms")
        else:
            lines.append(f"serving {key}: {m.get('error')}")
    if "skipped" in serving:
        lines.append(f"serving: skipped: {serving['skipped']}")
    return "\n".join(lines)


def main(argv=None):
    """Runs the check; returns the record (also written to ``--output``)."""
    args = parse_args(sys.argv[1:] if argv is None else list(argv))
    record = Record(args.output, args)
    record.write()
    run_variants(args, record)
    record.data["ratios"] = compute_ratios(record.data["variants"], args)
    record.write()
    record.data["training"] = run_training(args, record.elapsed())
    print(json.dumps({"training": record.data["training"]}), flush=True)
    record.write()
    record.data["serving"] = run_serving(args, record.elapsed())
    record.data["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds")
    record.write()
    print(_summary(record.data), flush=True)
    return record.data


if __name__ == "__main__":
    main()
