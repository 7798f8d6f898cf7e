"""Metrics of the evaluation that depend on nothing of ours.

* `pairwise_disagreement`: diversity of an ensemble's sampled predictions.
* `accuracy_interval`: robust (or clean) accuracy of a possibly randomised
  defender with a confidence interval over the examples, and its worst-of-R
  accuracy (Lucas et al. 2023, "Randomness in ML defenses helps persistent
  attackers and hinders evaluators": an example counts only if all R
  defender repeats classify it correctly), from the per-example correctness
  of R repeats.
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

__all__ = ["AccuracyInterval", "accuracy_interval", "pairwise_disagreement",
           "wilson_interval"]


def pairwise_disagreement(samples):
    """Mean fraction of examples on which two sampled models disagree.

    Args:
        samples: ``[S, B, C]`` class probabilities (or logits) of S sampled
            models on a batch of B examples.

    Returns:
        Scalar float32: the mean, over all pairs ``i < j`` of samples and all
        examples, of ``argmax f_i(x) != argmax f_j(x)``. 0 when S == 1.

    Example:

    >>> import numpy as np
    >>> s = np.eye(3)[[[0, 1], [0, 2], [1, 1]]]  # 3 samples, 2 examples
    >>> float(pairwise_disagreement(s))  # pairs: (0,1)->.5 (0,2)->.5 (1,2)->1
    0.6666666865348816
    """
    labels = tf.argmax(samples, axis=-1)
    num = tf.shape(labels)[0]
    differ = tf.cast(labels[:, None, :] != labels[None, :, :], tf.float32)
    pairs = tf.cast(num * (num - 1), tf.float32)
    total = tf.reduce_sum(tf.reduce_mean(differ, axis=-1))
    return tf.math.divide_no_nan(total, pairs)


def _normal_quantile(confidence):
    # Two-sided standard-normal quantile without SciPy: bisection on erf
    # (monotone), to about 1e-12.
    target = 0.5 + confidence / 2.0
    low, high = 0.0, 10.0
    for _ in range(100):
        mid = (low + high) / 2.0
        if 0.5 * (1.0 + math.erf(mid / math.sqrt(2.0))) < target:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0


def _check_confidence(confidence):
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not (
            0.0 < confidence < 1.0):
        raise ValueError("`confidence` must be a number in (0, 1). "
                         f"Received: confidence={confidence!r}")
    return float(confidence)


def wilson_interval(mean, num_examples, confidence=0.95):
    """Wilson score interval of a proportion (or of a mean of values in [0, 1]).

    For a mean of B values in [0, 1] the interval is conservative: such a
    value's variance is at most ``p (1 - p)``, the Bernoulli variance the
    interval assumes. Unlike the normal interval it stays inside [0, 1] and
    does not collapse to a point at 0 or 1.

    Args:
        mean: the observed proportion / mean, in [0, 1].
        num_examples: B > 0.
        confidence: two-sided level, e.g. 0.95.

    Returns:
        ``(low, high)`` floats.

    Example:

    >>> low, high = wilson_interval(0.5, 100)
    >>> round(low, 4), round(high, 4)
    (0.4038, 0.5962)
    """
    confidence = _check_confidence(confidence)
    if isinstance(num_examples, bool) or int(num_examples) != num_examples or num_examples < 1:
        raise ValueError("`num_examples` must be a positive integer. "
                         f"Received: num_examples={num_examples!r}")
    if not 0.0 <= mean <= 1.0:
        raise ValueError(f"`mean` must be in [0, 1]. Received: mean={mean!r}")
    z = _normal_quantile(confidence)
    n = float(num_examples)
    centre = (mean + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(mean * (1 - mean) / n + z * z / (4 * n * n))
    # The interval holds the mean; at 0 and 1 the two terms cancel only up to
    # rounding, which would put the mean a hair outside its own interval.
    return max(0.0, min(mean, centre - half)), min(1.0, max(mean, centre + half))


@dataclasses.dataclass(frozen=True)
class AccuracyInterval:
    """A defender's accuracy with its uncertainty and its worst-of-R accuracy.

    Attributes:
        mean: expected accuracy: the mean over examples of the fraction of
            the R repeats that classify the example correctly.
        low, high: the confidence interval of `mean` over the examples
            (Wilson). For a stochastic defender each example's score is its
            mean over the R repeats, so the interval covers the draw-to-draw
            variation as well as the choice of examples.
        worst_of_r: the fraction of examples every one of the R repeats
            classifies correctly (equal to `mean` for R = 1).
        worst_low, worst_high: its Wilson interval over the examples.
        num_examples: B.
        repeats: R.
        confidence: the two-sided level of both intervals.
    """

    mean: float
    low: float
    high: float
    worst_of_r: float
    worst_low: float
    worst_high: float
    num_examples: int
    repeats: int
    confidence: float

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data):
        return cls(**{field.name: data[field.name] for field in dataclasses.fields(cls)})


def accuracy_interval(correct, confidence=0.95):
    """Accuracy, its confidence interval and worst-of-R from per-example results.

    Args:
        correct: bool ``[R, B]``: whether defender repeat r classified
            example b correctly (a deterministic defender: R = 1).
        confidence: two-sided level of the intervals.

    Returns:
        An `AccuracyInterval`.

    Example:

    >>> import numpy as np
    >>> correct = np.array([[1, 1, 0, 1], [1, 0, 0, 1]], bool)  # R=2, B=4
    >>> result = accuracy_interval(correct)
    >>> result.mean, result.worst_of_r
    (0.625, 0.5)
    """
    confidence = _check_confidence(confidence)
    correct = np.asarray(correct)
    if correct.ndim != 2 or correct.shape[0] < 1 or correct.shape[1] < 1:
        raise ValueError("`correct` must be a non-empty [repeats, examples] array. "
                         f"Received: correct with shape {correct.shape}")
    if correct.dtype != bool:
        if not np.isin(correct, (0, 1)).all():
            raise ValueError("`correct` must hold booleans (or 0/1). "
                             f"Received: values {np.unique(correct)[:5]!r}")
        correct = correct.astype(bool)
    repeats, num_examples = correct.shape
    mean = float(correct.mean())
    worst = float(correct.all(axis=0).mean())
    low, high = wilson_interval(mean, num_examples, confidence)
    worst_low, worst_high = wilson_interval(worst, num_examples, confidence)
    return AccuracyInterval(mean=mean, low=low, high=high, worst_of_r=worst,
                            worst_low=worst_low, worst_high=worst_high,
                            num_examples=int(num_examples), repeats=int(repeats),
                            confidence=confidence)
