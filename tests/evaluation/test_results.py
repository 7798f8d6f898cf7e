"""`EvaluationResults`: the committed results and shard files load, round trip, merge, combine."""

import glob
import json
import os

import pytest

from rls_tf.evaluation.results import EvaluationResults

ROOT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir)
DOCS = os.path.join(ROOT, "docs", "results")
FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "v1_shards")
FILES = sorted(p for p in glob.glob(os.path.join(DOCS, "*", "*.json"))
               + glob.glob(os.path.join(FIXTURES, "*.json"))
               if json.load(open(p, encoding="utf-8")).get("config") is not None)


def _load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.parametrize("path", FILES, ids=lambda p: os.path.relpath(p, ROOT))
def test_committed_documents_round_trip_key_for_key(path):
    data = _load(path)
    results = EvaluationResults.from_json(data)
    assert json.dumps(results.to_json()) == json.dumps(data)
    assert all(r.threat_model and r.attack for r in results.robust)


def _numbers(doc):
    return [{k: r.get(k) for k in ("model", "threat_model", "attack", "param", "accuracy",
                                   "accuracy_vs_samples", "attacker_accuracy", "num_examples")}
            for r in doc["robust"]]


def test_committed_shards_merge_into_the_committed_results():
    directory = os.path.join(FIXTURES)
    shards = [EvaluationResults.from_json(_load(p))
              for p in sorted(glob.glob(os.path.join(directory, "shard-*-of-*.json")))]
    merged = EvaluationResults.merge(shards)
    expected = _load(os.path.join(directory, "expected_merged.json"))
    assert _numbers(merged.to_json()) == _numbers(expected)
    # Format 3 adds each clean entry's interval; the other numbers are the old ones.
    assert {k: {f: v for f, v in entry.items() if f != "interval"}
            for k, entry in merged.clean.items()} == expected["clean"]
    assert all("interval" in entry for entry in merged.clean.values())


def test_a_ten_shard_evaluation_merges_again():
    directory = os.path.join(DOCS, "mnist_sap_500_26199214")
    shards = [_load(p) for p in sorted(glob.glob(os.path.join(directory, "shard-*.json")))]
    assert len(shards) == 10
    merged = EvaluationResults.merge(shards)
    committed = _load(os.path.join(directory, "results.json"))
    assert _numbers(merged.to_json()) == _numbers(committed)


def test_two_committed_results_combine():
    first = EvaluationResults.load(os.path.join(DOCS, "mnist_sap_500_26199214"))
    renamed = first.to_json()
    # The same protocol with the models under other keys: a second evaluation.
    rename = {key: f"{key}_b" for key in renamed["models"]}
    for section in ("models", "clean", "interrater"):
        renamed[section] = {rename[k]: v for k, v in renamed[section].items()}
    for record in renamed["robust"]:
        record["model"] = rename[record["model"]]
    renamed["skipped"] = [dict(s, model=rename[s["model"]]) if "model" in s else s
                          for s in renamed.get("skipped", [])]
    combined = EvaluationResults.combine([first, renamed])
    assert list(combined.models) == list(first.models) + list(rename.values())
    assert len(combined.robust) == 2 * len(first.robust)
    assert json.loads(json.dumps(combined.to_json())) == combined.to_json()
