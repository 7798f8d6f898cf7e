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
    assert ("cifar10", "plain", "fgsm_rs") in trained and ("cifar10", "rls", "fgsm_rs") in trained
    threats = {t for s in suite.evaluate for t in s.threat_models}
    assert {"paper", "multi_sample", "eot", "apgd_rand", "transfer", "arc"} <= threats
    attacks = {a for s in suite.evaluate for a in s.attacks}
    assert {"square", "spsa", "arc", "mifgsm", "deepfool", "cw", "ead"} <= attacks
    # MNIST about 4 hours of 2 cores, the CIFAR-10 comparison about 27, in resumable pieces.
    def total(dataset):
        return (sum(s.estimate_s for s in suite.train if s.dataset == dataset)
                + sum(s.estimate_s for s in suite.evaluate if suite.dataset_of(s) == dataset))
    assert 3 * 3600 < total("mnist") < 5 * 3600
    assert 20 * 3600 < total("cifar10") < 36 * 3600


def _cifar(suite, kind):
    return {s.name: s for s in getattr(suite, kind)
            if s.name.startswith("cifar10")}


def test_cpu_cifar10_runs_share_one_recipe_on_resnet9():
    suite = suites.load_suite("cpu")
    runs = _cifar(suite, "train")
    assert set(runs) == {f"cifar10_{n}" for n in (
        "plain", "rls_mse", "rls_ce", "ensemble", "ensemble5", "adp", "rse", "sap",
        "plain_at", "rls_at")}
    recipe = suites._CIFAR_RECIPE  # pylint: disable=protected-access
    assert {s.backbone for s in runs.values()} == {"resnet9"}
    for name, stage in runs.items():
        assert stage.revision == 1, name
        if stage.defense == "sap":
            assert stage.base == "cifar10_plain" and "epochs" not in stage.options
            continue
        # Every trained run has the recipe; RLS runs train for the RLS length
        # (twice the epochs) and only the MSE run may also change the smoothing.
        changed = {k for k, v in recipe.items() if stage.options[k] != v}
        allowed = set()
        if stage.defense == "rls":
            allowed |= {"epochs", "lr_warmup_epochs"}
            rls_length = suites._CIFAR_RLS_LENGTH  # pylint: disable=protected-access
            assert {k: stage.options[k] for k in rls_length} == rls_length, name
        if name == "cifar10_rls_mse":
            allowed.add("label_smoothing")
        assert changed <= allowed, name
    mse = runs["cifar10_rls_mse"].options
    assert mse["loss"] == "mse" and mse["label_smoothing"] == 0
    assert runs["cifar10_rls_ce"].options["loss"] == "crossentropy"
    assert runs["cifar10_rls_ce"].options["label_smoothing"] == recipe["label_smoothing"]
    assert runs["cifar10_ensemble"].options["ensemble_size"] == 3
    assert runs["cifar10_ensemble5"].options["ensemble_size"] == 5
    assert runs["cifar10_adp"].options["ensemble_size"] == 3
    for name in ("cifar10_plain_at", "cifar10_rls_at"):
        options = runs[name].options
        assert options["adv_train"] == "fgsm_rs" and runs[name].init_from is None
        # 8/255 of the [0, 1] range is 16/255 of the models' [-1, 1] pixels.
        assert options["adv_eps"] == pytest.approx(2 * 8 / 255)
    assert runs["cifar10_rls_at"].options["loss"] == "crossentropy"
    # The MNIST stages are unchanged, so their records (no spec) still count.
    assert all(s.revision == 0 for s in suite.train + suite.evaluate
               if not s.name.startswith("cifar10"))


def test_cpu_train_stages_make_valid_training_configs():
    from rls_tf import training  # pylint: disable=import-outside-toplevel

    for stage in suites.load_suite("cpu").train:
        config = training.TrainConfig(
            dataset=stage.dataset, backbone=stage.backbone, defense=stage.defense,
            model_dir="unused", base_model_dir="unused" if stage.base else None,
            init_from="unused" if stage.init_from else None, **stage.options)
        config.validate()  # e.g. refuses label smoothing with loss="mse"


