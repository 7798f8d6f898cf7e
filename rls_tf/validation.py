"""Argument checks shared across the package, with "Received: ..." errors.

One rule per kind of value, so that every module refuses the same inputs
with the same words:

* `check_int`: an int (NumPy ints accepted, bools refused) >= a minimum.
* `check_seed`: None or an int in ``[0, 2**31)`` (fits every TF/NumPy seed
  argument and a ``Multinomial`` op seed).
* `check_float`: a finite real number in a range (bounds open or closed).
* `check_probability`: a float in ``[0, 1]`` (or ``(0, 1]``).
* `check_bool`: a real bool.
* `check_choice`: one of a fixed tuple of values.

This module imports nothing else of ``rls_tf``: every part of the package,
the attacks and the data pipeline included, may use it.
"""

import math

import numpy as np

__all__ = ["SEED_LIMIT", "check_bool", "check_choice", "check_float", "check_int",
           "check_probability", "check_seed"]

# Seeds are below 2**31: the largest value every TF op seed and NumPy accepts.
SEED_LIMIT = 2**31


def _is_int(value):
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def check_int(name, value, minimum=1, allow_none=False, maximum=None):
    """Returns `value` as an int, or raises a ValueError naming it.

    Args:
        name: the argument's name, for the message.
        value: what was received (bools are refused, NumPy ints accepted).
        minimum: the smallest allowed value.
        allow_none: whether None is allowed (and returned as is).
        maximum: optional largest allowed value.

    Example:
        >>> check_int("num_samples", 3)
        3
    """
    if value is None and allow_none:
        return None
    if not _is_int(value) or value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"`{name}` must be an int {bound}. Received: {name}={value!r}")
    return int(value)


def check_seed(name, value, allow_none=True):
    """Returns a seed as an int (or None), or raises a ValueError naming it.

    Example:
        >>> check_seed("seed", 7)
        7
    """
    if value is None and allow_none:
        return None
    if not _is_int(value) or not 0 <= value < SEED_LIMIT:
        what = "None or an int" if allow_none else "an int"
        raise ValueError(f"`{name}` must be {what} in [0, 2**31). Received: {name}={value!r}")
    return int(value)


def check_float(name, value, minimum=None, maximum=None, min_open=False, max_open=False,
                allow_none=False):
    """Returns a finite number as a float within the given bounds, or raises.

    Example:
        >>> check_float("eps", 0.3, minimum=0.0)
        0.3
    """
    if value is None and allow_none:
        return None
    ok = (not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
          and math.isfinite(float(value)))
    if ok:
        v = float(value)
        if minimum is not None and (v < minimum or (min_open and v == minimum)):
            ok = False
        if maximum is not None and (v > maximum or (max_open and v == maximum)):
            ok = False
    if not ok:
        low = "" if minimum is None else f"{'(' if min_open else '['}{minimum:g}"
        high = "" if maximum is None else f"{maximum:g}{')' if max_open else ']'}"
        if low and high:
            bound = f" in {low}, {high}"
        elif low:
            bound = f" {'>' if min_open else '>='} {minimum:g}"
        elif high:
            bound = f" {'<' if max_open else '<='} {maximum:g}"
        else:
            bound = ""
        raise ValueError(f"`{name}` must be a finite number{bound}. Received: {name}={value!r}")
    return float(value)


def check_probability(name, value, allow_zero=True):
    """A probability in ``[0, 1]`` (``(0, 1]`` with ``allow_zero=False``)."""
    return check_float(name, value, minimum=0.0, maximum=1.0, min_open=not allow_zero)


def check_bool(name, value, allow_none=False):
    """Returns `value` if it is a bool (or None when allowed), else raises."""
    if value is None and allow_none:
        return None
    if not isinstance(value, (bool, np.bool_)):
        what = "None or a bool" if allow_none else "a bool"
        raise ValueError(f"`{name}` must be {what}. Received: {name}={value!r}")
    return bool(value)


def check_choice(name, value, choices):
    """Returns `value` if it is one of `choices`, else raises naming them."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}. Received: {name}={value!r}")
    return value
