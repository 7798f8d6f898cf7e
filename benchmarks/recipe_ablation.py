r"""Training-recipe ablation: clean test accuracy against training wall time.

Each named variant is one `rls_tf.training.train` run (one model directory
under ``--runs_dir``); the variants differ from a base recipe by the
`TrainConfig` fields they set. Finished variants are skipped (their
``metrics.json`` is read back), so an interrupted ablation resumes where it
stopped. Writes ``results.json`` (every variant's config, test accuracy,
per-epoch training history and training seconds) and ``results.md`` (the
table) into ``--output_dir``.

    python benchmarks/recipe_ablation.py --grid=cifar10_resnet9 \
        --data_dir=../shared/data --runs_dir=runs/ablation \
        --output_dir=docs/results/cifar10_recipe
    python benchmarks/recipe_ablation.py --grid=tiny --data_dir=../shared/data \
        --runs_dir=/tmp/abl --output_dir=/tmp/abl_out      # CI-sized: seconds

Timings are wall-clock seconds of `fit` on this machine (``cpu_model`` and
thread counts are recorded); run nothing else beside it.
"""

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position
from rls_tf.training import TrainConfig  # noqa: E402
from rls_tf.training import train  # noqa: E402

# The fast recipe: Page's ResNet-9 schedule (linear warmup then linear
# decay, Nesterov momentum, label smoothing 0.2), flip + translate.
_FAST = dict(dataset="cifar10", backbone="resnet9", defense="plain", batch_size=256,
             learning_rate=0.2, lr_schedule="onecycle", nesterov=True,
             label_smoothing=0.2, augment=True, weight_decay=5e-4, seed=0)


def _fast(epochs, width=16, **changes):
    return {**_FAST, "epochs": epochs, "backbone_width": width,
            "lr_warmup_epochs": round(0.2 * epochs, 2), **changes}


def _tuned(epochs, width=16, **changes):
    return _fast(epochs, width=width, **{"learning_rate": 0.4, "label_smoothing": 0.0,
                                         **changes})


GRIDS = {
    # Name -> ordered {variant: TrainConfig fields}; the first is the base.
    "cifar10_resnet9": {
        "small_cnn_paper_3ep": dict(dataset="cifar10", backbone="small_cnn", defense="plain",
                                    epochs=3, batch_size=64, lr_decay_epochs=0, seed=0),
        "small_cnn_fast_10ep": _fast(10, width=32, backbone="small_cnn"),
        "r9w16_fast_10ep": _fast(10),
        "r9w16_fast_10ep_lr0.1": _fast(10, learning_rate=0.1),
        "r9w16_fast_10ep_lr0.4": _fast(10, learning_rate=0.4),
        "r9w16_fast_10ep_no_ls": _fast(10, label_smoothing=0.0),
        "r9w16_fast_10ep_no_aug": _fast(10, augment=False),
        "r9w16_step_10ep": _fast(10, lr_schedule="step", learning_rate=0.01,
                                 lr_warmup_epochs=0.0, lr_decay_epochs=0, nesterov=False,
                                 label_smoothing=0.0),
        "r9w16_fast_10ep_lr0.4_no_ls": _fast(10, learning_rate=0.4, label_smoothing=0.0),
        # The 10-epoch ablation's winners (lr 0.4, no label smoothing), longer and wider.
        "r9w16_tuned_20ep": _tuned(20),
        "r9w32_tuned_10ep": _tuned(10, width=32),
        "r9w32_tuned_20ep": _tuned(20, width=32),
        "r9w16_tuned_30ep": _tuned(30),
        # The data curve: the same recipe on a quarter and a half of the file.
        "r9w16_tuned_20ep_2500": _tuned(20, max_train_examples=2500),
        "r9w16_tuned_20ep_5000": _tuned(20, max_train_examples=5000),
        # RLS (M=2, K=3) on the plain recipe: the paper's MSE objective and CE.
        "rls_r9w16_tuned_20ep_ce": _tuned(20, defense="rls"),
        "rls_r9w16_tuned_20ep_mse": _tuned(20, defense="rls", loss="mse"),
        # RLS trails plain by 11 points at 20 epochs: each copy of a layer gets about
        # half a plain network's gradient (the mean of K=3 samples, each copy in about
        # half of them) while weight decay acts on every copy, so a larger peak rate
        # and a longer run are the candidates.
        "rls_r9w16_tuned_20ep_ce_lr0.8": _tuned(20, defense="rls", learning_rate=0.8),
        "rls_r9w16_tuned_40ep_ce": _tuned(40, defense="rls"),
    },
    # CI-sized: two variants of one short epoch on 256 images.
    "tiny": {
        "r9w4_fast": _fast(1, width=4, max_train_examples=256, max_test_examples=128,
                           batch_size=64),
        "r9w4_step": _fast(1, width=4, max_train_examples=256, max_test_examples=128,
                           batch_size=64, lr_schedule="step", lr_warmup_epochs=0.0,
                           learning_rate=0.01, lr_decay_epochs=0),
    },
}


