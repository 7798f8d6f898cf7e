r"""The train command: trains an RLS ensemble (Lee et al.) and reports its clean test accuracy.

Owns the command line of `rls_tf.training.train`: its flags, their
defaults, and the one-line error report. ``python train.py`` (the repo's
top-level shim) and the ``rls-train`` console script both run `run`.

Defaults are the paper's: M=2 sub-models, K=3 sampled models per step, N=10
at test time, SGD lr 0.01 divided by 10 every 50 epochs, momentum 0.9,
weight decay 5e-4, 150 epochs (50 on MNIST), pixels in [-1, 1].

    rls-train --dataset=svhn --backbone=resnet50 --model_dir=runs/svhn
    python train.py --dataset=mnist --backbone=small_cnn --epochs=3 \
        --data_dir=../shared/data --model_dir=runs/mnist

Rerunning the same command resumes after the last complete epoch (after the
one before, with a warning, when the last checkpoint is damaged).

PGD adversarial training (Madry et al. 2018; `rls_tf.adversarial`) of any
defense that trains (not sap), eps in the model's [-1, 1] pixel units
(Madry's MNIST 0.3 is 0.6 here), optionally from a finished clean run:

    python train.py --dataset=mnist --backbone=small_cnn --defense=rls \
        --adv_train=pgd --adv_eps=0.6 --adv_steps=10 --adv_ramp_epochs=2 \
        --init_from=runs/mnist_rls --model_dir=runs/mnist_rls_at
"""

from absl import app
from absl import flags

from rls_tf import distribute as rls_distribute
from rls_tf.cli import flags as shared
from rls_tf.defenses.registry import DEFENSES
from rls_tf.defenses.registry import all_params
from rls_tf.defenses.registry import defenses_of
from rls_tf.defenses.registry import get_defense
from rls_tf.models import BACKBONES
from rls_tf.models.backbones import BACKBONE_SPECS
from rls_tf.models.backbones import backbones_with_option
from rls_tf.adversarial import CRAFT_ON
from rls_tf.training import ADV_TRAIN
from rls_tf.training import LOSSES
from rls_tf.training import TrainConfig
from rls_tf.training import train
from rls_tf.schedules import LR_SCHEDULES

__all__ = ["DEFAULTS", "config_from_flags", "main", "run"]

FLAGS = flags.FLAGS

# This command's defaults of the shared flags (`rls_tf.cli.flags`).
DEFAULTS = {
    "dataset": "mnist",
    "data_dir": None,
    "model_dir": "runs/rls",
    "batch_size": 128,
    "seed": None,
    "eval_samples": 10,
    "verbose": 1,
}
HELP = {
    "data_dir": "TFDS data dir, or a directory of the original dataset files.",
    "model_dir": "Output directory (checkpoints, model, logs, metrics).",
    "batch_size": "Batch size (global: split across the replicas of --strategy).",
    "seed": "Seed for a reproducible run (the saved model stays unseeded).",
    "verbose": "Keras verbosity (1: progress bar, 2: a line per epoch).",
}
_prog = "rls-train"  # how error lines name the command (run() sets it)



def _define_parameter_flags():
    """One flag per defense parameter of the registry (`rls_tf.defenses.specs.Param`).

    A parameter whose name is a flag other commands share
    (`rls_tf.cli.flags.SHARED_FLAGS`: ``per_example_sampling``) is defined
    there, once per process; this command's default and help for it come
    from the parameter (`DEFAULTS`, `HELP`).
    """
    define = {int: flags.DEFINE_integer, float: flags.DEFINE_float, bool: flags.DEFINE_bool,
              str: flags.DEFINE_string}
    for param in all_params().values():
        users = ", ".join(defenses_of(param.key))
        if param.key in shared.SHARED_FLAGS:
            shared.define(param.key)
            DEFAULTS[param.key] = param.default
            HELP[param.key] = f"{users}: {param.help}"
        elif param.multiple:
            flags.DEFINE_list(param.key, param.default, f"{users}: {param.help}")
        elif param.kind is str and param.choices:
            flags.DEFINE_enum(param.key, param.default, list(param.choices),
                              f"{users}: {param.help}")
        else:
            define[param.kind](param.key, param.default, f"{users}: {param.help}")


def _parameter_value(param):
    """The flag value of `param`, a list flag's items as `param.kind`."""
    if param.key in shared.SHARED_FLAGS:
        return shared.value(param.key, DEFAULTS[param.key])
    value = FLAGS[param.key].value
    if not param.multiple or value is None:
        return value
    try:
        return [param.kind(v) for v in value]
    except ValueError:
        what = "numbers" if param.kind in (int, float) else f"{param.kind.__name__} values"
        raise ValueError(f"`{param.key}` must be {what}. Received: "
                         f"{param.key}={','.join(value)!r}") from None


