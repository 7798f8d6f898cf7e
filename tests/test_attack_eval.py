"""End-to-end tests of the `attack_eval.py` command line (absl flags + main).

Two tiny `small_cnn` models (an RLS model with M=2 and its M=1 baseline) are
trained for a few steps in the test on MNIST-shaped toy data, saved like
`train.py` saves them (``model.keras`` + ``config.json``), and evaluated with
every attack under every threat model at toy sizes.
"""

import json
import os

import keras
import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver

import attack_eval
from rls_tf.models import RLSModel
from rls_tf.models.backbones.small_cnn import small_cnn_network
from tests.synthetic_data import quadrant_uint8 as _toy_mnist

FLAGS = flags.FLAGS
LABELS = ["paper", "eot[E=2]", "apgd_rand[E=2]"]


@pytest.fixture(autouse=True)
def parsed_flags():
    if not FLAGS.is_parsed():
        FLAGS(["attack_eval.py"])
    yield


def _save_model(directory, num_submodels, x, y, data_dir):
    keras.utils.set_random_seed(num_submodels)
    network = small_cnn_network(num_submodels=num_submodels, num_classes=10,
                                input_shape=(28, 28, 1), width=4)
    model = RLSModel(network, num_samples=2, eval_samples=3)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x.astype("float32") / 127.5 - 1, y, batch_size=32, epochs=1, verbose=0)
    os.makedirs(directory)
    model.save(os.path.join(directory, "model.keras"))
    config = {"dataset": "mnist", "backbone": "small_cnn", "num_submodels": num_submodels,
              "num_samples": 2, "eval_samples": 3, "data_dir": data_dir, "epochs": 1}
    with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f)
    return str(directory)


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("attack_eval")
    data_dir = root / "data"
    data_dir.mkdir()
    for split, n, seed in (("train", 128, 0), ("test", 32, 1)):
        x, y = _toy_mnist(n, seed)
        np.savez_compressed(data_dir / f"mnist_{split}.npz", x=x, y=y)
    x, y = _toy_mnist(128, 0)
    return {
        "root": root,
        "data_dir": str(data_dir),
        "rls": _save_model(root / "rls", 2, x, y, str(data_dir)),
        "plain": _save_model(root / "plain", 1, x, y, str(data_dir)),
    }


TOY_FLAGS = dict(
    attacks=["fgsm", "pgd", "apgd", "deepfool", "cw", "ead"],
    threat_models=["paper", "eot", "apgd_rand"],
    num_examples=8, batch_size=8, eval_samples=3, repeats=2, sample_counts=["1", "3"],
    seed=1, verbose=0, fgsm_eps=["0.2"], pgd_eps=["0.2"], cw_c=["1"], ead_c=["10"],
    pgd_steps=2, cw_steps=3, ead_steps=3, deepfool_max_iter=2, apgd_steps=3,
    eot_samples=2, eot_pgd_steps=2, eot_pgd_restarts=2, multi_sample_paths=None,
    preset="paper_mnist", dataset=None, data_dir=None, eps_units=None,
)


def test_end_to_end(run_dirs, capsys):
    out_dir = run_dirs["root"] / "results"
    with flagsaver.flagsaver(model_dir=run_dirs["rls"], baseline_dir=run_dirs["plain"],
                             output_dir=str(out_dir), **TOY_FLAGS):
        attack_eval.main(["attack_eval.py"])
    results = json.loads((out_dir / "results.json").read_text())
    assert (out_dir / "results.md").exists()
    assert (out_dir / "robustness.png").stat().st_size > 1000
    # Configuration, data and versions are recorded.
    assert results["data"]["dataset"] == "mnist"  # from config.json
    assert results["data"]["data_dir"] == run_dirs["data_dir"]
    assert results["config"]["num_examples"] == 8
    assert results["config"]["preset"]["cw_steps"] == 3
    assert results["environment"]["keras"] == keras.__version__
    assert results["models"]["rls"]["num_submodels"] == 2
    assert results["models"]["baseline"]["stochastic"] is False
    assert results["models"]["rls"]["train_config"]["backbone"] == "small_cnn"
    assert results["command"].startswith("python attack_eval.py --model_dir=")
    assert "--attacks=fgsm,pgd,apgd,deepfool,cw,ead" in results["command"]
    # Every robust number carries its threat model.
    assert [t["label"] for t in results["config"]["threat_models"]] == LABELS
    robust = results["robust"]
    assert {r["threat_model"] for r in robust} == set(LABELS)
    for r in robust:
        assert r["threat_model"] in LABELS
        assert {"mean", "std", "values", "repeats"} <= set(r["accuracy"])
    expected_paper = {("fgsm", "eps=0.2"), ("pgd", "eps=0.2"), ("apgd", "eps=0.2"),
                      ("deepfool", "overshoot=0.02"), ("cw", "c=1"), ("ead", "c=10")}
    for model in ("baseline", "rls"):
        paper = {(r["attack"], r["param"]) for r in robust
                 if r["threat_model"] == "paper" and r["model"] == model}
        assert paper == expected_paper
    assert {r["attack"] for r in robust if r["threat_model"] == "eot[E=2]"} == {
        "fgsm", "pgd", "apgd"}
    assert results["clean"]["rls"]["accuracy"]["repeats"] == 2
    assert set(results["clean"]["rls"]["accuracy_vs_samples"]) == {"1", "3"}
    assert results["interrater"]["rls"]["repeats"] == 2
    assert results["timings"]["total"] > 0
    text = (out_dir / "results.md").read_text()
    assert "| Attack | Parameter | paper: Baseline | paper: RLS |" in text


