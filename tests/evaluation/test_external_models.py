"""Bring-your-own models through the harness: `evaluate_dirs` and attack_eval.py.

A Keras CNN the test trains (deterministic, and with MC dropout) is saved as
a ``.keras`` file, and an RLS model is exported as a SavedModel; the harness
evaluates each by path, refuses the threat models that need pinned draws on
the random ones (with the reason), runs EOT on them, and breaks them at a
large eps.
"""

import json

import keras
import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver

import attack_eval
import rls_tf
from rls_tf.evaluation import evaluate_dirs
from rls_tf.evaluation.api import merge_dir
from rls_tf.evaluation import indicators
from rls_tf.export import export_saved_model
from rls_tf.models.external import ExternalOptions
from tests.synthetic_data import quadrant_uint8 as _toy_mnist

FLAGS = flags.FLAGS


@pytest.fixture(autouse=True)
def parsed_flags():
    if not FLAGS.is_parsed():
        FLAGS(["attack_eval.py"])
    yield


def _cnn(dropout):
    inputs = keras.Input((28, 28, 1))
    h = keras.layers.Conv2D(8, 5, strides=3, activation="relu")(inputs)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(32, activation="relu")(h)
    if dropout:
        h = keras.layers.Dropout(0.3)(h, training=True)  # MC dropout
    return keras.Model(inputs, keras.layers.Dense(10)(h))


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("external")
    data_dir = root / "data"
    data_dir.mkdir()
    for split, n, seed in (("train", 512, 0), ("test", 32, 1)):
        x, y = _toy_mnist(n, seed)
        np.savez_compressed(data_dir / f"mnist_{split}.npz", x=x, y=y)
    x, y = _toy_mnist(512, 0)
    x = x.astype("float32") / 127.5 - 1
    out = {"root": root, "data_dir": str(data_dir)}
    for name, dropout in (("plain", False), ("dropout", True)):
        keras.utils.set_random_seed(0)
        model = _cnn(dropout)
        model.compile(optimizer=keras.optimizers.Adam(0.01),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, epochs=4, batch_size=64, verbose=0)
        out[name] = str(root / f"{name}.keras")
        model.save(out[name])
    keras.utils.set_random_seed(0)
    rls = rls_tf.models.build_model("small_cnn", input_shape=(28, 28, 1))
    rls.compile(optimizer=keras.optimizers.Adam(0.003), loss="sparse_categorical_crossentropy")
    rls.fit(x, y, epochs=3, batch_size=64, verbose=0)
    out["served"] = export_saved_model(rls, str(root / "serving"), eval_samples=4)
    return out


def _options(**overrides):
    return dict(dataset="mnist", num_examples=32, batch_size=32, eval_samples=4, repeats=2,
                sample_counts=(1, 4), seed=0, log=None, preset="paper_mnist",
                preset_overrides={"fgsm_eps": (1.0,), "pgd_eps": (1.0,), "pgd_steps": 10,
                                  "eot_samples": 4, "eot_pgd_steps": 10,
                                  "eot_pgd_restarts": 1},
                **overrides)


def _accuracy(results, model, threat_model, attack="pgd"):
    for record in results["robust"]:
        if (record["model"], record["threat_model_name"], record["attack"]) == (
                model, threat_model, attack):
            return record["accuracy"]["mean"]
    raise KeyError((model, threat_model, attack))


def test_keras_files_and_a_savedmodel_are_evaluated_by_path(sources, tmp_path):
    results, paths = evaluate_dirs(
        {"plain": sources["plain"], "dropout": sources["dropout"], "served": sources["served"]},
        data_dir=sources["data_dir"], attacks=("fgsm", "pgd"),
        threat_models=("paper", "eot"), output_dir=str(tmp_path), **_options())
    models = results["models"]
    assert models["plain"]["stochastic"] is False
    assert models["dropout"]["stochastic"] is True and models["served"]["stochastic"] is True
    assert models["served"]["output"] == "probabilities"  # the export's own output
    for key in ("plain", "dropout", "served"):
        assert models[key]["kind"] == "external"
        assert models[key]["input_range_check"]["accuracy"] >= 0.8
        assert results["clean"][key]["accuracy"]["mean"] >= 0.8
    # The deterministic model: paper is the white-box attack.
    assert _accuracy(results, "plain", "paper") < 0.1
    # The random ones: paper (pinned draws) refused with its reason; EOT breaks them.
    refused = {(s["model"], s["attack"]) for s in results["skipped"]
               if s["threat_model"] == "paper" and "cannot be pinned" in s["reason"]}
    assert refused == {("dropout", "fgsm"), ("dropout", "pgd"), ("served", "fgsm"),
                       ("served", "pgd")}
    for key in ("dropout", "served"):
        assert _accuracy(results, key, "eot") < 0.1
        assert "interval" in results["clean"][key]
    text = open(paths["markdown"], encoding="utf-8").read()
    assert "dropout" in text and "served" in text


