"""Diversity measures of an ensemble's sampled predictions."""

import tensorflow as tf

__all__ = ["pairwise_disagreement"]


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
