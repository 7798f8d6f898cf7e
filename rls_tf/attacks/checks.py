"""Argument checks shared by the attacks.

Every check raises ``ValueError`` with a message that ends in
``Received: name=value`` (no bare asserts), so a wrong call names the argument
at fault. The checks that accept an array return it converted: ``check_x``
returns a float32 ``tf.Tensor`` clipped to ``[clip_min, clip_max]`` (inputs up
to ``RANGE_TOLERANCE`` outside the range are accepted and clipped) and
``check_labels`` an int64 ``tf.Tensor``.
"""

import math
import numbers

import numpy as np
import tensorflow as tf

__all__ = [
    "RANGE_TOLERANCE",
    "check_bool",
    "check_choice",
    "check_clip_range",
    "check_fraction",
    "check_labels",
    "check_labels_in_range",
    "check_model_fn",
    "check_model_output",
    "check_non_negative",
    "check_positive",
    "check_positive_int",
    "check_seed",
    "check_x",
]

# How far (absolute) x may lie outside [clip_min, clip_max] before it is refused.
RANGE_TOLERANCE = 1e-6


def _short(value):
    """A short repr of an argument for an error message."""
    if isinstance(value, (np.ndarray, tf.Tensor)) or hasattr(value, "shape"):
        shape = tuple(getattr(value, "shape", ()))
        dtype = getattr(value, "dtype", None)
        dtype = getattr(dtype, "name", dtype)
        return f"<array shape={shape} dtype={dtype}>"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_real_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_model_fn(model_fn):
    """Checks that ``model_fn`` is callable."""
    if not callable(model_fn):
        raise ValueError(
            "`model_fn` must be a callable mapping x to logits [B, K] or "
            f"[E, B, K]. Received: model_fn={_short(model_fn)}"
        )


def check_clip_range(clip_min, clip_max):
    """Checks that ``clip_min < clip_max``, both finite real numbers."""
    for name, value in (("clip_min", clip_min), ("clip_max", clip_max)):
        if not _is_real_number(value) or not math.isfinite(value):
            raise ValueError(
                f"`{name}` must be a finite real number. Received: {name}={_short(value)}"
            )
    if not clip_min < clip_max:
        raise ValueError(
            "`clip_min` must be smaller than `clip_max`. "
            f"Received: clip_min={clip_min!r}, clip_max={clip_max!r}"
        )


def check_x(x, clip_min, clip_max, name="x"):
    """Checks an image batch and returns it as a clipped float32 tensor.

    Args:
        x: array-like ``[B, H, W, C]`` of a floating dtype.
        clip_min: lower end of the valid pixel range.
        clip_max: upper end of the valid pixel range.
        name: the argument's name, for the error message.

    Returns:
        ``tf.Tensor`` float32 ``[B, H, W, C]``, clipped to ``[clip_min, clip_max]``.

    Raises:
        ValueError: ``x`` is missing, not rank 4, not floating point, not
            finite, or outside ``[clip_min, clip_max]`` by more than
            ``RANGE_TOLERANCE``.
    """
    check_clip_range(clip_min, clip_max)
    if x is None:
        raise ValueError(f"`{name}` is required. Received: {name}=None")
    try:
        if isinstance(x, (tf.Tensor, tf.Variable)):
            dtype = tf.as_dtype(x.dtype)
            is_float = dtype.is_floating
            value = x
        else:
            value = np.asarray(x)
            is_float = np.issubdtype(value.dtype, np.floating)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"`{name}` must be a float array [B, H, W, C]. Received: {name}={_short(x)}"
        ) from err
    if len(value.shape) != 4:
        raise ValueError(
            f"`{name}` must have rank 4 [B, H, W, C]. Received: {name}={_short(x)}"
        )
    if not is_float:
        raise ValueError(
            f"`{name}` must be floating point, in [clip_min, clip_max] = "
            f"[{clip_min}, {clip_max}] (scale uint8 pixels first). "
            f"Received: {name}={_short(x)}"
        )
    value = tf.cast(tf.convert_to_tensor(value), tf.float32)
    if int(tf.size(value)) > 0:
        low = float(tf.reduce_min(value))
        high = float(tf.reduce_max(value))
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(
                f"`{name}` must be finite. Received: {name}={_short(x)} with "
                f"min={low}, max={high}"
            )
        if low < clip_min - RANGE_TOLERANCE or high > clip_max + RANGE_TOLERANCE:
            raise ValueError(
                f"`{name}` must lie within [clip_min, clip_max] = [{clip_min}, "
                f"{clip_max}]. Received: {name}={_short(x)} with min={low}, max={high}"
            )
    return tf.clip_by_value(value, clip_min, clip_max)