def test_missing_model_file(run_dirs):
    empty = run_dirs["root"] / "empty"
    empty.mkdir(exist_ok=True)
    with flagsaver.flagsaver(model_dir=str(empty), baseline_dir=None, **TOY_FLAGS):
        with pytest.raises(SystemExit, match=r"no model\.keras in --model_dir=.*empty"):
            attack_eval.main(["attack_eval.py"])
    with flagsaver.flagsaver(model_dir=run_dirs["rls"], baseline_dir=str(empty), **TOY_FLAGS):
        with pytest.raises(SystemExit, match=r"no model\.keras in --baseline_dir="):
            attack_eval.main(["attack_eval.py"])
    with flagsaver.flagsaver(model_dir=None, baseline_dir=None, **TOY_FLAGS):
        with pytest.raises(SystemExit, match="--model_dir is required"):
            attack_eval.main(["attack_eval.py"])


@pytest.mark.parametrize("bad, message", [
    ({"attacks": ["pgd", "jsma"]}, "unknown attack jsma"),
    ({"threat_models": ["paper", "greybox"]}, "unknown threat model greybox"),
    ({"preset": "paper_imagenet"}, "unknown preset 'paper_imagenet'"),
    ({"num_examples": 0}, "--num_examples must be >= 1"),
    ({"repeats": 0}, "--repeats must be >= 1"),
])
def test_bad_flags_raise_clear_errors(run_dirs, bad, message):
    overrides = {**TOY_FLAGS, **bad}
    with pytest.raises(flags.IllegalFlagValueError, match=message):
        with flagsaver.flagsaver(model_dir=run_dirs["rls"], **overrides):
            attack_eval.main(["attack_eval.py"])


def test_dataset_mismatch_and_extra_arguments(run_dirs):
    overrides = {**TOY_FLAGS, "dataset": "cifar10"}
    with flagsaver.flagsaver(model_dir=run_dirs["rls"], baseline_dir=None, **overrides):
        with pytest.raises(SystemExit, match="trained on 'mnist'"):
            attack_eval.main(["attack_eval.py"])
    with flagsaver.flagsaver(model_dir=run_dirs["rls"], **TOY_FLAGS):
        with pytest.raises(Exception, match="Unexpected arguments"):
            attack_eval.main(["attack_eval.py", "extra"])


SHARD_FLAGS = {**TOY_FLAGS, "attacks": ["fgsm", "pgd", "deepfool"], "threat_models": ["paper"],
               "num_examples": 10, "batch_size": 4}


def _markdown_tables(text):
    """results.md without its timing-dependent parts (seconds, merge/combine notes)."""
    keep, skip = [], False
    for line in text.splitlines():
        if line.startswith("## "):
            skip = line in ("## Every run", "## Timings")
        if (not skip and "Merged from" not in line and "Combined from" not in line
                and not line.startswith("python ")):
            keep.append(line)
    return keep