def test_a_wrong_input_range_is_refused(sources, tmp_path):
    # The trained CNN behind a layer that takes raw 0..255 pixels.
    raw = keras.Sequential([keras.Input((28, 28, 1)),
                            keras.layers.Rescaling(1 / 127.5, offset=-1.0),
                            keras.saving.load_model(sources["plain"])])
    kwargs = dict(data_dir=sources["data_dir"], attacks=("fgsm",), threat_models=("paper",),
                  output_dir=str(tmp_path), **_options())
    with pytest.raises(ValueError, match=r"input_range=\[-1.0, 1.0\].*\[0.0, 255.0\]"):
        evaluate_dirs({"raw": raw}, **kwargs)
    results, _ = evaluate_dirs({"raw": raw}, external=ExternalOptions(input_range=(0, 255)),
                               **kwargs)
    assert results["models"]["raw"]["input_range"] == [0.0, 255.0]
    assert results["clean"]["raw"]["accuracy"]["mean"] >= 0.8


def test_keras_objects_are_accepted(sources, tmp_path):
    model = keras.saving.load_model(sources["plain"])
    results, paths = evaluate_dirs({"mine": model}, data_dir=sources["data_dir"],
                                   attacks=("fgsm",), threat_models=("paper",),
                                   output_dir=str(tmp_path), indicators=True,
                                   indicator_examples=16, **_options())
    assert results["models"]["mine"]["dir"] == "Functional"
    assert results["clean"]["mine"]["accuracy"]["mean"] >= 0.8
    # The attack-failure indicators ran on it, and the report shows them.
    found = {e["id"]: e for e in results["indicators"]["entries"]}
    assert list(found) == [spec.id for spec in indicators.INDICATORS]
    assert found["randomness"]["status"] == "pass"
    assert found["unconstrained_attack"]["status"] == "pass"
    # This toy model is so confident on some images (logit margins of ~100)
    # that the cross-entropy's input gradient underflows to exactly zero in
    # float32 there: the indicator reports it, with the fraction.
    assert 0.0 < found["zero_gradients"]["numbers"]["zero_fraction"] < 1.0
    assert found["zero_gradients"]["status"] == "fail"
    assert results["indicators"]["num_examples"] == 16
    assert "## Attack-failure indicators" in open(paths["markdown"], encoding="utf-8").read()
    # Sharded: shard 0 probes the same first images, the merge reports them.
    shards = tmp_path / "shards"
    for index in (0, 1):
        evaluate_dirs({"mine": model}, data_dir=sources["data_dir"], attacks=("fgsm",),
                      threat_models=("paper",), num_shards=2, shard_index=index,
                      indicators=True, indicator_examples=16, output_dir=str(shards),
                      **{**_options(), "batch_size": 16})
    merged = merge_dir(str(shards), log=None)[0]
    assert merged["indicators"] == json.loads(json.dumps(results["indicators"]))
    # Each shard kept its finished records while it ran, and removed the file at the end.
    assert sorted(p.name for p in shards.iterdir() if p.name.startswith("partial")) == []


def test_attack_eval_cli_takes_a_keras_file(sources, tmp_path):
    out_dir = tmp_path / "cli"
    with flagsaver.flagsaver(
            model_dirs=[f"mine={sources['dropout']}"], dataset="mnist",
            data_dir=sources["data_dir"], output_dir=str(out_dir), attacks=["pgd"],
            threat_models=["paper", "eot"], num_examples=32, batch_size=32, eval_samples=4,
            repeats=2, sample_counts=["1", "4"], seed=0, verbose=0, pgd_eps=["1.0"],
            pgd_steps=5, eot_samples=2, eot_pgd_steps=5, eot_pgd_restarts=1,
            randomness="random", preset="paper_mnist"):
        attack_eval.main(["attack_eval.py"])
    results = json.loads((out_dir / "results.json").read_text())
    assert results["models"]["mine"]["stochastic"] is True
    assert "--randomness=random" in results["command"]
    assert any(s["threat_model"] == "paper" and "cannot be pinned" in s["reason"]
               for s in results["skipped"])
    assert _accuracy(results, "mine", "eot") < 0.2


def test_attack_eval_cli_refuses_a_declared_deterministic_random_model(sources, tmp_path):
    with flagsaver.flagsaver(
            model_dirs=[f"mine={sources['dropout']}"], dataset="mnist",
            data_dir=sources["data_dir"], output_dir=str(tmp_path), attacks=["fgsm"],
            threat_models=["eot"], num_examples=8, batch_size=8, verbose=0,
            randomness="deterministic", preset="paper_mnist"):
        with pytest.raises(SystemExit, match="declared deterministic"):
            attack_eval.main(["attack_eval.py"])
