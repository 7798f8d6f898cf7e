"""Speed of RLS group training and N-sample inference against the plain network.

For every backbone it prints ONE JSON line (then a human summary at the end):

* ``plain_step_s``: one training step of the M=1 model (the plain network,
  built by `rls_tf.models.build_model` with ``num_submodels=1``);
  ``keras_plain_step_s``: the same network rebuilt from stock Keras layers
  (Conv2D + BatchNormalization + Activation, Dense), as a sanity check that
  the M=1 RLS layers cost what the Keras layers cost.
* ``rls_step_s`` (the shipped default ``train_forward`` of `RLSModel`),
  ``rls_loop_step_s`` and ``rls_tiled_step_s``: one `RLSModel.train_step`
  with M copies and K samples (default M=2, K=3).
* ``naive_step_s``: a hand-written reference, the way a user would first write
  group training: one ``tf.function`` with K separate calls of the M=2
  network inside one ``GradientTape``, mean of the K softmax outputs, sparse
  cross-entropy + regularization losses, ``optimizer.apply``.
* ratios: ``train_step_ratio = rls_step_s / (K * plain_step_s)`` (also
  ``loop_ratio``, ``tiled_ratio``), ``vs_naive_ratio = rls_step_s /
  naive_step_s`` (also ``loop_vs_naive``, ``tiled_vs_naive``). Without the
  ``shipped`` variant in ``--variants`` (the default) the shipped step is the
  ``loop``/``tiled`` variant equal to the shipped default (the same model).
* inference on one batch: ``plain_predict_s`` (M=1 model), ``rls_predict_s``
  (the shipped path: ``model(x, training=False)``, the mean of N sampled
  models; ``shipped_eval_forward`` says how the library runs them),
  ``rls_predict_tiled_s`` (``sample_outputs(x, N)``: ONE network call on the
  batch tiled N times), ``rls_predict_loop_s`` (N separate single-sample
  network calls, averaged); ``predict_ratio = rls_predict_s / (N *
  plain_predict_s)``, ``predict_tiled_ratio``, ``predict_loop_ratio`` likewise,
  ``predict_tiled_vs_loop = rls_predict_tiled_s / rls_predict_loop_s``.
* adversarial training (``--adv_train_steps=S``, 0: off): in the same rounds
  as the clean steps, one PGD adversarial-training step (`rls_tf.adversarial`,
  S attack steps at ``--adv_eps``) of the plain model (``plain_adv_step_s``)
  and of the shipped RLS model crafting against the mean of its K paths
  (``rls_adv_step_s``) or against one of them (``rls_adv_one_step_s``);
  ``plain_adv_ratio = plain_adv_step_s / plain_step_s``, ``rls_adv_ratio``
  and ``rls_adv_one_ratio`` against ``rls_step_s``. S + 1 is the naive
  bound (each attack step a forward and a backward pass); measured lower,
  since the attack's passes run in inference mode and its backward pass
  computes the input's gradient only, not the weights'.
* ``cpu_time`` / ``cpu_time_predict``: the same from process CPU time (all
  threads); far less sensitive than wall time to other processes on the
  machine, but it also counts threads that spin while waiting.

What is timed (identical for every training variant): the compiled Keras
train function, ``model.train_function(iterator)``, over an iterator of
``tf.data.Dataset.from_tensors((x, y)).repeat()`` (one fixed random batch;
``steps_per_execution=1`` unless ``--steps_per_execution``). One call = one
optimizer step incl. the compiled metrics (loss, accuracy; RLS: diversity).
The naive reference is a ``tf.function`` that pulls its batch from the same
kind of iterator. Inference: a ``tf.function`` wrapping the call, on a fixed
tensor. The first ``--warmup`` calls of each variant (tracing included) are not
timed; then ``--repeats`` rounds each time ``--steps`` consecutive calls of
every variant, the variants in a rotating (and every other round reversed)
order so that drift (CPU frequency, other load) hits all alike; a variant's
time is the median over rounds of the per-call mean of its block, and a ratio
is the median over rounds of the ratio of the two blocks of the same round.
``*_spread`` gives (max - min) / median over the rounds, a noise gauge; the
1-minute load average at start and end is recorded (other processes on a
2-core machine distort wall times a lot: compare runs only at low load).

Usage:

    python benchmarks/train_step_benchmark.py                      # default
    python benchmarks/train_step_benchmark.py --steps=1 --repeats=3 \
        --warmup=1 --predict_steps=2 --variants=plain,loop,tiled,naive  # CI
    python benchmarks/train_step_benchmark.py --backbones=small_cnn --batch_size=64
    python benchmarks/train_step_benchmark.py --backbones=small_cnn --adv_train_steps=7 \
        --variants=plain,loop --no_predict      # PGD-AT step cost against clean
    python benchmarks/train_step_benchmark.py --defenses=plain,rls,ensemble,adp,rse,sap
        # every defense against plain (benchmarks/defense_benchmark.py)

The functions are importable (``run_backbone``) so that experiments can
monkeypatch the library first and reuse the same measurement.
"""