def test_two_shards_merged_equal_one_run(run_dirs):
    whole_dir = run_dirs["root"] / "whole"
    shard_dir = run_dirs["root"] / "sharded"
    with flagsaver.flagsaver(model_dir=run_dirs["rls"], baseline_dir=run_dirs["plain"],
                             output_dir=str(whole_dir), **SHARD_FLAGS):
        attack_eval.main(["attack_eval.py"])
    for index in (1, 0):
        with flagsaver.flagsaver(model_dir=run_dirs["rls"], baseline_dir=run_dirs["plain"],
                                 output_dir=str(shard_dir), num_shards=2, shard_index=index,
                                 **SHARD_FLAGS):
            attack_eval.main(["attack_eval.py"])
    assert sorted(p.name for p in shard_dir.iterdir()) == ["shard-0-of-2.json",
                                                          "shard-1-of-2.json"]
    shard = json.loads((shard_dir / "shard-1-of-2.json").read_text())
    assert (shard["shard"]["start"], shard["shard"]["stop"]) == (4, 10)  # batches 1-2 of 0-2
    assert "--num_shards=2 --shard_index=1" in shard["command"]
    with flagsaver.flagsaver(merge=str(shard_dir), model_dir=None, baseline_dir=None):
        attack_eval.main(["attack_eval.py"])
    whole = json.loads((whole_dir / "results.json").read_text())
    merged = json.loads((shard_dir / "results.json").read_text())
    assert (shard_dir / "robustness.png").stat().st_size > 1000
    for key in ("config", "clean", "interrater", "skipped", "data"):
        assert merged[key] == whole[key], key
    # The unsharded command (it wrote to another --output_dir).
    assert merged["command"] == whole["command"].replace(str(whole_dir), str(shard_dir))
    assert len(merged["robust"]) == len(whole["robust"]) == 6
    for a, b in zip(merged["robust"], whole["robust"]):
        assert {k: v for k, v in a.items() if k != "seconds"} == {
            k: v for k, v in b.items() if k != "seconds"}
    assert merged["merged"]["num_shards"] == 2
    assert merged["timings"]["total"] == pytest.approx(sum(
        json.loads((shard_dir / f"shard-{i}-of-2.json").read_text())["timings"]["total"]
        for i in range(2)))
    assert _markdown_tables((shard_dir / "results.md").read_text()) == _markdown_tables(
        (whole_dir / "results.md").read_text())


def test_merge_refuses_mismatched_and_missing_shards(run_dirs):
    shard_dir = run_dirs["root"] / "mismatched"
    for index, seed in ((0, 1), (1, 2)):
        flags_ = {**SHARD_FLAGS, "seed": seed, "attacks": ["fgsm"]}
        with flagsaver.flagsaver(model_dir=run_dirs["rls"], baseline_dir=None,
                                 output_dir=str(shard_dir), num_shards=2, shard_index=index,
                                 **flags_):
            attack_eval.main(["attack_eval.py"])
    with flagsaver.flagsaver(merge=str(shard_dir)):
        with pytest.raises(SystemExit, match=r"differ in config\.seed\. Received: 1 vs 2"):
            attack_eval.main(["attack_eval.py"])
    (shard_dir / "shard-1-of-2.json").unlink()
    with flagsaver.flagsaver(merge=str(shard_dir)):
        with pytest.raises(SystemExit, match=r"Missing shard\(s\) 1 of 2"):
            attack_eval.main(["attack_eval.py"])
    # An evaluation still running: its first shard, marked partial.
    with flagsaver.flagsaver(merge=str(shard_dir), allow_missing_shards=True):
        attack_eval.main(["attack_eval.py"])
    partial = json.loads((shard_dir / "results.json").read_text())
    assert partial["merged"]["missing"] == [1] and partial["merged"]["planned_examples"] == 10
    assert partial["data"]["num_examples"] == partial["merged"]["num_examples"] == 4
    assert "**Partial**: shard(s) 1 of 2 not computed yet" in (
        shard_dir / "results.md").read_text()
    with flagsaver.flagsaver(allow_missing_shards=True, model_dir=run_dirs["rls"]):
        with pytest.raises(SystemExit, match="--allow_missing_shards applies to --merge"):
            attack_eval.main(["attack_eval.py"])
    with flagsaver.flagsaver(merge=str(run_dirs["root"] / "nowhere")):
        with pytest.raises(SystemExit, match="No such directory"):
            attack_eval.main(["attack_eval.py"])


