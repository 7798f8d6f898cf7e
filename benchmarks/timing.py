"""The timing helpers of every benchmark script: one function, or several interleaved.

The measurement: a Keras model's compiled ``model.train_function(iterator)``
on an iterator over one repeated random batch, or a ``tf.function`` on a
fixed tensor; untimed warm-up calls (tracing and compilation happen there),
then ``repeats`` rounds of ``steps`` consecutive calls, the result read back
once per round so that asynchronous (GPU) execution is waited for.
`time_calls` times one function (`gpu_check.py`, `distribute_benchmark.py`);
`time_interleaved` times several in the same rounds, so that their ratios
share the machine's conditions (`train_step_benchmark.py`,
`defense_benchmark.py`), in process CPU time too.

Example:

>>> step = keras_train_step(model, x, y)
>>> timing = time_calls(step, warmup=2, steps=10, repeats=3)
>>> timing.seconds, len(x) / timing.seconds  # per step, images per second
>>> both = time_interleaved({"plain": plain_step, "rls": rls_step}, 2, 10, 5)
>>> both["rls"].wall / both["plain"].wall
"""

import dataclasses
import statistics
import time
from typing import List

import tensorflow as tf

__all__ = ["InterleavedTiming", "Timing", "keras_train_step", "sync", "time_calls",
           "time_interleaved"]


def sync(out):
    """Blocks until `out` (a tensor or a structure of tensors) is computed.

    Reading one output back to the host waits for the function call that
    produced it, and with it for everything the call ran on the device.
    """
    leaves = tf.nest.flatten(out)
    if leaves and hasattr(leaves[0], "numpy"):
        leaves[0].numpy()


@dataclasses.dataclass
class Timing:
    """Result of `time_calls`.

    Attributes:
        seconds: median over the rounds of the mean wall time of one call.
        rounds: the per-call mean wall time of every round.
        spread: (max - min) / median of `rounds`, a noise gauge.
        warmup_seconds: wall time of all warm-up calls together (the first
            one traces and, under XLA, compiles).
    """

    seconds: float
    rounds: List[float]
    spread: float
    warmup_seconds: float


def time_calls(fn, warmup=2, steps=10, repeats=3):
    """Times the no-argument callable `fn`.

    Args:
        fn: called with no arguments; returns a tensor or a structure of
            tensors (read back to wait for it).
        warmup: untimed calls first (at least 1 is sensible: tracing).
        steps: consecutive calls per timed round.
        repeats: timed rounds.

    Returns:
        A `Timing`.

    Raises:
        ValueError: `warmup` < 0, `steps` or `repeats` < 1.
        Whatever `fn` raises (e.g. an XLA compilation error), unchanged.
    """
    if warmup < 0 or steps < 1 or repeats < 1:
        raise ValueError(
            "time_calls needs warmup >= 0, steps >= 1 and repeats >= 1. Received: "
            f"warmup={warmup!r}, steps={steps!r}, repeats={repeats!r}")
    start = time.perf_counter()
    for _ in range(warmup):
        sync(fn())
    warmup_seconds = time.perf_counter() - start
    rounds = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = None
        for _ in range(steps):
            out = fn()
        sync(out)
        rounds.append((time.perf_counter() - start) / steps)
    median = statistics.median(rounds)
    return Timing(seconds=median, rounds=rounds,
                  spread=(max(rounds) - min(rounds)) / median if median else 0.0,
                  warmup_seconds=warmup_seconds)


def keras_train_step(model, x, y):
    """A no-argument callable running one compiled training step of `model`.

    The step is ``model.train_function(iterator)`` (one optimizer step with
    the compiled loss and metrics, as `fit` runs it, ``steps_per_execution``
    batches per call) over an endless iterator of the fixed batch ``(x, y)``.

    Args:
        model: a compiled Keras model.
        x: a batch of inputs (NumPy array or tensor).
        y: its labels.

    Returns:
        The callable; it returns the step's logs.
    """
    if hasattr(model, "_maybe_symbolic_build"):
        # What `fit` does before its first step: build metrics and optimizer.
        # pylint: disable-next=protected-access
        model._maybe_symbolic_build(data_batch=(x[:1], y[:1], None))
        model.make_train_function()
    else:  # a Keras without that hook: train_on_batch builds everything (one more trace)
        model.train_on_batch(x[:8], y[:8])
    iterator = iter(tf.data.Dataset.from_tensors((x, y)).repeat())
    return lambda: model.train_function(iterator)


class InterleavedTiming(tuple):
    """(median wall s, spread, median process-CPU s, per-round wall list,
    per-round CPU list)."""

    def __new__(cls, wall, spread, cpu, rounds, cpu_rounds):
        return super().__new__(cls, (wall, spread, cpu, rounds, cpu_rounds))

    wall = property(lambda self: self[0])
    spread = property(lambda self: self[1])
    cpu = property(lambda self: self[2])
    rounds = property(lambda self: self[3])
    cpu_rounds = property(lambda self: self[4])
    wall_min = property(lambda self: min(self[3]))
    cpu_min = property(lambda self: min(self[4]))


def time_interleaved(fns, warmup, steps, repeats, order="rotate"):
    """Median seconds per call of each no-arg function in `fns`.

    Every function is called `warmup` times untimed; then, `repeats` rounds
    each time `steps` consecutive calls per function.

    Args:
        fns: ``{name: no-argument callable}``; each returns a tensor, a
            structure of tensors or None (read back to wait for it).
        warmup, steps, repeats: as for `time_calls`.
        order: the order of the functions in round r. ``"rotate"``
            (`train_step_benchmark.py`): rotated by r, reversed in odd rounds.
            ``"alternate"`` (`defense_benchmark.py`): as given in even rounds,
            reversed in odd ones. Each script keeps the order its published
            numbers were measured with.

    Returns:
        ``{name: InterleavedTiming}``; spread is (max - min) / median of the
        rounds' wall times; cpu is the median process CPU time (all threads)
        per call, less sensitive to other processes on the machine.

    Raises:
        ValueError: an unknown `order`.
    """
    if order not in ("rotate", "alternate"):
        raise ValueError(f"order must be 'rotate' or 'alternate'. Received: order={order!r}")
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            sync(fns[name]())
    rounds = {name: [] for name in names}
    cpu_rounds = {name: [] for name in names}
    for r in range(repeats):
        if order == "alternate":
            round_order = names if r % 2 == 0 else names[::-1]
        else:
            round_order = names[r % len(names):] + names[:r % len(names)]
            if r % 2:
                round_order = round_order[::-1]
        for name in round_order:
            fn = fns[name]
            start, cpu_start = time.perf_counter(), time.process_time()
            out = None
            for _ in range(steps):
                out = fn()
            sync(out)
            rounds[name].append((time.perf_counter() - start) / steps)
            cpu_rounds[name].append((time.process_time() - cpu_start) / steps)
    result = {}
    for name, values in rounds.items():
        med = statistics.median(values)
        result[name] = InterleavedTiming(med, (max(values) - min(values)) / med,
                                         statistics.median(cpu_rounds[name]), values,
                                         cpu_rounds[name])
    return result
