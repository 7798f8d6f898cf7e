"""Per-example distances between clean and adversarial batches."""

import numpy as np
import tensorflow as tf

__all__ = ["l1_distance", "l2_distance", "linf_distance"]


def _flat_difference(x, x_adv):
    x = x.numpy() if isinstance(x, (tf.Tensor, tf.Variable)) else np.asarray(x)
    x_adv = (
        x_adv.numpy() if isinstance(x_adv, (tf.Tensor, tf.Variable)) else np.asarray(x_adv)
    )
    if x.shape != x_adv.shape or x.ndim < 1:
        raise ValueError(
            "`x` and `x_adv` must have the same shape [B, ...]. Received: "
            f"x.shape={x.shape}, x_adv.shape={x_adv.shape}"
        )
    diff = x_adv.astype(np.float64) - x.astype(np.float64)
    return diff.reshape(diff.shape[0], -1)


def l2_distance(x, x_adv):
    """Per-example L2 norm of ``x_adv - x``.

    Args:
        x: clean batch ``[B, ...]`` (array or tensor).
        x_adv: adversarial batch of the same shape.

    Returns:
        float64 ``np.ndarray`` ``[B]``.

    Example:

    ```python
    l2_distance(x, cw_l2(model, x, y)).mean()
    ```
    """
    return np.sqrt(np.sum(np.square(_flat_difference(x, x_adv)), axis=1))


def l1_distance(x, x_adv):
    """Per-example L1 norm of ``x_adv - x``; float64 ``np.ndarray`` ``[B]``."""
    return np.sum(np.abs(_flat_difference(x, x_adv)), axis=1)


def linf_distance(x, x_adv):
    """Per-example L-inf norm of ``x_adv - x``; float64 ``np.ndarray`` ``[B]``."""
    diff = _flat_difference(x, x_adv)
    if diff.shape[1] == 0:
        return np.zeros(diff.shape[0])
    return np.max(np.abs(diff), axis=1)
