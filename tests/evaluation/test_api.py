"""`evaluate_dirs`, the library entry point of ``attack_eval.py``, with a toy attack.

The attack is registered from this module (no library file is touched): the
registry entry is all the harness needs to run it under the threat models
that admit it, record it and title it in the reports.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from rls_tf.attacks import registry
from rls_tf.evaluation import evaluate_dirs
from rls_tf.evaluation import threat_models as tm

from tests.test_attack_eval import _save_model
from tests.test_attack_eval import _toy_mnist


def darken(model_fn, x, y, eps):
    """A toy attack: every pixel darker by eps (clipped to [-1, 1])."""
    del model_fn, y
    return tf.clip_by_value(tf.convert_to_tensor(x, tf.float32) - eps, -1.0, 1.0)


def _darken_settings(preset, budget):
    del budget
    return [registry.AttackSetting("darken", f"eps={eps:g}", {"eps": preset.model_eps(eps)},
                                   value=eps)
            for eps in preset.pgd_eps]


@pytest.fixture
def toy_attack():
    spec = registry.register(registry.AttackSpec(
        "darken", darken, "Darken", "loss", False, _darken_settings, reads=("pgd_eps",),
        budgets=("standard",)))
    yield spec
    registry.unregister("darken")


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate_dirs")
    data_dir = root / "data"
    data_dir.mkdir()
    for split, n, seed in (("train", 64, 0), ("test", 8, 1)):
        x, y = _toy_mnist(n, seed)
        np.savez_compressed(data_dir / f"mnist_{split}.npz", x=x, y=y)
    x, y = _toy_mnist(64, 0)
    return {"root": root, "data_dir": str(data_dir),
            "rls": _save_model(root / "rls", 2, x, y, str(data_dir)),
            "plain": _save_model(root / "plain", 1, x, y, str(data_dir))}


def test_a_registered_attack_runs_end_to_end(run_dirs, toy_attack):
    assert tm.get_threat_model("paper").applicable(toy_attack, None) == (True, "")
    assert tm.get_threat_model("eot").applicable(toy_attack, None) == (
        False, "darken runs under paper, multi_sample only")
    out_dir = run_dirs["root"] / "results"
    results, paths = evaluate_dirs(
        {"plain": run_dirs["plain"], "rls": run_dirs["rls"]}, attacks=("fgsm", "darken"),
        threat_models=("paper", "eot"), num_examples=8, batch_size=8, eval_samples=3,
        repeats=2, sample_counts=(1, 3), seed=0, preset="paper_mnist",
        preset_overrides={"pgd_eps": [0.2], "fgsm_eps": [0.2], "eot_samples": 2},
        output_dir=str(out_dir), log=None)
    darkened = [r for r in results["robust"] if r["attack"] == "darken"]
    assert sorted((r["threat_model"], r["model"]) for r in darkened) == [
        ("paper", "plain"), ("paper", "rls")]
    for record in darkened:
        assert record["param"] == "eps=0.2" and record["num_examples"] == 8
        assert record["linf_max"] == pytest.approx(0.2, abs=1e-6)  # paper_mnist: model units
    assert {"attack": "darken", "threat_model": "eot[E=2]",
            "reason": "darken runs under paper, multi_sample only"} in results["skipped"]
    on_disk = json.loads(open(paths["json"], encoding="utf-8").read())
    assert [r["attack"] for r in on_disk["robust"]].count("darken") == 2
    assert "Darken" in open(paths["markdown"], encoding="utf-8").read()


def _shift_settings(preset, budget):
    del budget
    return [registry.AttackSetting("shift", f"amount={preset.shift_amount:g}",
                                   {"eps": preset.model_eps(preset.shift_amount)},
                                   value=preset.shift_amount)]


@pytest.fixture
def toy_attack_with_a_param():
    """A toy attack that declares its own parameter, ``shift_amount``."""
    amount = registry.Param("shift_amount", 0.1, float, "shift: how much darker every pixel "
                            "gets.", title="amount", minimum=0, maximum=2)
    spec = registry.register(registry.AttackSpec(
        "shift", darken, "Shift", "loss", False, _shift_settings, params=(amount,),
        budgets=("standard",)))
    yield spec
    registry.unregister("shift")


def test_a_registered_attacks_parameter_is_a_preset_key_and_a_flag(run_dirs,
                                                                   toy_attack_with_a_param):
    from absl import flags  # pylint: disable=import-outside-toplevel

    from rls_tf.cli import attack_eval  # pylint: disable=import-outside-toplevel
    from rls_tf.evaluation import api  # pylint: disable=import-outside-toplevel
    from rls_tf.evaluation import presets  # pylint: disable=import-outside-toplevel

    # The preset: the declared default, its check, the JSON key.
    preset = presets.get_preset("paper_mnist")
    assert preset.shift_amount == 0.1 and preset.to_json()["shift_amount"] == 0.1
    assert preset.replace(shift_amount=0.5).shift_amount == 0.5
    with pytest.raises(ValueError, match=r"`shift_amount` must be a number in \[0, 2\]"):
        preset.replace(shift_amount=3.0)
    # The flag, with the help of its Param, parsed into a preset override.
    flag_values = flags.FlagValues()
    assert "shift_amount" in attack_eval.define_param_flags(flag_values)
    assert "pgd_eps" in flag_values and "eps_units" in flag_values
    assert flag_values["shift_amount"].help.startswith("shift: how much darker")
    flag_values(["attack_eval.py", "--shift_amount=0.3", "--pgd_eps=0.2"])
    overrides = attack_eval.preset_overrides(flag_values)
    assert overrides == {"pgd_eps": [0.2], "shift_amount": 0.3}
    # The attack_eval entry point runs it with the overridden value.
    config = api.eval_config("mnist", attacks=("shift",), threat_models=("paper",),
                             eval_samples=3, repeats=2, sample_counts=(1, 3), batch_size=8,
                             preset="paper_mnist", preset_overrides=overrides, log=None)
    assert config.preset.shift_amount == 0.3
    results, _ = evaluate_dirs({"plain": run_dirs["plain"]}, config, num_examples=8,
                               output_dir=str(run_dirs["root"] / "shifted"), log=None)
    (record,) = [r for r in results["robust"] if r["attack"] == "shift"]
    assert record["param"] == "amount=0.3"
    assert record["linf_max"] == pytest.approx(0.3, abs=1e-6)
    assert results["config"]["preset"]["shift_amount"] == 0.3


def test_evaluate_dirs_refuses_unknown_keywords_by_name(run_dirs):
    with pytest.raises(ValueError, match=r"Received: pgd_steps=3\. Expected one of"):
        evaluate_dirs({"plain": run_dirs["plain"]}, pgd_steps=3, log=None)
    with pytest.raises(ValueError, match="`config` must be an EvalConfig"):
        evaluate_dirs({"plain": run_dirs["plain"]}, {"attacks": ("fgsm",)}, log=None)