def test_runs_of_other_models_combine_into_one_run(run_dirs):
    root = run_dirs["root"] / "combine"
    flags_ = {**SHARD_FLAGS, "num_examples": 8}
    with flagsaver.flagsaver(model_dirs=[f"baseline={run_dirs['plain']}",
                                         f"rls={run_dirs['rls']}"],
                             output_dir=str(root / "whole"), **flags_):
        attack_eval.main(["attack_eval.py"])
    for name in ("baseline", "rls"):
        directory = run_dirs["plain" if name == "baseline" else "rls"]
        with flagsaver.flagsaver(model_dirs=[f"{name}={directory}"],
                                 output_dir=str(root / name), **flags_):
            attack_eval.main(["attack_eval.py"])
    parts = f"{root / 'baseline'},{root / 'rls'}"
    with flagsaver.flagsaver(combine=parts.split(","), output_dir=str(root / "all")):
        attack_eval.main(["attack_eval.py"])
    whole = json.loads((root / "whole" / "results.json").read_text())
    combined = json.loads((root / "all" / "results.json").read_text())
    for key in ("config", "clean", "interrater", "skipped", "data", "models",
                "masking_checks"):
        assert combined[key] == whole[key], key
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in combined["robust"]] == [
        {k: v for k, v in r.items() if k != "seconds"} for r in whole["robust"]]
    assert combined["command"] == whole["command"].replace(str(root / "whole"),
                                                           str(root / "all"))
    assert _markdown_tables((root / "all" / "results.md").read_text()) == [
        line for line in _markdown_tables((root / "whole" / "results.md").read_text())]
    with flagsaver.flagsaver(combine=parts.split(","), merge=str(root / "all")):
        with pytest.raises(SystemExit, match=r"--merge and --combine are exclusive"):
            attack_eval.main(["attack_eval.py"])
    with flagsaver.flagsaver(combine=parts.split(","), output_dir=None):
        with pytest.raises(SystemExit, match=r"needs --output_dir"):
            attack_eval.main(["attack_eval.py"])


@pytest.mark.parametrize("bad, message", [
    ({"num_shards": 0}, r"--num_shards must be >= 1"),
    ({"shard_index": -1}, r"--shard_index must be >= 0"),
    ({"num_shards": 2, "shard_index": 2},
     r"--shard_index must be in \[0, --num_shards=2\)\. Received: --shard_index=2"),
])
def test_bad_shard_flags_raise_clear_errors(run_dirs, bad, message):
    with pytest.raises(flags.IllegalFlagValueError, match=message):
        with flagsaver.flagsaver(model_dir=run_dirs["rls"], **{**SHARD_FLAGS, **bad}):
            attack_eval.main(["attack_eval.py"])


def test_too_many_shards_refused_before_attacking(run_dirs):
    with flagsaver.flagsaver(model_dir=run_dirs["rls"], baseline_dir=None,
                             output_dir=str(run_dirs["root"] / "too_many"), num_shards=4,
                             shard_index=0, **SHARD_FLAGS):
        with pytest.raises(SystemExit, match=r"num_shards=4 is more than the 3 batch"):
            attack_eval.main(["attack_eval.py"])
    assert not (run_dirs["root"] / "too_many").exists()


def _save_ensemble(directory, x, y, data_dir):
    from rls_tf.models import build_defense  # pylint: disable=import-outside-toplevel

    keras.utils.set_random_seed(7)
    model = build_defense("ensemble", "small_cnn", input_shape=(28, 28, 1), ensemble_size=2)
    model.compile(optimizer=keras.optimizers.Adam(0.01), metrics=["accuracy"])
    model.fit(x.astype("float32") / 127.5 - 1, y, batch_size=32, epochs=1, verbose=0)
    os.makedirs(directory)
    model.save(os.path.join(directory, "model.keras"))
    with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as f:
        json.dump({"dataset": "mnist", "defense": "ensemble", "data_dir": data_dir}, f)
    return str(directory)


def test_several_defenses_in_one_run(run_dirs):
    x, y = _toy_mnist(128, 0)
    ensemble_dir = _save_ensemble(run_dirs["root"] / "ens2", x, y, run_dirs["data_dir"])
    out_dir = run_dirs["root"] / "several"
    overrides = {**TOY_FLAGS, "attacks": ["fgsm", "pgd"], "threat_models": ["paper", "eot"]}
    with flagsaver.flagsaver(model_dirs=[f"plain={run_dirs['plain']}", f"rls={run_dirs['rls']}",
                                         ensemble_dir],
                             output_dir=str(out_dir), **overrides):
        attack_eval.main(["attack_eval.py"])
    results = json.loads((out_dir / "results.json").read_text())
    assert list(results["models"]) == ["plain", "rls", "ens2"]
    assert results["command"].startswith("python attack_eval.py --model_dirs=plain=")
    # The ensemble: its defender is every member (once), its paper attacker one member,
    # its eot attacker the whole ensemble (white box).
    assert results["models"]["ens2"]["defender"]["fixed_draws"] is True
    assert set(results["clean"]["ens2"]["accuracy_vs_samples"]) == {"1", "2"}
    paper = [r for r in results["robust"] if r["model"] == "ens2" and r["threat_model"] == "paper"]
    eot = [r for r in results["robust"] if r["model"] == "ens2" and r["threat_model"] != "paper"]
    assert paper and all(not r["attacker"]["white_box"] and len(r["attacker"]["paths"]) == 1
                         for r in paper)
    assert eot and all(r["attacker"]["white_box"] for r in eot)
    assert results["interrater"]["ens2"] is None or "mean" in results["interrater"]["ens2"]
    text = (out_dir / "results.md").read_text()
    assert "paper Table 3 layout" in text
    assert "| Defense | Clean | FGSM eps=0.2 | PGD eps=0.2 |" in text
    assert "| Ensemble |" not in text and "| ens2 |" in text