def cpu_model():
    """The CPU's model name (Linux), else the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_variant(name, fields, runs_dir, data_dir, verbose):
    """Trains (or reads back) one variant; returns its result record."""
    model_dir = os.path.join(runs_dir, name)
    metrics_path = os.path.join(model_dir, "metrics.json")
    if not os.path.exists(metrics_path):
        config = TrainConfig(**fields, data_dir=data_dir, model_dir=model_dir, verbose=verbose)
        started = time.time()
        train(config)
        print(f"{name}: {time.time() - started:.0f} s", flush=True)
    with open(metrics_path) as f:
        metrics = json.load(f)
    # What the run was trained with (validated and resolved by train).
    with open(os.path.join(model_dir, "config.json")) as f:
        trained = json.load(f)
    history = metrics.get("history", {})
    return {
        "variant": name,
        "changes": {k: v for k, v in fields.items()},
        "test_accuracy": metrics["test_accuracy"],
        "test_examples": metrics["test_examples"],
        "train_seconds": metrics["train_seconds_this_run"],
        "epochs": metrics["epochs"],
        "train_accuracy_per_epoch": history.get("accuracy"),
        "config": {k: v for k, v in trained.items()
                   if k not in ("data_dir", "model_dir", "verbose")},
    }


def render(results, machine):
    """The results.md table (one row a variant)."""
    lines = [
        "| variant | defense | loss | backbone | width | epochs | train images | schedule | lr | "
        "LS | aug | test acc | train time |",
        "|---|---|---|---|---:|---:|---:|---|---:|---:|---|---:|---:|",
    ]
    for r in results:
        c = r["config"]
        lines.append(
            f"| {r['variant']} | {c['defense']} | {c.get('loss', 'crossentropy')} | "
            f"{c['backbone']} | {c['backbone_width'] or '-'} | "
            f"{r['epochs']} | {c['max_train_examples'] or 'all'} | {c['lr_schedule']} | "
            f"{c['learning_rate']:g} | {c['label_smoothing']:g} | "
            f"{'yes' if c['augment'] else 'no'} | {100 * r['test_accuracy']:.1f}% | "
            f"{r['train_seconds'] / 60:.1f} min |")
    lines.append("")
    lines.append(f"Machine: {machine['cpu_model']}, {machine['cpu_count']} logical CPUs; "
                 f"test accuracy on {results[0]['test_examples']} test images.")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", choices=sorted(GRIDS), default="cifar10_resnet9")
    parser.add_argument("--variants", default=None,
                        help="Comma-separated subset of the grid's variants (default: all).")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--runs_dir", default="runs/ablation")
    parser.add_argument("--output_dir", default="results/recipe_ablation")
    parser.add_argument("--verbose", type=int, default=2)
    args = parser.parse_args(argv)
    grid = GRIDS[args.grid]
    names = list(grid) if args.variants is None else args.variants.split(",")
    unknown = [n for n in names if n not in grid]
    if unknown:
        parser.error(f"unknown variants {unknown}; the grid has {list(grid)}")
    machine = {"cpu_model": cpu_model(), "cpu_count": os.cpu_count()}
    os.makedirs(args.output_dir, exist_ok=True)
    results = []
    for name in names:
        results.append(run_variant(name, grid[name], args.runs_dir, args.data_dir,
                                   args.verbose))
        # Written after every variant, so a partial ablation is readable.
        with open(os.path.join(args.output_dir, "results.json"), "w") as f:
            json.dump({"grid": args.grid, "machine": machine, "results": results}, f,
                      indent=1)
        with open(os.path.join(args.output_dir, "results.md"), "w") as f:
            f.write(render(results, machine))
    print(render(results, machine))


if __name__ == "__main__":
    main()
