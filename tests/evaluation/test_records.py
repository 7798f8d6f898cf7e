"""Typed records: JSON round trips, one summary for runs and merges, old shards still merge."""

import json
import os

import numpy as np
import pytest

from rls_tf.attacks.registry import REGISTRY
from rls_tf.evaluation import records
from rls_tf.evaluation import report
from rls_tf.evaluation import shards

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "v1_shards")


def test_results_carry_the_format_version(tiny_results):
    assert tiny_results["format_version"] == records.FORMAT_VERSION == 3


def test_robust_records_round_trip_through_json(tiny_results):
    assert tiny_results["robust"]
    for entry in tiny_results["robust"]:
        text = json.loads(json.dumps(report.clean_json(entry)))
        record = records.RobustRecord.from_json(text)
        assert record.min_norm == REGISTRY[record.attack].min_norm
        assert record.to_json() == text
        assert list(record.to_json()) == list(entry)  # key order is kept too


def test_a_record_is_its_per_example_data():
    rng = np.random.default_rng(0)
    examples = {
        "correct": {"1": rng.random((2, 10)) < 0.5, "3": rng.random((2, 10)) < 0.6},
        "members_correct": rng.integers(0, 4, size=(2, 10)),
        "attacker_correct": rng.random(10) < 0.3,
        "attacker_clean_correct": np.ones(10, bool),
        "linf": rng.random(10),
        "success": rng.random(10) < 0.7,
        "l2": rng.random(10),
        "l1": rng.random(10) * 3,
    }
    identity = {"model": "rls", "threat_model": "paper", "threat_model_name": "paper",
                "attack": "cw", "param": "c=1", "value": 1.0, "settings": {}, "attacker": {}}
    record = records.RobustRecord.from_examples(examples, 3, identity, {"attack": 1.0,
                                                                        "defender": 2.0}, True)
    assert record.accuracy["repeats"] == 2
    np.testing.assert_allclose(record.accuracy["mean"], np.mean(examples["correct"]["3"]))
    assert record.success_rate == pytest.approx(examples["success"].mean())
    np.testing.assert_allclose(record.l2["mean"], examples["l2"][examples["success"]].mean())
    assert record.attacker_accuracy == pytest.approx(examples["attacker_correct"].mean())
    same = records.RobustRecord.from_json(json.loads(json.dumps(report.clean_json(
        record.to_json()))))
    assert same.to_json() == json.loads(json.dumps(report.clean_json(record.to_json())))


def test_shards_written_before_the_interface_still_merge():
    # Written by the code before format_version 2 (two shards of a tiny
    # evaluation) with its own merge of them; the merge of today must give
    # the same numbers.
    merged = shards.merge_shards(shards.load_shards(FIXTURE))
    with open(os.path.join(FIXTURE, "expected_merged.json"), encoding="utf-8") as f:
        expected = json.load(f)
    got = json.loads(json.dumps(report.clean_json(
        {k: merged[k] for k in ("clean", "interrater", "robust")})))
    # Format 3 adds the interval of every entry; the numbers the old code
    # wrote are unchanged.
    intervals = [entry.pop("interval") for entry in
                 [*got["clean"].values(), *got["robust"]]]
    assert got == expected
    assert all(i["low"] <= i["mean"] <= i["high"] and i["worst_of_r"] <= i["mean"]
               for i in intervals)
    assert merged["format_version"] == records.FORMAT_VERSION
