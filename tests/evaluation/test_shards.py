"""Sharded evaluation: slices, shard files, merge == one run, refused merges."""

import json

import numpy as np
import pytest

from rls_tf.evaluation import interrater
from rls_tf.evaluation import presets
from rls_tf.evaluation import report
from rls_tf.evaluation import runner
from rls_tf.evaluation import shards

from tests.evaluation.conftest import toy_images

# Everything the report shows, per record (not the timings).
NUMBERS = ("accuracy", "accuracy_vs_samples", "interrater", "attacker_accuracy",
           "attacker_clean_accuracy", "linf_max", "num_examples", "attacked_examples",
           "success_rate", "l2", "l1")


def test_shard_range_covers_batch_aligned_slices():
    for num_examples, batch_size, num_shards in ((10, 4, 2), (10, 4, 3), (100, 7, 5), (9, 1, 9)):
        ranges = [shards.shard_range(num_examples, batch_size, num_shards, i)
                  for i in range(num_shards)]
        assert ranges[0][0] == 0 and ranges[-1][1] == num_examples
        for (_, stop), (start, _) in zip(ranges, ranges[1:]):
            assert stop == start and start % batch_size == 0
        assert all(stop > start for start, stop in ranges)
    assert shards.shard_range(10, 4, 2, 0) == (0, 4)
    assert shards.shard_range(10, 4, 2, 1) == (4, 10)
    assert shards.shard_range(10, 4, 1, 0) == (0, 10)
    with pytest.raises(ValueError, match=r"num_shards=4 is more than the 3 batch"):
        shards.shard_range(10, 4, 4, 0)
    with pytest.raises(ValueError, match=r"shard_index.*Received: shard_index=2"):
        shards.shard_range(10, 4, 2, 2)
    with pytest.raises(ValueError, match=r"num_shards.*Received: num_shards=0"):
        shards.shard_range(10, 4, 0, 0)


def test_kappa_from_counts_is_kappa():
    rng = np.random.default_rng(0)
    correct = rng.random((5, 37)) < 0.7
    assert interrater.interrater_agreement_from_counts(correct.sum(axis=0), 5) == (
        interrater.interrater_agreement(correct))
    with pytest.raises(ValueError, match=r"in \[0, L=2\]"):
        interrater.interrater_agreement_from_counts([0, 3], 2)


def _config(seed=7, **changes):
    preset = presets.get_preset("paper_mnist").replace(
        fgsm_eps=(0.2,), pgd_eps=(0.2,), cw_c=(1.0,), ead_c=(10.0,), pgd_steps=2,
        pgd_rand_init=True, cw_steps=3, ead_steps=3, deepfool_max_iter=2, apgd_steps=3,
        apgd_restarts=2, multi_sample_paths=(2,), transfer_steps=2, arc_steps=2, arc_paths=2,
    )
    kwargs = dict(attacks=runner.ATTACK_NAMES,
                  threat_models=("paper", "multi_sample", "transfer", "arc"),
                  surrogates=("baseline",),
                  preset=preset, eval_samples=3, repeats=2, sample_counts=(1, 3, 5),
                  batch_size=3, seed=seed, verbose=0)
    kwargs.update(changes)
    return runner.EvalConfig(**kwargs)


def _roundtrip(payload):
    return json.loads(json.dumps(report.clean_json(payload)))


@pytest.fixture(scope="module")
def sharded(micro_models):
    """One unsharded run and its 3 shards (10 images, batches of 3)."""
    x, y = toy_images(10, size=8, seed=21)
    config = _config()
    whole = _roundtrip(runner.run_evaluation(micro_models, x, y, config, log=None))
    parts = [_roundtrip(shards.run_shard(micro_models, x, y, config, 3, i, log=None))
             for i in range(3)]
    return {"whole": whole, "parts": parts, "x": x, "y": y, "config": config}


def test_a_shard_covers_exactly_its_slice(sharded):
    starts = [(p["shard"]["start"], p["shard"]["stop"]) for p in sharded["parts"]]
    assert starts == [(0, 3), (3, 6), (6, 10)]
    for part, (start, stop) in zip(sharded["parts"], starts):
        assert part["config"]["num_examples"] == 10
        for record in part["robust"]:
            assert record["num_examples"] == stop - start
            assert len(record["examples"]["attacker_correct"]) == stop - start
            assert [len(r) for r in record["examples"]["correct"]["3"]] == [stop - start] * (
                2 if record["model"] == "rls" else 1)
        assert len(part["examples"]["clean"]["rls"]["members_correct"][0]) == stop - start


