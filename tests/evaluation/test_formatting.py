"""`formatting`: the one JSON cleaning and percent formatting of the harness."""

import json
import math

import numpy as np

from rls_tf.evaluation import formatting
from rls_tf.evaluation import masking
from rls_tf.evaluation import report


def test_clean_json_makes_numpy_and_nan_json_able():
    value = {1: np.float32(0.5), "a": [np.int64(3), np.bool_(True), float("nan")],
             "b": np.arange(2), "c": (math.inf, None, "x", True)}
    cleaned = formatting.clean_json(value)
    assert cleaned == {"1": 0.5, "a": [3, True, None], "b": [0, 1], "c": [None, None, "x", True]}
    assert json.loads(json.dumps(cleaned, allow_nan=False)) == cleaned
    assert type(cleaned["a"][1]) is bool and type(cleaned["a"][0]) is int


def test_percent_rate_and_number():
    assert formatting.percent({"mean": 0.553, "std": 0.009, "repeats": 3}) == "55.3 ± 0.9"
    assert formatting.percent({"mean": 0.553, "std": 0.009, "repeats": 1}) == "55.3"
    assert formatting.percent({"mean": 0.553, "std": 0.0, "repeats": 3}, std=False) == "55.3"
    assert formatting.percent(None) == formatting.percent({"mean": None}) == formatting.DASH
    assert formatting.rate(0.125) == "12.5%" and formatting.rate(None) == formatting.DASH
    assert formatting.number(0.12345) == "0.123" and formatting.number(None) == formatting.DASH


def test_report_and_masking_use_it():
    assert report.clean_json is formatting.clean_json and report.percent is formatting.percent
    assert masking.clean_json is formatting.clean_json