def test_model_dirs_need_distinct_names(run_dirs):
    with flagsaver.flagsaver(model_dirs=[run_dirs["rls"], run_dirs["rls"]], **TOY_FLAGS):
        with pytest.raises(SystemExit, match="its own NAME"):
            attack_eval.main(["attack_eval.py"])


def test_masking_flags_transfer_from_a_copy_and_convergence(run_dirs):
    x, y = _toy_mnist(128, 0)
    copy_dir = _save_model(run_dirs["root"] / "rls_copy", 2, x, y, run_dirs["data_dir"])
    out_dir = run_dirs["root"] / "masking"
    overrides = {**TOY_FLAGS, "attacks": ["pgd", "mifgsm"], "threat_models": ["transfer"]}
    with flagsaver.flagsaver(model_dirs=[f"plain={run_dirs['plain']}", f"rls={run_dirs['rls']}"],
                             surrogates=["plain", "copy"], surrogate_dirs=[f"rls={copy_dir}"],
                             convergence=True, convergence_steps=["1", "2"],
                             convergence_draws=["1", "2"], sweep_eps=["0.5"], transfer_steps=2,
                             output_dir=str(out_dir), **overrides):
        attack_eval.main(["attack_eval.py"])
    results = json.loads((out_dir / "results.json").read_text())
    assert "--surrogates=plain,copy --surrogate_dirs=rls=" in results["command"]
    assert "--convergence=True" in results["command"]
    labels = {(r["threat_model"], r["model"], r["attack"]) for r in results["robust"]}
    assert ("transfer[copy]", "rls", "mifgsm") in labels
    assert ("transfer[plain]", "plain", "pgd") in labels
    assert results["surrogates"]["rls"]["dir"] == copy_dir
    assert {r["sweep"] for r in results["convergence"]} == {"steps", "draws", "eps"}
    assert set(results["masking_checks"]["status"]) == {"plain", "rls"}
    assert (out_dir / "convergence.png").stat().st_size > 1000
    assert "## Gradient-masking checks" in (out_dir / "results.md").read_text()


def test_threat_model_attacks_flag_restricts_a_threat_model(run_dirs):
    out_dir = run_dirs["root"] / "pairs"
    overrides = {**TOY_FLAGS, "attacks": ["fgsm", "pgd"], "threat_models": ["paper", "transfer"]}
    with flagsaver.flagsaver(model_dirs=[f"plain={run_dirs['plain']}", f"rls={run_dirs['rls']}"],
                             threat_model_attacks=["transfer=pgd"], transfer_steps=2,
                             output_dir=str(out_dir), **overrides):
        attack_eval.main(["attack_eval.py"])
    results = json.loads((out_dir / "results.json").read_text())
    assert "--threat_model_attacks=transfer=pgd" in results["command"]
    assert results["config"]["threat_model_attacks"] == {"transfer": ["pgd"]}
    pairs = {(r["threat_model_name"], r["attack"]) for r in results["robust"]}
    assert pairs == {("paper", "fgsm"), ("paper", "pgd"), ("transfer", "pgd")}


@pytest.mark.parametrize("flag, value, message", [
    ("threat_model_attacks", ["transfer"], "every entry is THREAT_MODEL=ATTACK"),
    ("threat_model_attacks", ["transfer=fgsm"], "subset of `attacks`"),
    ("surrogate_dirs", ["rls"], "every entry is NAME=DIR"),
    ("surrogate_dirs", ["ghost=/nowhere"], "names 'ghost', which is not an evaluated model"),
    ("surrogates", ["nobody"], "surrogate='nobody'"),
])
def test_bad_masking_flags_raise_clear_errors(run_dirs, flag, value, message):
    overrides = {**TOY_FLAGS, "attacks": ["pgd"], "threat_models": ["transfer"], flag: value}
    with flagsaver.flagsaver(model_dirs=[f"plain={run_dirs['plain']}", f"rls={run_dirs['rls']}"],
                             output_dir=str(run_dirs["root"] / "bad_masking"), **overrides):
        with pytest.raises(SystemExit, match=message):
            attack_eval.main(["attack_eval.py"])