import argparse
import inspect
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

import rls_tf  # noqa: E402
from rls_tf import adversarial  # noqa: E402
from rls_tf.adversarial import AdversarialTraining  # noqa: E402
from rls_tf.layers import RLSBatchNormalization  # noqa: E402
from rls_tf.layers import RLSConv2D  # noqa: E402
from rls_tf.layers import RLSConv2DBatchNorm  # noqa: E402
from rls_tf.layers import RLSDense  # noqa: E402
from rls_tf.models import BACKBONES  # noqa: E402
from rls_tf.models import RLSModel  # noqa: E402
from rls_tf.models import build_model  # noqa: E402
from rls_tf.models import build_network  # noqa: E402

tf.get_logger().setLevel("ERROR")  # one retracing warning per model is expected

INPUT_SHAPES = {
    "small_cnn": (28, 28, 1),
    "resnet20": (32, 32, 3),
    "resnet50": (32, 32, 3),
    "vgg16": (32, 32, 3),
}

TIMED = (
    "train: median over rounds of the mean time of one compiled "
    "model.train_function(iterator) call (1 optimizer step, metrics included, "
    "steps_per_execution={spe}) on a repeated fixed random batch; naive: a "
    "tf.function step on the same kind of iterator; predict: a tf.function "
    "of model(x, training=False) on a fixed batch"
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbones", default="small_cnn,resnet20",
                   help="comma-separated backbone names")
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--num_submodels", "-M", type=int, default=2)
    p.add_argument("--num_samples", "-K", type=int, default=3)
    p.add_argument("--eval_samples", "-N", type=int, default=10)
    p.add_argument("--num_classes", type=int, default=10)
    p.add_argument("--weight_decay", type=float, default=5e-4,
                   help="L2 weight decay of the kernels (paper: 5e-4)")
    p.add_argument("--warmup", type=int, default=3,
                   help="untimed calls per variant (tracing included)")
    p.add_argument("--steps", type=int, default=4,
                   help="timed train calls per variant per round")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds")
    p.add_argument("--predict_steps", type=int, default=5,
                   help="timed inference calls per variant per round")
    p.add_argument("--steps_per_execution", type=int, default=1)
    p.add_argument("--jit_compile", action="store_true",
                   help="compile(jit_compile=True) for the Keras variants "
                   "(XLA; tiled routing cannot compile)")
    p.add_argument("--variants", default="plain,keras_plain,loop,tiled,naive",
                   help="training variants to time, some of plain, keras_plain, "
                   "shipped, loop, tiled, naive (plain is needed by the ratios); "
                   "without 'shipped' the shipped default is the loop/tiled "
                   "variant of the same train_forward")
    p.add_argument("--no_predict", action="store_true")
    p.add_argument("--adv_train_steps", type=int, default=0,
                   help="also time PGD adversarial-training steps with this many attack "
                   "steps (plain, rls crafting on the mean of the K paths and on one); "
                   "0: off")
    p.add_argument("--adv_eps", type=float, default=0.3,
                   help="eps of the timed adversarial steps ([-1, 1] pixel units)")
    p.add_argument("--intra_op_threads", type=int, default=0)
    p.add_argument("--inter_op_threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


# -- models -------------------------------------------------------------------

def shipped_train_forward():
    """The `train_forward` a user gets from `RLSModel` without choosing."""
    return inspect.signature(RLSModel.__init__).parameters["train_forward"].default


def _optimizer():
    return keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)


def _compile(model, args):
    model.compile(optimizer=_optimizer(), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=args.jit_compile,
                  steps_per_execution=args.steps_per_execution)
    return model