def _defense_parameters():
    """The flag values of the chosen defense's parameters, and of any other set."""
    values = {}
    chosen = get_defense(FLAGS.defense).param_keys
    for key, param in all_params().items():
        if key not in FLAGS:  # registered after the flags were defined
            continue
        value = _parameter_value(param)
        if key in chosen or value != param.default:
            values[key] = value
    return values


shared.define(*DEFAULTS)
flags.DEFINE_enum("backbone", "resnet50", list(BACKBONES), "Network architecture: " + ", ".join(
    f"{name} ({spec.title})" for name, spec in BACKBONE_SPECS.items()) + ".")
flags.DEFINE_enum("defense", "rls", list(DEFENSES), "Defense to train: " + "; ".join(
    f"{name}: {spec.title} ({spec.source})" for name, spec in DEFENSES.items()) + ".")
_define_parameter_flags()
flags.DEFINE_integer("epochs", None, "Epochs (default: the paper's, 50 on MNIST/Fashion-MNIST, 150 otherwise).")
flags.DEFINE_float("learning_rate", 0.01, "Initial SGD learning rate.")
flags.DEFINE_integer("lr_decay_epochs", 50, "Divide the learning rate by 10 every this many epochs (0: never).")
flags.DEFINE_float("lr_decay_factor", 0.1, "Learning-rate multiplier at each decay.")
flags.DEFINE_enum("lr_schedule", "step", list(LR_SCHEDULES),
                  "step: the paper's, divided every --lr_decay_epochs; onecycle: linear warmup "
                  "to --learning_rate over --lr_warmup_epochs, then linear decay to 0 (the fast "
                  "CIFAR-10 recipes).")
flags.DEFINE_float("lr_warmup_epochs", 0.0, "onecycle: epochs of the linear warmup (fractions "
                   "allowed).")
flags.DEFINE_float("weight_decay", 5e-4, "SGD weight decay (L2 on kernels).")
flags.DEFINE_float("momentum", 0.9, "SGD momentum.")
flags.DEFINE_bool("nesterov", False, "Nesterov momentum.")
flags.DEFINE_float("label_smoothing", 0.0, "Cross-entropy label smoothing s in [0, 1): target "
                   "(1 - s) one_hot + s / classes (not with --loss=mse).")
flags.DEFINE_integer("backbone_width", None, "The backbone's width option: " + "; ".join(
    f"{name}: {param.help.rstrip('.')} (default {param.default})"
    for name, param in backbones_with_option("width").items()) + ".")
flags.DEFINE_integer("max_train_examples", None, "Use only the first N training examples.")
flags.DEFINE_integer("max_test_examples", None, "Evaluate on the first N test examples only.")
flags.DEFINE_bool("augment", False, "Light augmentation (random crop; flip on CIFAR-10).")
flags.DEFINE_enum("loss", "crossentropy", list(LOSSES), "Group loss on the mean prediction.")
flags.DEFINE_enum("strategy", "default", list(rls_distribute.STRATEGIES),
                  "tf.distribute strategy: default (one device), mirrored (local GPUs), "
                  "multi_worker (cluster from TF_CONFIG), tpu. --batch_size is the global batch.")
flags.DEFINE_string("tpu", None, "TPU address for --strategy=tpu (name, grpc://host:port or local).")
flags.DEFINE_enum("adv_train", "none", list(ADV_TRAIN),
                  "Adversarial training: none; pgd (Madry et al. 2018: every step trains on "
                  "L-inf PGD examples crafted in the graph against the model it trains, the "
                  "network in inference mode; rls: against the mean of the step's K sampled "
                  "models); fgsm_rs (Wong et al. 2020: one FGSM step of 1.25 eps from a "
                  "random start, with the overfitting guard). Every defense that trains; not "
                  "sap.")
flags.DEFINE_float("adv_eps", None, "L-inf radius in the model's [-1, 1] pixel units, "
                   "the units of attack_eval.py's eps (Madry's MNIST 0.3 in [0, 1] units is "
                   "0.6 here; CIFAR-10's 8/255 is 16/255); required with --adv_train=pgd "
                   "and fgsm_rs.")
flags.DEFINE_integer("adv_steps", None, "Attack steps per training step (default: 10 for "
                     "pgd; fgsm_rs takes exactly 1).")
flags.DEFINE_float("adv_step_size", None, "Attack step, [-1, 1] pixel units (default "
                   "2.5 * adv_eps / adv_steps for pgd, 1.25 * adv_eps for fgsm_rs).")
flags.DEFINE_integer("adv_guard_examples", None, "Catastrophic-overfitting guard: PGD-5 "
                     "accuracy on the first this many training images after every epoch; a "
                     "drop of more than 0.2 below the best stops the run and restores the best "
                     "epoch (Wong et al. 2020). Default: 128 for fgsm_rs, off (0) for pgd.")
