"""Argument checks shared across the package, with "Received: ..." errors."""

import numpy as np

__all__ = ["check_int"]


def check_int(name, value, minimum=1, allow_none=False):
    """Returns `value` as an int, or raises a ValueError naming it.

    Args:
        name: the argument's name, for the message.
        value: what was received (bools are refused, NumPy ints accepted).
        minimum: the smallest allowed value.
        allow_none: whether None is allowed (and returned as is).

    Example:
        >>> check_int("num_samples", 3)
        3
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}. Received: {name}={value!r}")
    return int(value)