def _rls_model(backbone, args, num_submodels, train_forward):
    keras.utils.set_random_seed(args.seed)
    model = build_model(
        backbone, num_submodels=num_submodels, num_classes=args.num_classes,
        input_shape=INPUT_SHAPES.get(backbone, (32, 32, 3)),
        num_samples=args.num_samples, eval_samples=args.eval_samples,
        train_forward=train_forward, weight_decay=args.weight_decay,
    )
    return _compile(model, args)


def _to_keras_layer(layer):
    """Stock Keras replacement of an M=1 RLS layer (for `clone_model`)."""
    if isinstance(layer, RLSConv2DBatchNorm):
        return keras.Sequential([
            keras.layers.Conv2D(
                layer.filters, layer.kernel_size, strides=layer.strides,
                padding=layer.padding, dilation_rate=layer.dilation_rate,
                use_bias=layer.use_bias, kernel_initializer="he_normal",
                kernel_regularizer=layer.kernel_regularizer),
            keras.layers.BatchNormalization(
                momentum=layer.momentum, epsilon=layer.epsilon,
                center=layer.center, scale=layer.scale),
            keras.layers.Activation(layer.activation),
        ], name=layer.name)
    if isinstance(layer, RLSConv2D):
        return keras.layers.Conv2D(
            layer.filters, layer.kernel_size, strides=layer.strides,
            padding=layer.padding, dilation_rate=layer.dilation_rate,
            activation=layer.activation, use_bias=layer.use_bias,
            kernel_regularizer=layer.kernel_regularizer, name=layer.name)
    if isinstance(layer, RLSBatchNormalization):
        return keras.layers.BatchNormalization(
            momentum=layer.momentum, epsilon=layer.epsilon, center=layer.center,
            scale=layer.scale, name=layer.name)
    if isinstance(layer, RLSDense):
        return keras.layers.Dense(
            layer.units, activation=layer.activation, use_bias=layer.use_bias,
            kernel_regularizer=layer.kernel_regularizer, name=layer.name)
    return layer.__class__.from_config(layer.get_config())


def _keras_plain_model(backbone, args):
    """The backbone made of stock Keras layers, or None if it cannot be cloned."""
    keras.utils.set_random_seed(args.seed)
    network = build_network(
        backbone, num_submodels=1, num_classes=args.num_classes,
        input_shape=INPUT_SHAPES.get(backbone, (32, 32, 3)),
        weight_decay=args.weight_decay)
    try:
        model = keras.models.clone_model(network, clone_function=_to_keras_layer)
    except Exception as err:  # noqa: BLE001 - a sanity check, not essential
        print(f"[{backbone}] keras_plain skipped: {err!r}", file=sys.stderr)
        return None
    return _compile(model, args)


