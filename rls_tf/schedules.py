"""Learning-rate schedules of `train.py --lr_schedule`.

``step`` is the paper's (divide by 10 every 50 epochs, Keras'
`PiecewiseConstantDecay`); ``onecycle`` is the linear warmup + linear decay
of the fast CIFAR-10 recipes (Page's ResNet-9 for DAWNBench, airbench,
hlb-CIFAR10): the rate rises linearly to its peak over the warmup, then
falls linearly towards 0 at the last step.
"""

import keras

from rls_tf.validation import check_float
from rls_tf.validation import check_int

__all__ = ["LR_SCHEDULES", "OneCycle", "learning_rate"]

LR_SCHEDULES = ("step", "onecycle")


@keras.saving.register_keras_serializable(package="rls_tf")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to ``peak`` over ``warmup_steps``, then linear decay.

    For the step index ``t = 0 .. total_steps - 1`` (the optimizer's
    ``iterations`` before the update)::

        lr(t) = peak * (t + 1) / warmup_steps              if t < warmup_steps
        lr(t) = peak * (total_steps - t) / (total_steps - warmup_steps)  otherwise

    so no step has a zero rate: the first warmup step already moves and the
    last step uses ``peak / (total_steps - warmup_steps)``. Steps past
    ``total_steps`` (none in a run of the planned length) use 0.

    Args:
        peak: the largest learning rate (> 0).
        total_steps: steps of the whole run (>= 1).
        warmup_steps: steps of the rise, in ``[0, total_steps)``.

    Example:

    >>> schedule = OneCycle(peak=0.4, total_steps=10, warmup_steps=2)
    >>> [round(float(schedule(t)), 2) for t in (0, 1, 2, 9)]
    [0.2, 0.4, 0.4, 0.05]
    """

    def __init__(self, peak, total_steps, warmup_steps=0):
        self.peak = check_float("peak", peak, minimum=0.0, min_open=True)
        self.total_steps = check_int("total_steps", total_steps, minimum=1)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, minimum=0)
        if self.warmup_steps >= self.total_steps:
            raise ValueError(
                "`warmup_steps` must be smaller than `total_steps`. Received: "
                f"warmup_steps={warmup_steps!r}, total_steps={total_steps!r}")

    def __call__(self, step):
        t = keras.ops.cast(step, "float32")
        total = float(self.total_steps)
        warmup = float(self.warmup_steps)
        decay = self.peak * (total - t) / (total - warmup)
        if self.warmup_steps == 0:
            lr = decay
        else:
            lr = keras.ops.where(t < warmup, self.peak * (t + 1.0) / warmup, decay)
        return keras.ops.maximum(lr, 0.0)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps}


def learning_rate(schedule, peak, epochs, steps_per_epoch, decay_epochs=0, decay_factor=0.1,
                  warmup_epochs=0.0):
    """The optimizer's learning rate (a float or a schedule) for a run.

    Args:
        schedule: one of `LR_SCHEDULES`.
        peak: the initial (``step``) or largest (``onecycle``) rate.
        epochs: epochs of the run.
        steps_per_epoch: optimizer steps per epoch.
        decay_epochs: ``step``: divide every this many epochs (0: never).
        decay_factor: ``step``: the multiplier at each decay.
        warmup_epochs: ``onecycle``: epochs of the linear rise (fractions
            allowed; 0: decay from the first step).

    Returns:
        A float or a `keras.optimizers.schedules.LearningRateSchedule`.
    """
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"Unknown learning-rate schedule. Received: lr_schedule={schedule!r}. "
                         f"Expected one of {LR_SCHEDULES}.")
    if schedule == "onecycle":
        total = epochs * steps_per_epoch
        warmup = int(round(warmup_epochs * steps_per_epoch))
        if warmup >= total:
            raise ValueError(
                "`lr_warmup_epochs` must be shorter than the run. Received: "
                f"lr_warmup_epochs={warmup_epochs!r}, epochs={epochs!r}")
        return OneCycle(peak, total, warmup)
    if decay_epochs == 0 or decay_epochs >= epochs:
        return peak
    decays = (epochs - 1) // decay_epochs
    # Keras keeps values[i] up to and including step boundaries[i]; the first
    # step of epoch `decay_epochs` (0-based) must already use values[i+1].
    boundaries = [steps_per_epoch * decay_epochs * i - 1 for i in range(1, decays + 1)]
    values = [peak * decay_factor ** i for i in range(decays + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
