r"""Trains an RLS ensemble (Lee et al.) and reports its clean test accuracy.

A thin shim over `rls_tf.cli.train` (the ``rls-train`` console script), so
that ``python train.py ...`` works from a checkout:

    python train.py --dataset=svhn --backbone=resnet50 --model_dir=runs/svhn
    python train.py --dataset=mnist --backbone=small_cnn --epochs=3 \
        --data_dir=../shared/data --model_dir=runs/mnist

Rerunning the same command resumes after the last complete epoch.
"""

from rls_tf.cli.train import config_from_flags
from rls_tf.cli.train import main
from rls_tf.cli.train import run

__all__ = ["config_from_flags", "main", "run"]

if __name__ == "__main__":
    run(prog="train.py")