def test_cpu_cifar10_eps_and_attack_constants():
    from rls_tf.evaluation import presets  # pylint: disable=import-outside-toplevel

    suite = suites.load_suite("cpu")
    evals = _cifar(suite, "evaluate")
    base = presets.get_preset("paper_cifar10")
    assert base.eps_units == "model"  # eps applied to the [-1, 1] pixels as written
    main = evals["cifar10"]
    expected = (0.01, 0.02) + tuple(k / 255 * 2 for k in (4, 8, 16))
    for field in ("fgsm_eps", "pgd_eps"):
        assert main.preset_overrides[field] == pytest.approx(expected)
    assert main.preset_overrides["fgsm_eps"][:2] == base.fgsm_eps  # the paper's, Table 1
    assert set(main.threat_models) == {"paper", "eot", "apgd_rand", "transfer"}
    # APGD under apgd_rand only; FGSM and PGD under the other three.
    assert set(main.attacks) == {"fgsm", "pgd", "apgd"}
    assert {k: set(v) for k, v in main.options["threat_model_attacks"].items()} == {
        t: {"fgsm", "pgd"} for t in ("paper", "eot", "transfer")}
    assert main.num_examples >= 500
    assert evals["cifar10_clean"].num_examples == 1000 and "sap" in evals["cifar10_clean"].models
    assert evals["cifar10_multi"].num_examples >= 500
    assert evals["cifar10_multi"].preset_overrides["multi_sample_paths"] == (1, 5, 10, 15)
    # DeepFool, C&W and EAD with the paper's constants and its 1,000 steps.
    minnorm = evals["cifar10_minnorm"]
    assert set(minnorm.attacks) == {"deepfool", "cw", "ead"}
    assert minnorm.threat_models == ("paper",)
    preset = base.replace(**minnorm.preset_overrides)
    assert (preset.cw_c, preset.ead_c) == ((0.01, 0.1), (0.01, 0.1))
    assert (preset.cw_steps, preset.ead_steps, preset.deepfool_overshoot) == (1000, 1000, 0.02)
    assert preset.cw_binary_search_steps == 1 and preset.cw_confidence == 0
    # DeepFool on 500 images; the 1,000-step C&W and EAD on the first 200.
    assert minnorm.num_examples >= 500 and preset.min_norm_opt_num_examples == 200
    eot = evals["cifar10_minnorm_eot"]
    assert eot.threat_models == ("eot",) and eot.preset_overrides["eot_min_norm"] is True
    assert eot.num_examples >= 500
    # Square (under eot) and ARC at 8/255 on 500 images.
    blackbox = evals["cifar10_blackbox"]
    assert set(blackbox.attacks) == {"square", "arc"}
    assert set(blackbox.threat_models) == {"eot", "arc"}
    preset = base.replace(**blackbox.preset_overrides)
    assert blackbox.num_examples >= 500 and preset.score_num_examples >= 500
    assert preset.score_eps == pytest.approx((2 * 8 / 255,))
    # SAP on 200 images beside its plain network; the masking checks with convergence.
    assert set(evals["cifar10_sap"].models) == {"plain", "sap"}
    assert evals["cifar10_sap"].num_examples == 200
    masking = evals["cifar10_masking"]
    assert {"square", "arc"} <= set(masking.attacks) and masking.options["convergence"]
    assert masking.preset_overrides["pgd_eps"] == pytest.approx((2 * 8 / 255,))
    # Every stage evaluates the same nine models (or the named subsets).
    assert set(main.models.values()) == {f"cifar10_{n}" for n in suites._CIFAR_MODELS}  # pylint: disable=protected-access
    assert all(s.revision == 1 for s in evals.values())


def test_a_bad_revision_is_refused():
    data = _smoke()
    data["train"][0]["revision"] = -1
    with pytest.raises(ValueError, match="revision must be an int >= 0. Received: revision=-1"):
        suites.Suite.from_json(data)
    data = _smoke()
    data["evaluate"][0]["revision"] = 2
    assert suites.Suite.from_json(data).evaluate[0].revision == 2


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
    (lambda d: d["evaluate"][0]["options"].update(threat_model_attacks={"arc": ["fgsm"]}),
     "threat_model", "arc"),
    (lambda d: d["evaluate"][0]["options"].update(
        threat_model_attacks={d["evaluate"][0]["threat_models"][0]: ["square"]}),
     "attack", "square"),
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
