"""tf.distribute strategies for training: one name per kind of machine.

TensorFlow's own engine does the work (replicas, all-reduce, multi-worker
collectives, TPU); this module only builds the strategy a name asks for and
says clearly what is missing when it cannot.
"""

import json
import os

import tensorflow as tf

from rls_tf.validation import check_choice
from rls_tf.validation import check_int

__all__ = ["STRATEGIES", "is_chief", "make_strategy", "split_cpu"]

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def make_strategy(name="default", tpu=None):
    """Returns the `tf.distribute.Strategy` called `name`.

    Args:
        name: "default" (no distribution: one device), "mirrored" (all local
            GPUs, or the logical devices `split_cpu` made), "multi_worker"
            (`MultiWorkerMirroredStrategy`, cluster from the ``TF_CONFIG``
            environment variable) or "tpu" (`TPUStrategy`).
        tpu: TPU address for "tpu" (name, ``grpc://host:port``, or "local";
            None: from the environment, e.g. on a Cloud TPU VM).

    Returns:
        The strategy.

    Raises:
        ValueError: an unknown name, "multi_worker" without ``TF_CONFIG``,
            or a `tpu` given for another strategy.

    Example:
        (Not run as a doctest: it needs several devices.)

        >>> strategy = make_strategy("mirrored")  # doctest: +SKIP
        >>> with strategy.scope():  # doctest: +SKIP
        ...     model = rls_tf.models.build_model("resnet50")
    """
    check_choice("strategy", name, STRATEGIES)
    if tpu is not None and name != "tpu":
        raise ValueError(
            f"`tpu` is only used with strategy='tpu'. Received: tpu={tpu!r}, strategy={name!r}"
        )
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError(
                "strategy='multi_worker' needs the cluster in the TF_CONFIG environment "
                "variable (see docs/training.md, 'Distributed training'). Received: TF_CONFIG unset"
            )
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as e:
            raise ValueError(f"TF_CONFIG is not valid JSON ({e}). Received: "
                             f"TF_CONFIG={os.environ['TF_CONFIG']!r}") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy):
    """Whether this process writes the run's outputs (always, unless multi-worker).

    In a multi-worker cluster the chief (or worker 0 when there is no chief)
    writes checkpoints and results; the other workers compute the same
    steps and write to scratch space.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None:
        return True
    return task_type == "chief" or (
        task_type == "worker" and task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )


def split_cpu(num_devices):
    """Splits the CPU into `num_devices` logical devices (before TF starts).

    For tests and overhead measurements of `MirroredStrategy` on a machine
    without GPUs: logical CPU devices share the same cores, so they add no
    compute.

    Args:
        num_devices: int >= 1.

    Raises:
        ValueError: `num_devices` < 1.
        RuntimeError: TensorFlow has initialised its devices already.
    """
    num_devices = check_int("num_devices", num_devices, minimum=1)
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices
    )