flags.DEFINE_float("adv_ratio", 1.0, "pgd: share of the adversarial loss in [0, 1]: "
                   "ratio * L(adversarial) + (1 - ratio) * L(clean) (1: all adversarial).")
flags.DEFINE_bool("adv_random_start", True, "pgd: start uniformly in the eps-ball.")
flags.DEFINE_enum("adv_craft_on", "mean", list(CRAFT_ON),
                  "pgd: craft against the step's mean prediction (rls: the K sampled models, "
                  "an EOT; ensemble/adp: the members) or one of them.")
flags.DEFINE_integer("adv_ramp_epochs", 0, "pgd: raise eps linearly from 0 to --adv_eps over "
                     "this many epochs (0: full eps from the start).")
flags.DEFINE_string("init_from", None, "Warm start: a finished run directory (its model.keras, "
                    "same defense and architecture) whose weights initialise this run, e.g. "
                    "a clean run to fine-tune with --adv_train=pgd.")

# Refused at parse time, as before these were generated (other parameters'
# bounds are checked by `TrainConfig.validate`).
for _name in ("num_submodels", "num_samples"):
    flags.register_validator(
        _name, lambda v: v is not None and v >= 1, message=f"--{_name} must be >= 1."
    )
flags.register_validator("adv_steps", lambda v: v is None or v >= 1,
                         message="--adv_steps must be >= 1.")
flags.register_validator("adv_ramp_epochs", lambda v: v is not None and v >= 0,
                         message="--adv_ramp_epochs must be >= 0.")
for _name in ("epochs", "max_train_examples", "max_test_examples"):
    flags.register_validator(
        _name, lambda v: v is None or v >= 1, message=f"--{_name} must be >= 1."
    )


def config_from_flags():
    """Builds a `TrainConfig` from the parsed flags.

    The defense's parameters come from the flags generated from the
    registry: those of ``--defense``, and any other set away from its
    default (refused by `TrainConfig.validate` where it is another
    defense's exclusive one, e.g. ``--base_model_dir`` without sap).
    """
    return TrainConfig(
        dataset=shared.value("dataset", DEFAULTS["dataset"]),
        backbone=FLAGS.backbone,
        defense=FLAGS.defense,
        eval_samples=shared.value("eval_samples", DEFAULTS["eval_samples"]),
        epochs=FLAGS.epochs,
        batch_size=shared.value("batch_size", DEFAULTS["batch_size"]),
        learning_rate=FLAGS.learning_rate,
        lr_decay_epochs=FLAGS.lr_decay_epochs,
        lr_decay_factor=FLAGS.lr_decay_factor,
        lr_schedule=FLAGS.lr_schedule,
        lr_warmup_epochs=FLAGS.lr_warmup_epochs,
        weight_decay=FLAGS.weight_decay,
        momentum=FLAGS.momentum,
        nesterov=FLAGS.nesterov,
        label_smoothing=FLAGS.label_smoothing,
        backbone_width=FLAGS.backbone_width,
        seed=shared.value("seed", DEFAULTS["seed"]),
        data_dir=shared.value("data_dir", DEFAULTS["data_dir"]),
        model_dir=shared.value("model_dir", DEFAULTS["model_dir"]),
        max_train_examples=FLAGS.max_train_examples,
        max_test_examples=FLAGS.max_test_examples,
        augment=FLAGS.augment,
        loss=FLAGS.loss,
        verbose=shared.value("verbose", DEFAULTS["verbose"]),
        strategy=FLAGS.strategy,
        tpu=FLAGS.tpu,
        adv_train=FLAGS.adv_train,
        adv_eps=FLAGS.adv_eps,
        adv_steps=FLAGS.adv_steps,
        adv_step_size=FLAGS.adv_step_size,
        adv_ratio=FLAGS.adv_ratio,
        adv_random_start=FLAGS.adv_random_start,
        adv_craft_on=FLAGS.adv_craft_on,
        adv_ramp_epochs=FLAGS.adv_ramp_epochs,
        adv_guard_examples=FLAGS.adv_guard_examples,
        init_from=FLAGS.init_from,
        **_defense_parameters(),
    )


def main(argv):
    """Trains as the flags say; bad settings or data end in one error line."""
    shared.check_no_arguments(argv)
    shared.exit_on_errors(_prog, lambda: train(config_from_flags()))


def run(prog="rls-train"):
    """Console entry point (``rls-train``); `prog` names the command in error lines."""
    global _prog  # pylint: disable=global-statement
    _prog = prog
    shared.use_command_defaults(__name__, DEFAULTS, HELP)
    app.run(main)
