r"""``python -m export``: exports a model trained by train.py for TF Serving and TFLite.

A thin shim over `rls_tf.cli.export` (the ``rls-export`` console script), so
that ``python -m export ...`` works from a checkout:

    python -m export --model_dir=runs/mnist_rls --output_dir=serving/rls \
        --formats=saved_model,tflite --eval_samples=10 [--per_example_sampling] [--seed=S]
"""

from rls_tf.cli.export import export_from_flags
from rls_tf.cli.export import main
from rls_tf.cli.export import run

__all__ = ["export_from_flags", "main", "run"]

if __name__ == "__main__":
    run(prog="python -m export")