def check_labels(y, batch_size, name="y"):
    """Checks integer class labels ``[B]`` and returns them as int64.

    Labels are required: an attack never falls back to the model's own
    prediction (for a randomised model that prediction is noise).

    Raises:
        ValueError: ``y`` is missing, not of shape ``[batch_size]``, not of
            an integer dtype, or negative.
    """
    if y is None:
        raise ValueError(
            f"`{name}` (the true labels, int [B]) is required. Received: {name}=None"
        )
    try:
        value = y.numpy() if isinstance(y, (tf.Tensor, tf.Variable)) else np.asarray(y)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"`{name}` must be integer labels [B]. Received: {name}={_short(y)}"
        ) from err
    if value.dtype == np.bool_ or not np.issubdtype(value.dtype, np.integer):
        raise ValueError(
            f"`{name}` must be integer class indices [B] (not one-hot, not "
            f"float). Received: {name}={_short(y)}"
        )
    if value.shape != (batch_size,):
        raise ValueError(
            f"`{name}` must have shape [B] = [{batch_size}] (one label per "
            f"example of x). Received: {name}={_short(y)}"
        )
    if value.size and value.min() < 0:
        raise ValueError(
            f"`{name}` must be non-negative class indices. Received: {name}="
            f"{_short(y)} with min={value.min()}"
        )
    return tf.constant(value.astype(np.int64))


def check_labels_in_range(y, num_classes, name="y"):
    """Checks that every label is ``< num_classes``."""
    if int(tf.size(y)) and int(tf.reduce_max(y)) >= num_classes:
        raise ValueError(
            f"`{name}` must be class indices < {num_classes} (the model's number "
            f"of classes). Received: {name}={_short(y)} with max={int(tf.reduce_max(y))}"
        )


def check_model_output(logits, batch_size):
    """Checks a ``model_fn`` output: ``[B, K]`` or ``[E, B, K]``, floating.

    Returns:
        The number of classes ``K``.
    """
    shape = tuple(logits.shape)
    dtype = tf.as_dtype(logits.dtype)
    ok = (
        len(shape) in (2, 3)
        and dtype.is_floating
        and shape[-2] == batch_size
        and shape[-1] is not None
        and shape[-1] >= 2
        and (len(shape) == 2 or (shape[0] is not None and shape[0] >= 1))
    )
    if not ok:
        raise ValueError(
            "`model_fn` must return float logits [B, K] or [E, B, K] (E "
            "stochastic draws, B the batch size of x, K >= 2). Received: "
            f"model_fn returning shape={shape} dtype={dtype.name} for a batch "
            f"of {batch_size}"
        )
    return int(shape[-1])


def check_non_negative(value, name):
    """Checks a finite real number ``>= 0``."""
    if not _is_real_number(value) or not math.isfinite(value) or value < 0:
        raise ValueError(
            f"`{name}` must be a finite number >= 0. Received: {name}={_short(value)}"
        )


def check_positive(value, name):
    """Checks a finite real number ``> 0``."""
    if not _is_real_number(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"`{name}` must be a finite number > 0. Received: {name}={_short(value)}"
        )


def check_fraction(value, name):
    """Checks a real number in ``(0, 1]``."""
    if not _is_real_number(value) or not 0.0 < value <= 1.0:
        raise ValueError(
            f"`{name}` must be a number in (0, 1]. Received: {name}={_short(value)}"
        )


def check_positive_int(value, name, minimum=1):
    """Checks an integer ``>= minimum`` (bools and floats are refused)."""
    if (
        not isinstance(value, numbers.Integral)
        or isinstance(value, (bool, np.bool_))
        or value < minimum
    ):
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}. Received: {name}={_short(value)}"
        )


def check_bool(name, value):
    """Checks a bool; returns it as a Python bool.

    The argument order (and message) of `rls_tf.validation.check_bool`; it
    is defined here because the attacks import nothing of ``rls_tf`` outside
    their package (`tests/attacks/test_arguments.py`).
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"`{name}` must be a bool. Received: {name}={_short(value)}")
    return bool(value)


def check_choice(value, name, choices):
    """Checks that ``value`` is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"`{name}` must be one of {tuple(choices)}. Received: {name}={_short(value)}"
        )


def check_seed(seed, name="seed"):
    """Checks an optional integer seed ``>= 0``."""
    if seed is None:
        return
    if (
        not isinstance(seed, numbers.Integral)
        or isinstance(seed, (bool, np.bool_))
        or seed < 0
    ):
        raise ValueError(
            f"`{name}` must be None or an integer >= 0. Received: {name}={_short(seed)}"
        )


def check_tied_fn(tied_fn):
    """Checks the optional common-draws ``tied_fn`` (None or a callable)."""
    if tied_fn is not None and not callable(tied_fn):
        raise ValueError(
            "`tied_fn` must be None or a callable (x, copies) -> logits [E, copies * n, K] "
            f"(see rls_tf.attacks._common.tied_logits). Received: tied_fn={_short(tied_fn)}"
        )
