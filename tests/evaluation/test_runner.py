"""The runner: settings per threat model, defender repeats, records, repeatability."""

import numpy as np
import pytest

from rls_tf.evaluation import presets
from rls_tf.evaluation import runner
from rls_tf.evaluation import threat_models as tm

from tests.evaluation.conftest import toy_images

LABELS = ["paper", "multi_sample[S=2]", "eot[E=3]", "apgd_rand[E=3]"]


def test_attack_settings_follow_the_preset():
    preset = presets.get_preset("paper_mnist")
    paper = tm.ThreatModel("paper")
    eot = tm.ThreatModel("eot")
    pgd = runner.attack_settings("pgd", paper, preset)
    assert [s.param for s in pgd] == ["eps=0.05", "eps=0.1"]
    assert pgd[0].kwargs == {"eps": 0.05, "eps_iter": pytest.approx(0.005), "nb_iter": 10,
                             "rand_init": False}
    eot_pgd = runner.attack_settings("pgd", eot, preset)
    assert eot_pgd[1].kwargs["nb_iter"] == 100 and eot_pgd[1].kwargs["rand_init"]
    assert eot_pgd[1].recipe == "restarts" and eot_pgd[1].restarts == 3
    cw = runner.attack_settings("cw", paper, preset)
    assert [(s.kwargs["c"], s.kwargs["steps"], s.kwargs["lr"], s.kwargs["confidence"],
             s.kwargs["binary_search_steps"]) for s in cw] == [
        (0.1, 1000, 0.01, 0.0, 1), (1.0, 1000, 0.01, 0.0, 1)]
    # Under eot the minimum-norm attacks also run with a confidence margin.
    eot_cw = runner.attack_settings("cw", eot, preset.replace(eot_min_norm=True))
    assert [s.param for s in eot_cw] == ["c=0.1", "c=0.1, kappa=1", "c=1", "c=1, kappa=1"]
    # A binary search from c is labelled apart from the constant c.
    searched = runner.attack_settings("ead", eot, preset.replace(eot_min_norm=True,
                                                               ead_binary_search_steps=5))
    assert [s.param for s in searched] == ["c=0.1, search=5", "c=0.1, search=5, kappa=1",
                                           "c=1, search=5", "c=1, search=5, kappa=1"]
    assert all(s.kwargs["binary_search_steps"] == 5 for s in searched)
    rand = runner.attack_settings("apgd", tm.ThreatModel("apgd_rand"), preset)
    assert all(s.recipe == "ce+dlr" and s.kwargs["nb_iter"] == 100 for s in rand)
    # eps units: "unit" doubles the printed eps for the [-1, 1] pixels.
    unit = preset.replace(eps_units="unit")
    assert runner.attack_settings("fgsm", paper, unit)[0].kwargs["eps"] == pytest.approx(0.2)
    assert not runner.is_applicable("pgd", tm.ThreatModel("apgd_rand"), preset)[0]
    assert not runner.is_applicable("cw", eot, preset)[0]
    assert runner.is_applicable("cw", eot, preset.replace(eot_min_norm=True))[0]


def test_config_checks():
    preset = presets.get_preset("paper_mnist")
    with pytest.raises(ValueError, match="Unknown attack"):
        runner.EvalConfig(attacks=("pgd", "jsma"), threat_models=("paper",), preset=preset)
    with pytest.raises(ValueError, match="Unknown threat model"):
        runner.EvalConfig(attacks=("pgd",), threat_models=("grey",), preset=preset)
    with pytest.raises(ValueError, match="repeats"):
        runner.EvalConfig(attacks=("pgd",), threat_models=("paper",), preset=preset, repeats=0)


