"""How results are written: JSON cleaning and percent formatting, in one place.

`clean_json` makes a results structure JSON-able (NaN/inf -> None, NumPy
scalars and arrays -> Python values); `percent` prints an accuracy summary
as the tables do, `rate` a fraction, `number` a plain value. The report,
the masking checks and the shard files all use these.

Pure Python + NumPy.
"""

import math

import numpy as np

__all__ = ["DASH", "clean_json", "number", "percent", "rate"]

# What a table prints for a missing number.
DASH = "—"


def clean_json(value):
    """`value` made JSON-able: NaN/inf -> None, NumPy scalars/arrays -> Python."""
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return clean_json(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def percent(summary, std=True):
    """An accuracy summary as the tables print it: ``"55.3 ± 0.9"`` (%), or a dash.

    Args:
        summary: ``{"mean", "std", "repeats"}`` (fractions), or None.
        std: append ``± std`` when there are several repeats.
    """
    if not summary or summary.get("mean") is None:
        return DASH
    text = f"{100 * summary['mean']:.1f}"
    if std and summary.get("repeats", 1) > 1:
        text += f" ± {100 * (summary.get('std') or 0.0):.1f}"
    return text


def rate(value):
    """A fraction as a percentage, ``"12.5%"``, or a dash for None."""
    return DASH if value is None else f"{100 * value:.1f}%"


def number(value, digits=3):
    """A plain number with `digits` decimals, or a dash for None."""
    return DASH if value is None else f"{value:.{digits}f}"
