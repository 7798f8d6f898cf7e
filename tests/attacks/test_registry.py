"""The attack registry: one complete entry per attack, each with a strength test."""

import pytest

from rls_tf import attacks
from rls_tf.attacks.registry import REGISTRY
from rls_tf.attacks.registry import get_attack
from rls_tf.evaluation import presets
from rls_tf.evaluation import threat_models as tm

from tests.attacks.test_strength import STRENGTH_TESTS


def test_every_registered_attack_has_a_strength_test():
    assert set(STRENGTH_TESTS) == set(REGISTRY)
    for name, test in STRENGTH_TESTS.items():
        assert callable(test), name


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_entries_are_complete_and_build_settings(name):
    spec = REGISTRY[name]
    assert spec.name == name and spec.title and spec.kind in ("loss", "min_norm")
    assert attacks.ATTACKS[spec.function.__name__] is spec.function
    preset = presets.get_preset("paper_mnist").replace(eot_min_norm=True)
    fields = {f for f in preset.to_json()}
    assert set(spec.preset_fields) <= fields, set(spec.preset_fields) - fields
    for threat_model in tm.THREAT_MODELS:
        ok, reason = tm.get_threat_model(threat_model).applicable(spec, preset)
        if not ok:
            assert reason
            continue
        settings = tm.get_threat_model(threat_model).settings(spec, preset)
        assert settings and all(s.attack == name for s in settings)
        # A registry entry's settings call its function with known arguments only.
        for setting in settings:
            assert set(setting.kwargs) <= set(spec.function.__code__.co_varnames)
            assert setting.to_json()["attack"] == name


def test_min_norm_attacks_are_optional_under_eot():
    preset = presets.get_preset("paper_mnist")
    eot = tm.get_threat_model("eot")
    for spec in REGISTRY.values():
        ok, _ = eot.applicable(spec, preset)
        if spec.budgets is not None or spec.requires:  # attack-specific threat models
            assert ok == (spec.has_budget(eot.budget) and set(spec.requires) <= set(eot.provides))
            continue
        assert ok == (not spec.min_norm)


def test_masking_attacks_run_where_they_belong():
    preset = presets.get_preset("paper_mnist")

    def applicable(attack, threat_model, preset):
        return tm.get_threat_model(threat_model).applicable(REGISTRY[attack], preset)

    assert applicable("mifgsm", "transfer", preset)[0]
    assert not applicable("mifgsm", "paper", preset)[0]
    assert not applicable("apgd", "transfer", preset)[0]
    assert applicable("arc", "arc", preset)[0]
    assert not applicable("pgd", "arc", preset)[0]
    for name in ("square", "spsa"):
        assert applicable(name, "eot", preset)[0]
        assert not applicable(name, "paper", preset)[0]
        assert REGISTRY[name].subset == "score_num_examples" and REGISTRY[name].reports_queries
    transfer = tm.get_threat_model("transfer").settings("pgd", preset)
    assert all(s.kwargs["loss"] == "margin" and s.kwargs["nb_iter"] == preset.transfer_steps
               for s in transfer)


def test_unknown_attack_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"Received: attack='jsma'.*Expected one of"):
        get_attack("jsma")


def test_score_based_attacks_take_their_own_eps():
    preset = presets.get_preset("paper_mnist")
    assert [s.value for s in tm.get_threat_model("eot").settings("square", preset)] == list(
        preset.pgd_eps)
    narrowed = preset.replace(score_eps=[0.3])
    for name in ("square", "spsa"):
        assert [s.value for s in tm.get_threat_model("eot").settings(name, narrowed)] == [0.3]
    with pytest.raises(ValueError, match="score_eps"):
        preset.replace(score_eps=[-1.0])