def test_merged_shards_equal_one_run(sharded):
    whole = sharded["whole"]
    merged = _roundtrip(shards.merge_shards(list(reversed(sharded["parts"]))))
    assert merged["config"] == whole["config"]
    assert merged["clean"] == whole["clean"]
    assert merged["interrater"] == whole["interrater"]
    # kappa of the defender's samples on adversarial images (clean ones are all right).
    assert any(r["interrater"] and r["interrater"]["mean"] is not None for r in merged["robust"])
    assert merged["skipped"] == whole["skipped"]
    assert merged["models"] == whole["models"]
    assert len(merged["robust"]) == len(whole["robust"])
    for a, b in zip(merged["robust"], whole["robust"]):
        assert {k: v for k, v in a.items() if k != "seconds"} == {
            k: v for k, v in b.items() if k != "seconds"}
        assert set(a["seconds"]) == {"attack", "defender"}
    # Seeded random starts, min-norm attacks and R x N defender draws included.
    # (Square and SPSA run under eot only: their shards in test_masking_runs.)
    assert {r["attack"] for r in merged["robust"]} == set(runner.ATTACK_NAMES) - {"square", "spsa"}
    assert any(r.get("success_rate") for r in merged["robust"])
    assert merged["merged"]["num_shards"] == 3
    assert [s["start"] for s in merged["merged"]["shards"]] == [0, 3, 6]
    assert merged["timings"]["total"] == pytest.approx(
        sum(p["timings"]["total"] for p in sharded["parts"]))
    assert set(merged["timings"]) == set(whole["timings"])


def test_merge_refuses_mismatched_missing_and_duplicate_shards(sharded, micro_models):
    parts = sharded["parts"]
    with pytest.raises(ValueError, match=r"Missing shard\(s\) 1 of 3"):
        shards.merge_shards([parts[0], parts[2]])
    with pytest.raises(ValueError, match="Duplicate shard 2 of 3"):
        shards.merge_shards(parts + [parts[2]])
    with pytest.raises(ValueError, match="No shards"):
        shards.merge_shards([])
    other_seed = json.loads(json.dumps(parts[1]))
    other_seed["config"]["seed"] = 8
    with pytest.raises(ValueError, match=r"differ in config\.seed\. Received: 7 vs 8"):
        shards.merge_shards([parts[0], other_seed, parts[2]])
    other_count = json.loads(json.dumps(parts[1]))
    other_count["shard"]["count"] = 4
    with pytest.raises(ValueError, match=r"differ in num_shards"):
        shards.merge_shards([parts[0], other_count, parts[2]])
    other_model = json.loads(json.dumps(parts[2]))
    other_model["models"]["rls"]["fingerprint"] = "0" * 64
    with pytest.raises(ValueError, match=r"differ in models\.rls\.fingerprint"):
        shards.merge_shards([parts[0], parts[1], other_model])
    # A shard of another batch size is refused too (real run, not an edit).
    x, y = sharded["x"], sharded["y"]
    odd = _roundtrip(shards.run_shard({"rls": micro_models["rls"]}, x, y,
                                      _config(batch_size=4, attacks=("fgsm",),
                                              threat_models=("paper",)), 3, 1, log=None))
    with pytest.raises(ValueError, match="Shards of different evaluations"):
        shards.merge_shards([parts[0], odd, parts[2]])


def test_a_partial_merge_has_the_numbers_of_the_shards_it_has(sharded, tmp_path):
    # An evaluation still running: shards 0 and 2 of 3 (images 0-2 and 6-9).
    parts = [sharded["parts"][0], sharded["parts"][2]]
    merged = _roundtrip(shards.merge_shards(parts, allow_missing=True))
    assert merged["merged"]["missing"] == [1] and merged["merged"]["num_examples"] == 7
    assert merged["merged"]["of_shards"] == 3 and merged["merged"]["planned_examples"] == 10
    assert merged["merged"]["num_shards"] == 2
    for record in merged["robust"]:
        assert record["num_examples"] == 7
        if record["model"] == "plain":  # deterministic: one reading per image
            own = [next(r for r in p["robust"] if all(
                r[k] == record[k] for k in ("model", "attack", "param", "threat_model")))
                for p in parts]
            hits = sum(r["examples"]["attacker_correct"].count("1") for r in own)
            assert record["attacker_accuracy"] == pytest.approx(hits / 7)
    # Complete shards merge as before: nothing is said missing.
    assert "missing" not in shards.merge_shards(sharded["parts"], allow_missing=True)["merged"]
    for part in parts:
        shards.write_shard(part, str(tmp_path))
    _, paths = shards.merge_directory(str(tmp_path), allow_missing=True)
    text = open(paths["markdown"], encoding="utf-8").read()
    assert "**Partial**: shard(s) 1 of 3 not computed yet; these numbers are of the 7 " \
           "images the other shards cover, of the evaluation's 10." in text