def test_defender_repeats_and_sample_counts(tiny_models):
    x, y = toy_images(16, seed=11)
    defender = runner.Defender(tiny_models["rls"], 3, (1, 5), repeats=4, batch_size=6, seed=0)
    out = defender.evaluate(x, y)
    assert out["accuracy"]["repeats"] == 4 and len(out["accuracy"]["values"]) == 4
    assert set(out["accuracy_vs_samples"]) == {"1", "3", "5"}
    assert out["accuracy"] == out["accuracy_vs_samples"]["3"]
    assert out["interrater"]["repeats"] == 4
    # Paired, fixed draws: evaluating again gives the same numbers.
    assert defender.evaluate(x, y)["accuracy"] == out["accuracy"]
    # By hand, repeat 0: the mean of its first 3 pinned sampled models.
    probs = tiny_models["rls"].outputs(x, defender.paths[0]).numpy()
    expected = np.mean(np.argmax(probs[:3].mean(axis=0), -1) == y)
    assert out["accuracy"]["values"][0] == pytest.approx(expected)
    plain = runner.Defender(tiny_models["baseline"], 3, (1, 5), repeats=4, batch_size=6, seed=0)
    plain_out = plain.evaluate(x, y)
    assert plain_out["accuracy"]["repeats"] == 1 and plain_out["interrater"] is None


def test_every_record_is_labelled(tiny_results):
    records = tiny_results["robust"]
    assert {r["threat_model"] for r in records} == set(LABELS)
    assert [t["label"] for t in tiny_results["config"]["threat_models"]] == LABELS
    for r in records:
        assert r["threat_model"] in LABELS and r["model"] in ("baseline", "rls")
        acc = r["accuracy"]
        assert 0 <= acc["mean"] <= 1 and acc["std"] >= 0
        assert acc["repeats"] == (2 if r["model"] == "rls" else 1)
        assert set(r["accuracy_vs_samples"]) == {"1", "3", "5"}
        if r["attack"] in ("fgsm", "pgd", "apgd"):
            assert r["linf_max"] <= r["eps_model_units"] + 1e-5
        if r["attack"] in runner.MIN_NORM_ATTACKS:
            assert {"success_rate", "l2", "l1"} <= set(r)
    # apgd_rand runs APGD only; its CE stage is the eot run's.
    rand = [r for r in records if r["threat_model"] == "apgd_rand[E=3]"]
    assert {r["attack"] for r in rand} == {"apgd"}
    assert all(r.get("ce_stage_reused") for r in rand)
    skipped = {(s["attack"], s["threat_model"]) for s in tiny_results["skipped"]}
    assert ("pgd", "apgd_rand[E=3]") in skipped
    # Minimum-norm attacks under eot also carry a confidence margin.
    eot_params = {r["param"] for r in records if r["threat_model"] == "eot[E=3]"
                  and r["attack"] == "cw"}
    assert eot_params == {"c=1", "c=1, kappa=1"}
    # Interrater agreement of the RLS model: R=2 repeats of N=3 samples.
    assert tiny_results["interrater"]["rls"]["repeats"] == 2
    assert tiny_results["interrater"]["baseline"] is None
    assert tiny_results["timings"]["total"] > 0


def test_baseline_same_under_every_threat_model(tiny_results):
    """M=1: FGSM is deterministic and every threat model is plain white box."""
    fgsm = [r for r in tiny_results["robust"] if r["model"] == "baseline"
            and r["attack"] == "fgsm"]
    by_param = {}
    for r in fgsm:
        by_param.setdefault(r["param"], set()).add(r["accuracy"]["mean"])
        assert r["attacker"]["white_box"]
    assert set(by_param) == {"eps=0.1", "eps=0.3"}
    assert all(len(v) == 1 for v in by_param.values())


def test_runs_are_repeatable(micro_models):
    preset = presets.get_preset("paper_mnist").replace(
        pgd_eps=(0.2,), fgsm_eps=(0.2,), pgd_steps=2, apgd_steps=3, eot_samples=2,
        eot_pgd_steps=2, eot_pgd_restarts=2,
    )
    config = runner.EvalConfig(attacks=("fgsm", "pgd", "apgd"), threat_models=("paper", "eot"),
                               preset=preset, eval_samples=3, repeats=2, batch_size=8,
                               seed=3, verbose=0)
    x, y = toy_images(8, size=8, seed=12)
    models = {"rls": micro_models["rls"]}
    first = runner.run_evaluation(models, x, y, config, log=None)
    second = runner.run_evaluation(models, x, y, config, log=None)
    for a, b in zip(first["robust"], second["robust"]):
        assert a["accuracy"] == b["accuracy"]
        assert a["attacker"] == b["attacker"]
    assert first["clean"] == second["clean"]