def _naive_step(backbone, args, dataset):
    """K separate network calls in one tape; returns a no-arg step function."""
    keras.utils.set_random_seed(args.seed)
    network = build_network(
        backbone, num_submodels=args.num_submodels, num_classes=args.num_classes,
        input_shape=INPUT_SHAPES.get(backbone, (32, 32, 3)),
        weight_decay=args.weight_decay)
    optimizer = _optimizer()
    optimizer.build(network.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    num_samples = args.num_samples

    @tf.function
    def step(iterator):
        x, y = next(iterator)
        with tf.GradientTape() as tape:
            probs = [network(x, training=True) for _ in range(num_samples)]
            mean = tf.add_n(probs) / float(num_samples)
            loss = loss_fn(y, mean)
            if network.losses:
                loss = loss + tf.add_n(network.losses)
        grads = tape.gradient(loss, network.trainable_variables)
        optimizer.apply(grads, network.trainable_variables)
        return loss

    iterator = iter(dataset)
    return lambda: step(iterator)


# -- timing -------------------------------------------------------------------

# The interleaved measurement lives in benchmarks/timing.py (shared with
# defense_benchmark.py); the names stay importable from here.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import InterleavedTiming as Timing  # noqa: E402,F401  pylint: disable=wrong-import-position
from timing import sync as _sync  # noqa: E402,F401  pylint: disable=wrong-import-position
from timing import time_interleaved  # noqa: E402  pylint: disable=wrong-import-position


def _keras_train_fn(model, dataset, x, y):
    """`model.train_function` on an iterator of `dataset`, as `fit` runs it."""
    if hasattr(model, "_maybe_symbolic_build"):
        # What `fit` does before its first step: build metrics and optimizer.
        model._maybe_symbolic_build(data_batch=(x[:1], y[:1], None))
        model.make_train_function()
    else:  # older/newer Keras: train_on_batch builds everything (one more trace)
        model.train_on_batch(x[:8], y[:8])
    iterator = iter(dataset)
    spe = model.steps_per_execution
    return lambda: model.train_function(iterator), spe


def paired_ratio(a, b, factor=1.0, cpu=False):
    """Median over rounds of ``a_r / (factor * b_r)`` (a, b: `Timing`s
    measured in the same rounds, so each pair shares the same conditions)."""
    ra, rb = (a.cpu_rounds, b.cpu_rounds) if cpu else (a.rounds, b.rounds)
    return round(statistics.median(x / (factor * y) for x, y in zip(ra, rb)), 4)


# variant -> result key of its per-step time
_KEYS = {"plain": "plain_step_s", "keras_plain": "keras_plain_step_s",
         "shipped": "rls_step_s", "loop": "rls_loop_step_s",
         "tiled": "rls_tiled_step_s", "naive": "naive_step_s",
         "plain_adv": "plain_adv_step_s", "rls_adv": "rls_adv_step_s",
         "rls_adv_one": "rls_adv_one_step_s"}
# adversarial variant -> (M is the run's M, craft_on)
_ADVERSARIAL = {"plain_adv": (False, "mean"), "rls_adv": (True, "mean"),
                "rls_adv_one": (True, "one")}


def run_backbone(backbone, args):
    """Measures one backbone; returns the JSON-able result dict."""
    shape = INPUT_SHAPES.get(backbone, (32, 32, 3))
    load_start = round(os.getloadavg()[0], 2)
    rng = np.random.default_rng(args.seed)
    x = rng.uniform(-1, 1, (args.batch_size, *shape)).astype("float32")
    y = rng.integers(0, args.num_classes, (args.batch_size,)).astype("int32")
    dataset = tf.data.Dataset.from_tensors((x, y)).repeat()
    variants = [v for v in args.variants.split(",") if v]
    shipped = shipped_train_forward()
    M, K, N = args.num_submodels, args.num_samples, args.eval_samples

    models = {}
    train_fns = {}
    spe = {}
    for name in variants:
        if name not in _KEYS:
            raise ValueError(f"unknown variant {name!r}; expected some of {list(_KEYS)}")
        if name == "naive":
            train_fns[name], spe[name] = _naive_step(backbone, args, dataset), 1
            continue
        if name == "plain":
            model = _rls_model(backbone, args, 1, shipped)
        elif name == "keras_plain":
            model = _keras_plain_model(backbone, args)
            if model is None:
                continue
        elif name == "shipped":
            model = _rls_model(backbone, args, M, shipped)
        else:
            model = _rls_model(backbone, args, M, name)
        models[name] = model
        train_fns[name], spe[name] = _keras_train_fn(model, dataset, x, y)
    if args.adv_train_steps:
        for name, (rls, craft_on) in _ADVERSARIAL.items():
            model = _rls_model(backbone, args, M if rls else 1, shipped)
            adversarial.enable(model, AdversarialTraining(
                eps=args.adv_eps, steps=args.adv_train_steps, craft_on=craft_on))
            train_fns[name], spe[name] = _keras_train_fn(model, dataset, x, y)

    timed = time_interleaved(train_fns, args.warmup, args.steps, args.repeats)
    # Without a separate "shipped" variant the shipped default is the
    # variant of the same train_forward (the identical configuration).
    if "shipped" not in timed and shipped in timed:
        timed["shipped"], spe["shipped"] = timed[shipped], spe[shipped]
        models.setdefault("shipped", models.get(shipped))

    res = {
        "backbone": backbone,
        "input_shape": list(shape),
        "batch_size": args.batch_size,
        "M": M, "K": K, "N": N,
        "shipped_train_forward": shipped,
        "shipped_measured_as": "shipped" if "shipped" in variants else shipped,
        "weight_decay": args.weight_decay,
        "jit_compile": bool(args.jit_compile),
        "steps_per_execution": args.steps_per_execution,
        "loadavg_1min_start": load_start,
    }
    if args.adv_train_steps:
        res.update({"adv_train_steps": args.adv_train_steps, "adv_eps": args.adv_eps})
    cpu = {}
    for name, t in timed.items():
        res[_KEYS[name]] = t.wall / spe[name]
        cpu[_KEYS[name]] = t.cpu / spe[name]
        res[_KEYS[name][:-2] + "_spread"] = round(t.spread, 3)

    def ratios(use_cpu):
        def ratio(a, b, factor=1.0):
            if a in timed and b in timed:
                return paired_ratio(timed[a], timed[b],
                                    factor * spe[b] / spe[a], cpu=use_cpu)
            return None
        return {
            "train_step_ratio": ratio("shipped", "plain", K),
            "loop_ratio": ratio("loop", "plain", K),
            "tiled_ratio": ratio("tiled", "plain", K),
            "vs_naive_ratio": ratio("shipped", "naive"),
            "loop_vs_naive": ratio("loop", "naive"),
            "tiled_vs_naive": ratio("tiled", "naive"),
            "keras_plain_vs_plain": ratio("keras_plain", "plain"),
            **({"plain_adv_ratio": ratio("plain_adv", "plain"),
                "rls_adv_ratio": ratio("rls_adv", "shipped"),
                "rls_adv_one_ratio": ratio("rls_adv_one", "shipped")}
               if args.adv_train_steps else {}),
        }

    res.update(ratios(False))
    res["cpu_time"] = {k: round(v, 5) for k, v in cpu.items()}
    res["cpu_time"].update(ratios(True))

    if not args.no_predict:
        res.update(_predict(backbone, args, x, models))

    res.update({
        "warmup": args.warmup, "steps": args.steps, "repeats": args.repeats,
        "predict_steps": args.predict_steps,
        "timed": TIMED.format(spe=args.steps_per_execution),
        "tf_version": tf.__version__, "keras_version": keras.__version__,
        "rls_tf_version": rls_tf.__version__,
        "rls_tf_path": os.path.dirname(rls_tf.__file__),
        "cpu_count": os.cpu_count(),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        "python": platform.python_version(),
        "loadavg_1min_end": round(os.getloadavg()[0], 2),
    })
    for k, v in list(res.items()):
        if isinstance(v, float) and k.endswith("_s"):
            res[k] = round(v, 5)
    return res


def _predict(backbone, args, x, models):
    """Inference timings on one batch: the plain M=1 call, the shipped
    N-sample call, one network call on the batch tiled N times, and N
    separate single-sample calls."""
    N = args.eval_samples
    plain = models.get("plain") or _rls_model(backbone, args, 1, "loop")
    rls = (models.get("shipped") or models.get("loop") or models.get("tiled")
           or _rls_model(backbone, args, args.num_submodels, "loop"))
    xt = tf.constant(x)

    plain_fn = tf.function(lambda t: plain(t, training=False))
    shipped_fn = tf.function(lambda t: rls(t, training=False))
    tiled_fn = tf.function(lambda t: tf.reduce_mean(rls.sample_outputs(t, N), 0))
    loop_fn = tf.function(lambda t: tf.add_n(
        [rls.sample_outputs(t, 1)[0] for _ in range(N)]) / float(N))
    fns = {"plain": lambda: plain_fn(xt), "shipped": lambda: shipped_fn(xt),
           "tiled": lambda: tiled_fn(xt), "loop": lambda: loop_fn(xt)}
    timed = time_interleaved(fns, max(args.warmup, 2), args.predict_steps,
                             args.repeats)
    p, s, t, l = (timed[k] for k in ("plain", "shipped", "tiled", "loop"))
    return {
        "shipped_eval_forward": getattr(rls, "eval_forward", "tiled"),
        "plain_predict_s": round(p.wall, 5),
        "rls_predict_s": round(s.wall, 5),
        "rls_predict_tiled_s": round(t.wall, 5),
        "rls_predict_loop_s": round(l.wall, 5),
        "predict_ratio": paired_ratio(s, p, N),
        "predict_tiled_ratio": paired_ratio(t, p, N),
        "predict_loop_ratio": paired_ratio(l, p, N),
        "predict_tiled_vs_loop": paired_ratio(t, l),
        "predict_spread": round(max(v.spread for v in timed.values()), 3),
        "cpu_time_predict": {
            "plain_predict_s": round(p.cpu, 5), "rls_predict_s": round(s.cpu, 5),
            "rls_predict_tiled_s": round(t.cpu, 5),
            "rls_predict_loop_s": round(l.cpu, 5),
            "predict_ratio": paired_ratio(s, p, N, cpu=True),
            "predict_tiled_ratio": paired_ratio(t, p, N, cpu=True),
            "predict_loop_ratio": paired_ratio(l, p, N, cpu=True),
        },
    }


def _summary(results):
    lines = ["", "=== RLS speed summary (ratios < 1: RLS cheaper than K plain "
             "steps / the naive step / N plain calls) ==="]
    for r in results:
        if "skipped" in r:
            lines.append(f"{r['backbone']}: skipped ({r['skipped']})")
            continue
        lines.append(
            f"{r['backbone']} batch={r['batch_size']} M={r['M']} K={r['K']} "
            f"N={r['N']} (shipped train_forward={r['shipped_train_forward']})")

        def ms(key):
            return f"{1e3 * r[key]:8.1f} ms" if key in r else "     n/a"

        cpu = r["cpu_time"]
        lines.append(f"  plain step {ms('plain_step_s')}   keras plain "
                     f"{ms('keras_plain_step_s')}")
        lines.append(f"  shipped    {ms('rls_step_s')}   x{r['K']} plain ratio "
                     f"{r['train_step_ratio']}   vs naive {r['vs_naive_ratio']}"
                     f"   (CPU time: {cpu['train_step_ratio']}, "
                     f"{cpu['vs_naive_ratio']})")
        lines.append(f"  loop       {ms('rls_loop_step_s')}   ratio "
                     f"{r['loop_ratio']}   vs naive {r['loop_vs_naive']}")
        lines.append(f"  tiled      {ms('rls_tiled_step_s')}   ratio "
                     f"{r['tiled_ratio']}   vs naive {r['tiled_vs_naive']}")
        lines.append(f"  naive      {ms('naive_step_s')}")
        if "adv_train_steps" in r:
            lines.append(
                f"  PGD-AT ({r['adv_train_steps']} steps, eps {r['adv_eps']:g}): plain "
                f"{ms('plain_adv_step_s')} x{r['plain_adv_ratio']} of plain; rls (mean of K) "
                f"{ms('rls_adv_step_s')} x{r['rls_adv_ratio']}, rls (one path) "
                f"{ms('rls_adv_one_step_s')} x{r['rls_adv_one_ratio']} of the shipped step "
                f"(naive bound {r['adv_train_steps'] + 1})")
        if "predict_ratio" in r:
            lines.append(
                f"  predict: plain {ms('plain_predict_s')}; N={r['N']}: shipped "
                f"({r['shipped_eval_forward']}) {ms('rls_predict_s')} ratio "
                f"{r['predict_ratio']} (CPU {r['cpu_time_predict']['predict_ratio']})"
                f", tiled {ms('rls_predict_tiled_s')} ratio "
                f"{r['predict_tiled_ratio']}, N calls {ms('rls_predict_loop_s')} "
                f"ratio {r['predict_loop_ratio']}")
        busy = max(r["loadavg_1min_start"], r["loadavg_1min_end"])
        if busy > 0.5 * (r["cpu_count"] or 1):
            lines.append(f"  WARNING: load average {busy} on {r['cpu_count']} CPUs: "
                         "other processes ran; wall times are unreliable, see "
                         "the cpu_time ratios")
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a == "--defenses" or a.startswith("--defenses=") for a in argv):
        # The cost of every defense against plain: benchmarks/defense_benchmark.py.
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import defense_benchmark  # pylint: disable=import-outside-toplevel

        return defense_benchmark.main(argv)
    args = parse_args(argv)
    if args.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    if args.inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    results = []
    for backbone in [b.strip() for b in args.backbones.split(",") if b.strip()]:
        if backbone not in BACKBONES:
            res = {"backbone": backbone,
                   "skipped": f"not registered (have {list(BACKBONES)})"}
        else:
            start = time.perf_counter()
            res = run_backbone(backbone, args)
            res["wall_s"] = round(time.perf_counter() - start, 1)
        results.append(res)
        print(json.dumps(res), flush=True)
    print(_summary(results), flush=True)
    return results


if __name__ == "__main__":
    main()