def test_shard_files_round_trip(sharded, tmp_path):
    for part in sharded["parts"]:
        path = shards.write_shard(part, str(tmp_path))
        assert path.endswith(f"shard-{part['shard']['index']}-of-3.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "shard-0-of-3.json", "shard-1-of-3.json", "shard-2-of-3.json"]
    results, paths = shards.merge_directory(str(tmp_path))
    written = json.loads(open(paths["json"], encoding="utf-8").read())
    assert written["clean"] == sharded["whole"]["clean"]
    for a, b in zip(written["robust"], sharded["whole"]["robust"]):
        assert {k: a[k] for k in NUMBERS if k in b} == {k: b[k] for k in NUMBERS if k in b}
    assert "examples" not in written and all("examples" not in r for r in written["robust"])
    assert "Merged from 3 shards" in open(paths["markdown"], encoding="utf-8").read()
    assert results["merged"]["num_shards"] == 3
    (tmp_path / "shard-1-of-3.json").unlink()
    with pytest.raises(ValueError, match=r"Missing shard\(s\) 1 of 3"):
        shards.merge_directory(str(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No shard-<i>-of-<S>.json files"):
        shards.load_shards(str(tmp_path / "empty"))


def test_run_evaluation_checks_the_offset(micro_models):
    x, y = toy_images(4, size=8)
    config = _config(attacks=("fgsm",), threat_models=("paper",))
    with pytest.raises(ValueError, match=r"example_offset.*Received: example_offset=2"):
        runner.run_evaluation(micro_models, x, y, config, log=None, example_offset=2)


def test_eot_shards_merge_exactly_and_reruns_repeat(micro_models):
    # EOT draws are seeded by (seed, global batch, call number): a shard
    # repeats the draws of the same batches in one run.
    x, y = toy_images(8, size=8, seed=3)
    preset = presets.get_preset("paper_mnist").replace(
        pgd_eps=(0.3,), eot_samples=3, eot_pgd_steps=2, eot_pgd_restarts=2, apgd_steps=3)
    config = _config(attacks=("pgd", "apgd"), threat_models=("eot", "apgd_rand"),
                     preset=preset, batch_size=4)
    whole = _roundtrip(runner.run_evaluation(micro_models, x, y, config, log=None))
    again = _roundtrip(runner.run_evaluation(micro_models, x, y, config, log=None))
    parts = [_roundtrip(shards.run_shard(micro_models, x, y, config, 2, i, log=None))
             for i in range(2)]
    merged = _roundtrip(shards.merge_shards(parts))
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in whole["robust"]]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in again["robust"]] == strip
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in merged["robust"]] == strip
    assert {r["threat_model_name"] for r in whole["robust"]} == {"eot", "apgd_rand"}
    # The attack did something on the stochastic model (not a vacuous equality).
    rls = [r for r in whole["robust"] if r["model"] == "rls"]
    assert any(r["attacker_accuracy"] < r["attacker_clean_accuracy"] for r in rls)


def test_shards_of_an_ensemble_merge_with_its_own_number_of_members(micro_models):
    # An ensemble's defender averages its members (here 2), not config.eval_samples (3).
    from rls_tf.defenses import EnsembleModel  # pylint: disable=import-outside-toplevel
    from tests.evaluation.conftest import make_micro_model  # pylint: disable=import-outside-toplevel

    members = [micro_models["baseline"].network, make_micro_model(1, seed=1).network]
    models = {"baseline": micro_models["baseline"], "ens": EnsembleModel(members)}
    x, y = toy_images(6, size=8, seed=22)
    config = _config(attacks=("fgsm", "pgd"), threat_models=("paper",))
    whole = _roundtrip(runner.run_evaluation(models, x, y, config, log=None))
    merged = _roundtrip(shards.merge_shards(
        [_roundtrip(shards.run_shard(models, x, y, config, 2, i, log=None)) for i in range(2)]))
    assert whole["models"]["ens"]["defender"]["eval_samples"] == 2
    assert merged["clean"] == whole["clean"] and merged["interrater"] == whole["interrater"]
    for a, b in zip(merged["robust"], whole["robust"]):
        assert a["accuracy"] == b["accuracy"] and a["accuracy_vs_samples"] == b[
            "accuracy_vs_samples"]