def test_run_evaluation_checks_data(micro_models):
    config = runner.EvalConfig(attacks=("fgsm",), threat_models=("paper",),
                               preset=presets.get_preset("paper_mnist"), verbose=0)
    x, y = toy_images(4, size=8)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        runner.run_evaluation(micro_models, x * 3, y, config, log=None)
    with pytest.raises(ValueError, match="labels"):
        runner.run_evaluation(micro_models, x, y[:2], config, log=None)


def test_worst_case_selection_uses_the_attackers_margin():
    """Restarts / CE+DLR: per example, keep the candidate with the larger margin."""
    import tensorflow as tf

    def model_fn(x):  # logits: class 0 <- -mean(x), class 1 <- mean(x)
        m = tf.reduce_mean(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1)
        return tf.stack([-m, m], axis=1)

    attacker = tm.Attacker(tm.ThreatModel("eot"), model_fn, white_box=True)
    crafter = runner._Crafter(attacker)  # pylint: disable=protected-access
    x = np.zeros((3, 2, 2, 1), np.float32)
    y = np.zeros(3, np.int64)
    first = np.stack([np.full((2, 2, 1), v, np.float32) for v in (0.5, -0.2, -0.1)])
    margin = crafter.margin(first, y)
    np.testing.assert_allclose(margin, [1.0, -0.4, -0.2], atol=1e-6)
    calls = []

    def candidate(xs, ys):
        calls.append(len(xs))  # only examples not fooled yet are attacked again
        return np.stack([np.full((2, 2, 1), v, np.float32) for v in (0.3, -0.5)])

    best, best_margin = crafter._improve(first, margin, x, y, candidate)  # pylint: disable=protected-access
    assert calls == [2]
    np.testing.assert_allclose(best_margin, [1.0, 0.6, -0.2], atol=1e-6)
    np.testing.assert_allclose(best[:, 0, 0, 0], [0.5, 0.3, -0.1])


def test_threat_model_attacks_restrict_the_pairs(micro_models):
    preset = presets.get_preset("paper_mnist").replace(
        pgd_eps=(0.2,), fgsm_eps=(0.2,), pgd_steps=2, apgd_steps=2, eot_samples=2,
        eot_pgd_steps=2, eot_pgd_restarts=1)
    config = runner.EvalConfig(attacks=("fgsm", "pgd", "apgd"),
                               threat_models=("paper", "eot", "apgd_rand"), preset=preset,
                               eval_samples=2, repeats=1, batch_size=4, seed=3, verbose=0,
                               threat_model_attacks={"paper": ("fgsm", "pgd"), "eot": "pgd"})
    assert config.attacks_under("eot") == ("pgd",)
    assert config.attacks_under("apgd_rand") == ("fgsm", "pgd", "apgd")
    assert config.to_json()["threat_model_attacks"] == {"paper": ["fgsm", "pgd"],
                                                         "eot": ["pgd"]}
    x, y = toy_images(4, size=8, seed=12)
    results = runner.run_evaluation({"rls": micro_models["rls"]}, x, y, config, log=None)
    pairs = {(r["threat_model_name"], r["attack"]) for r in results["robust"]}
    assert pairs == {("paper", "fgsm"), ("paper", "pgd"), ("eot", "pgd"), ("apgd_rand", "apgd")}
    # apgd_rand admits APGD only: its refusals of FGSM and PGD are still reported.
    assert {(s["threat_model"], s["attack"]) for s in results["skipped"]} == {
        ("apgd_rand[E=2]", "fgsm"), ("apgd_rand[E=2]", "pgd")}


@pytest.mark.parametrize("pairs, match", [
    ({"eot": ("pgd",)}, r"names a threat model that is not run.*'eot'"),
    ({"paper": ("apgd",)}, r"threat_model_attacks\['paper'\].*subset of `attacks`"),
    ({"paper": ()}, r"non-empty subset"),
    ([("paper", "pgd")], r"must map threat-model names"),
])
def test_threat_model_attacks_checks(pairs, match):
    with pytest.raises(ValueError, match=match):
        runner.EvalConfig(attacks=("fgsm", "pgd"), threat_models=("paper",),
                          preset=presets.get_preset("paper_mnist"), threat_model_attacks=pairs)
