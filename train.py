r"""Trains an RLS ensemble (Lee et al.) and reports its clean test accuracy.

Defaults are the paper's: M=2 sub-models, K=3 sampled models per step, N=10
at test time, SGD lr 0.01 divided by 10 every 50 epochs, momentum 0.9,
weight decay 5e-4, 150 epochs (50 on MNIST), pixels in [-1, 1].

    python train.py --dataset=svhn --backbone=resnet50 --model_dir=runs/svhn
    python train.py --dataset=mnist --backbone=small_cnn --epochs=3 \
        --data_dir=../shared/data --model_dir=runs/mnist

Rerunning the same command resumes after the last complete epoch.
"""

import sys

from absl import app
from absl import flags

from rls_tf import data as rls_data
from rls_tf import distribute as rls_distribute
from rls_tf.models import BACKBONES
from rls_tf.models import TRAIN_FORWARDS
from rls_tf.training import LOSSES
from rls_tf.training import TrainConfig
from rls_tf.training import train

FLAGS = flags.FLAGS

flags.DEFINE_enum("dataset", "mnist", list(rls_data.DATASETS), "Dataset.")
flags.DEFINE_enum("backbone", "resnet50", list(BACKBONES), "Network architecture.")
flags.DEFINE_integer("num_submodels", 2, "M: weight copies of every layer (1 = plain network).")
flags.DEFINE_integer("num_samples", 3, "K: sampled models per training step.")
flags.DEFINE_integer("eval_samples", 10, "N: sampled models averaged at test time.")
flags.DEFINE_list("mu", None, "Sampling probabilities of the M copies, e.g. 0.5,0.5 (default uniform).")
flags.DEFINE_integer("epochs", None, "Epochs (default: the paper's, 50 on MNIST/Fashion-MNIST, 150 otherwise).")
flags.DEFINE_integer("batch_size", 128, "Batch size.")
flags.DEFINE_float("learning_rate", 0.01, "Initial SGD learning rate.")
flags.DEFINE_integer("lr_decay_epochs", 50, "Divide the learning rate by 10 every this many epochs (0: never).")
flags.DEFINE_float("lr_decay_factor", 0.1, "Learning-rate multiplier at each decay.")
flags.DEFINE_float("weight_decay", 5e-4, "SGD weight decay (L2 on kernels).")
flags.DEFINE_float("momentum", 0.9, "SGD momentum.")
flags.DEFINE_integer("seed", None, "Seed for a reproducible run (the saved model stays unseeded).")
flags.DEFINE_string("data_dir", None, "TFDS data dir, or a directory of the original dataset files.")
flags.DEFINE_string("model_dir", "runs/rls", "Output directory (checkpoints, model, logs, metrics).")
flags.DEFINE_bool("per_example_sampling", False, "Every example draws its own path.")
flags.DEFINE_integer("max_train_examples", None, "Use only the first N training examples.")
flags.DEFINE_integer("max_test_examples", None, "Evaluate on the first N test examples only.")
flags.DEFINE_bool("augment", False, "Light augmentation (random crop; flip on CIFAR-10).")
flags.DEFINE_enum("loss", "crossentropy", list(LOSSES), "Group loss on the mean prediction.")
flags.DEFINE_enum("train_forward", "loop", list(TRAIN_FORWARDS), "How the K forwards run.")
flags.DEFINE_integer("verbose", 1, "Keras verbosity (1: progress bar, 2: a line per epoch).")
flags.DEFINE_enum("strategy", "default", list(rls_distribute.STRATEGIES),
                  "tf.distribute strategy: default (one device), mirrored (local GPUs), "
                  "multi_worker (cluster from TF_CONFIG), tpu. --batch_size is the global batch.")
flags.DEFINE_string("tpu", None, "TPU address for --strategy=tpu (name, grpc://host:port or local).")

for _name in ("num_submodels", "num_samples", "eval_samples", "batch_size"):
    flags.register_validator(
        _name, lambda v: v is not None and v >= 1, message=f"--{_name} must be >= 1."
    )
for _name in ("epochs", "max_train_examples", "max_test_examples"):
    flags.register_validator(
        _name, lambda v: v is None or v >= 1, message=f"--{_name} must be >= 1."
    )


def _parse_mu(values):
    if values is None:
        return None
    try:
        return [float(v) for v in values]
    except ValueError:
        raise ValueError(f"`mu` must be numbers. Received: mu={','.join(values)!r}") from None


def config_from_flags():
    """Builds a `TrainConfig` from the parsed flags."""
    return TrainConfig(
        dataset=FLAGS.dataset,
        backbone=FLAGS.backbone,
        num_submodels=FLAGS.num_submodels,
        num_samples=FLAGS.num_samples,
        eval_samples=FLAGS.eval_samples,
        mu=_parse_mu(FLAGS.mu),
        epochs=FLAGS.epochs,
        batch_size=FLAGS.batch_size,
        learning_rate=FLAGS.learning_rate,
        lr_decay_epochs=FLAGS.lr_decay_epochs,
        lr_decay_factor=FLAGS.lr_decay_factor,
        weight_decay=FLAGS.weight_decay,
        momentum=FLAGS.momentum,
        seed=FLAGS.seed,
        data_dir=FLAGS.data_dir,
        model_dir=FLAGS.model_dir,
        per_example_sampling=FLAGS.per_example_sampling,
        max_train_examples=FLAGS.max_train_examples,
        max_test_examples=FLAGS.max_test_examples,
        augment=FLAGS.augment,
        loss=FLAGS.loss,
        train_forward=FLAGS.train_forward,
        verbose=FLAGS.verbose,
        strategy=FLAGS.strategy,
        tpu=FLAGS.tpu,
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        train(config_from_flags())
    except (ValueError, FileNotFoundError, rls_data.DatasetUnavailableError) as e:
        sys.exit(f"train.py: error: {e}")


if __name__ == "__main__":
    app.run(main)
