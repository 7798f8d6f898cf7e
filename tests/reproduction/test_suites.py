"""Reproduction suites: the built-in ones are valid, bad names are refused up front."""

import copy
import json

import pytest

from rls_tf.reproduction import suites


@pytest.mark.parametrize("name", list(suites.SUITES))
def test_builtin_suites_are_valid_and_round_trip(name):
    suite = suites.load_suite(name)
    again = suites.Suite.from_json(json.loads(json.dumps(suite.to_json())))
    assert again == suite
    assert suite.train and suite.evaluate


def test_cpu_suite_has_the_issue_shape():
    suite = suites.load_suite("cpu")
    trained = {(s.dataset, s.defense, s.options.get("adv_train", "none")) for s in suite.train}
    for dataset in ("mnist", "cifar10"):
        for defense in ("plain", "rls", "ensemble", "adp", "rse", "sap"):
            assert (dataset, defense, "none") in trained
    assert ("mnist", "plain", "pgd") in trained and ("mnist", "rls", "pgd") in trained
    threats = {t for s in suite.evaluate for t in s.threat_models}
    assert {"paper", "eot", "apgd_rand", "transfer", "arc"} <= threats
    attacks = {a for s in suite.evaluate for a in s.attacks}
    assert {"square", "spsa", "arc", "mifgsm"} <= attacks
    # About 8 hours of 2 cores in resumable pieces.
    total = sum(s.estimate_s for s in suite.train) + sum(s.estimate_s for s in suite.evaluate)
    assert 4 * 3600 < total < 9 * 3600


def _smoke():
    return copy.deepcopy(suites.SUITES["smoke"])


@pytest.mark.parametrize("edit, kind, value", [
    (lambda d: d["train"][0].update(defense="dropout"), "defense", "dropout"),
    (lambda d: d["train"][0].update(dataset="imagenet"), "dataset", "imagenet"),
    (lambda d: d["train"][0].update(backbone="resnet18"), "backbone", "resnet18"),
    (lambda d: d["train"][0]["options"].update(epoch=3), "train_option", "epoch"),
    (lambda d: d["evaluate"][0].update(attacks=["fgsm", "hopskipjump"]), "attack",
     "hopskipjump"),
    (lambda d: d["evaluate"][0].update(threat_models=["whitebox"]), "threat_model",
     "whitebox"),
    (lambda d: d["evaluate"][0]["preset_overrides"].update(pgd_stepz=3), "preset_field",
     "pgd_stepz"),
    (lambda d: d["evaluate"][0]["options"].update(repeat=2), "evaluation_option", "repeat"),
])
def test_unknown_names_are_refused_with_the_allowed_values(edit, kind, value):
    data = _smoke()
    edit(data)
    with pytest.raises(ValueError) as err:
        suites.Suite.from_json(data)
    message = str(err.value)
    assert f"Received: {kind}={value!r}" in message and "Expected one of" in message, message


def test_bad_references_and_names_are_refused():
    data = _smoke()
    data["evaluate"][0]["models"]["rls"] = "mnist_rlz"
    with pytest.raises(ValueError, match="unknown train stage. Received: 'mnist_rlz'"):
        suites.Suite.from_json(data)
    data = _smoke()
    data["train"][1]["name"] = "mnist_plain"
    with pytest.raises(ValueError, match="duplicate stage name"):
        suites.Suite.from_json(data)
    data = _smoke()
    data["train"][0]["name"] = "../escape"
    with pytest.raises(ValueError, match="Received: name='../escape'"):
        suites.Suite.from_json(data)
    data = _smoke()
    data["train"].append({"name": "sap", "dataset": "mnist", "backbone": "small_cnn",
                          "defense": "sap"})
    with pytest.raises(ValueError, match="set `base`"):
        suites.Suite.from_json(data)
    with pytest.raises(ValueError, match="Unknown suite. Received: suite='cpux'"):
        suites.load_suite("cpux")


def test_a_suite_file_is_read_and_checked(tmp_path):
    path = tmp_path / "mine.json"
    data = _smoke()
    data["name"] = "mine"
    path.write_text(json.dumps(data))
    assert suites.load_suite(str(path)).name == "mine"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        suites.load_suite(str(path))
