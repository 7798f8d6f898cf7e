"""The masking-check runs of the harness: transfer, ARC, score-based subsets, sweeps.

Tiny models (`conftest.make_micro_model`); what is asserted is the plumbing a
wrong result would hide in: a transfer attack really crafts on the surrogate
(fingerprint, attacker accuracy, identical examples for every defense), ARC
sees the members unaveraged, a score-based attack (and C&W, EAD) runs on its
subset, the sweeps produce one record per point, and sharded runs merge to the
same numbers.
"""

import numpy as np
import pytest

from rls_tf.evaluation import presets
from rls_tf.evaluation import report
from rls_tf.evaluation import runner
from rls_tf.evaluation import shards
from rls_tf.evaluation import threat_models as tm_lib
from rls_tf.evaluation.records import model_fingerprint
from tests.evaluation.conftest import make_micro_model
from tests.evaluation.conftest import toy_images

SMALL = dict(fgsm_eps=(0.8,), pgd_eps=(0.8,), pgd_steps=2, eot_samples=2, eot_pgd_steps=2,
             eot_pgd_restarts=1, transfer_steps=3, arc_steps=3, arc_paths=3,
             square_queries=20, spsa_iters=2, spsa_samples=4, score_num_examples=8,
             convergence_steps=(1, 2), convergence_draws=(1, 2), sweep_eps=(0.2, 0.6))


@pytest.fixture(scope="module")
def models(micro_models):
    return {"plain": micro_models["baseline"], "rls": micro_models["rls"]}


def _config(**changes):
    preset = presets.get_preset("paper_mnist").replace(**SMALL)
    fields = dict(attacks=("fgsm", "pgd"), threat_models=("transfer",), preset=preset,
                  eval_samples=2, repeats=2, sample_counts=(1, 2), batch_size=8, seed=1,
                  verbose=0)
    fields.update(changes)
    return runner.EvalConfig(**fields)


def test_transfer_crafts_on_the_surrogate(models):
    x, y = toy_images(16, size=8, seed=3)
    results = runner.run_evaluation(models, x, y, _config(), log=None, keep_examples=True)
    transfer = [r for r in results["robust"] if r["threat_model_name"] == "transfer"]
    assert {r["threat_model"] for r in transfer} == {"transfer[plain]"}
    assert {(r["attack"], r["model"]) for r in transfer} == {
        ("fgsm", "plain"), ("pgd", "plain"), ("fgsm", "rls"), ("pgd", "rls")}
    fingerprint = model_fingerprint(models["plain"])
    for r in transfer:
        (surrogate,) = r["attacker"]["surrogates"]
        assert surrogate["name"] == "plain" and surrogate["fingerprint"] == fingerprint
        assert r["attacker"]["crafted_on"] == "surrogate"
    # The attacker's model is the surrogate: its accuracy on its own
    # examples is the same whichever defense they are then shown to.
    for attack in ("fgsm", "pgd"):
        pair = [r for r in transfer if r["attack"] == attack]
        assert pair[0]["attacker_accuracy"] == pair[1]["attacker_accuracy"]
        np.testing.assert_array_equal(pair[0]["examples"]["linf"], pair[1]["examples"]["linf"])
    # On plain itself transfer from plain is the white-box attack: PGD fools it.
    pgd_plain = next(r for r in transfer if r["attack"] == "pgd" and r["model"] == "plain")
    assert pgd_plain["accuracy"]["mean"] == pytest.approx(pgd_plain["attacker_accuracy"])
    assert pgd_plain["attacker_accuracy"] < pgd_plain["attacker_clean_accuracy"]


def test_transfer_from_a_copy_and_an_ensemble_of_surrogates(models):
    copy = make_micro_model(2, seed=7)
    x, y = toy_images(8, size=8, seed=4)
    config = _config(attacks=("pgd",), surrogates=("copy", "plain+copy"))
    results = runner.run_evaluation(models, x, y, config, log=None,
                                    surrogate_models={"rls": copy})
    labels = {(r["threat_model"], r["model"]) for r in results["robust"]}
    assert labels == {("transfer[copy]", "rls"), ("transfer[plain+copy]", "rls")}
    skipped = [s for s in results["skipped"] if s.get("model") == "plain"]
    assert len(skipped) == 2 and "no independently trained copy" in skipped[0]["reason"]
    record = next(r for r in results["robust"] if r["threat_model"] == "transfer[plain+copy]")
    names = [s["name"] for s in record["attacker"]["surrogates"]]
    assert names == ["plain", "copy:rls"]
    assert record["attacker"]["surrogates"][1]["fingerprint"] == model_fingerprint(copy)
    assert model_fingerprint(copy) != model_fingerprint(models["rls"])


def test_unknown_surrogate_is_refused_before_any_work(models):
    x, y = toy_images(8, size=8, seed=4)
    with pytest.raises(ValueError, match="surrogate='nope'"):
        runner.run_evaluation(models, x, y, _config(surrogates=("nope",)), log=None)


def test_arc_attacker_sees_members_unaveraged(models):
    rls = models["rls"]
    attacker = tm_lib.make_arc_attacker(rls, tm_lib.ThreatModel("arc", num_paths=3), seed=0)
    x, _ = toy_images(4, size=8, seed=5)
    logits = attacker.model_fn(x).numpy()
    assert logits.shape == (3, 4, 4)
    expected = np.log(rls.outputs(x, attacker.paths).numpy() + tm_lib.TINY)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
    plain = tm_lib.make_arc_attacker(models["plain"], tm_lib.ThreatModel("arc", num_paths=3))
    assert plain.model_fn(x).shape[0] == 1
    assert plain.describe()["member_source"] == "the deterministic model itself"


SWEEP_CONFIG = dict(attacks=("pgd",), threat_models=("transfer", "eot"), convergence=True)


@pytest.fixture(scope="module")
def sweep_run(models):
    """One run with transfer, eot and the sweeps, and its two shards."""
    x, y = toy_images(16, size=8, seed=8)
    config = _config(**SWEEP_CONFIG)
    single = runner.run_evaluation(models, x, y, config, log=None)
    parts = [shards.run_shard(models, x, y, config, 2, i, log=None) for i in range(2)]
    return single, parts


def test_convergence_sweeps_give_one_record_per_point(sweep_run):
    results, _ = sweep_run
    sweeps = {(r["model"], r["sweep"], r["value"]) for r in results["convergence"]}
    assert sweeps == {("plain", "steps", 1), ("plain", "steps", 2), ("plain", "eps", 0.2),
                      ("plain", "eps", 0.6), ("rls", "steps", 1), ("rls", "steps", 2),
                      ("rls", "draws", 1), ("rls", "draws", 2), ("rls", "eps", 0.2),
                      ("rls", "eps", 0.6)}
    for r in results["convergence"]:
        assert r["attack"] == "pgd" and r["threat_model_name"] == "eot"
        assert r["threat_model"] == f"eot[E={r['eot_samples']}]"
        assert r["settings"]["kwargs"]["nb_iter"] == r["steps"]
        assert r["linf_max"] <= r["eps_model_units"] + 1e-6
    big = next(r for r in results["convergence"] if r["model"] == "plain" and r["value"] == 0.6)
    assert big["accuracy"]["mean"] <= 0.25  # a large eps breaks the undefended model
    text = report.markdown_report(results)
    assert "## Convergence of the adaptive attack" in text
    assert "## Gradient-masking checks" in text


def test_sharded_run_with_sweeps_and_transfer_merges_to_the_single_run(sweep_run):
    single, parts = sweep_run
    merged = shards.merge_shards(parts)
    for section in ("robust", "convergence"):
        assert len(merged[section]) == len(single[section])
        for a, b in zip(merged[section], single[section]):
            assert (a["threat_model"], a["param"], a["model"]) == (
                b["threat_model"], b["param"], b["model"])
            assert a["accuracy"]["values"] == pytest.approx(b["accuracy"]["values"])
            assert a.get("sweep") == b.get("sweep")


def test_score_based_attacks_run_on_their_subset_and_count_queries(models):
    # The stochastic model only: its E-draw queries are the path that matters.
    models = {"rls": models["rls"]}
    x, y = toy_images(16, size=8, seed=9)
    config = _config(attacks=("square", "spsa"), threat_models=("eot",))
    single = runner.run_evaluation(models, x, y, config, log=None)
    assert {r["attack"] for r in single["robust"]} == {"square", "spsa"}
    for r in single["robust"]:
        assert r["num_examples"] == SMALL["score_num_examples"]
        assert r["queries"]["max"] <= (SMALL["square_queries"] if r["attack"] == "square"
                                       else 1e9)
        assert r["queries"]["mean"] >= 1
        assert r["linf_max"] <= 0.8 + 1e-6
    # Shard 1 (examples 8-15) lies past the subset: it contributes nothing,
    # and the merge equals the single run.
    parts = [shards.run_shard(models, x, y, config, 2, i, log=None) for i in range(2)]
    merged = shards.merge_shards(parts)
    for a, b in zip(merged["robust"], single["robust"]):
        assert a["num_examples"] == b["num_examples"]
        assert a["accuracy"]["values"] == pytest.approx(b["accuracy"]["values"])
        assert a["queries"] == pytest.approx(b["queries"])


def test_cw_and_ead_run_on_their_subset_and_deepfool_on_every_image(models):
    x, y = toy_images(16, size=8, seed=11)
    preset = presets.get_preset("paper_mnist").replace(
        **{**SMALL, "cw_steps": 3, "ead_steps": 3, "cw_c": (0.1,), "ead_c": (0.1,),
           "deepfool_max_iter": 3, "min_norm_opt_num_examples": 8})
    config = _config(attacks=("deepfool", "cw", "ead"), threat_models=("paper",),
                     preset=preset)
    single = runner.run_evaluation(models, x, y, config, log=None)
    sizes = {(r["attack"], r["model"]): r["num_examples"] for r in single["robust"]}
    assert sizes == {(a, m): (16 if a == "deepfool" else 8)
                     for a in ("deepfool", "cw", "ead") for m in models}
    # Shard 1 (images 8-15) lies past the C&W / EAD subset: the merge equals
    # the single run.
    parts = [shards.run_shard(models, x, y, config, 2, i, log=None) for i in range(2)]
    merged = shards.merge_shards(parts)
    for a, b in zip(merged["robust"], single["robust"]):
        assert (a["attack"], a["model"], a["num_examples"]) == (
            b["attack"], b["model"], b["num_examples"])
        assert a["accuracy"]["values"] == pytest.approx(b["accuracy"]["values"])
    # 0, the default: every image.
    everything = runner.run_evaluation(
        models, x, y, _config(attacks=("cw",), threat_models=("paper",),
                              preset=preset.replace(min_norm_opt_num_examples=0)), log=None)
    assert {r["num_examples"] for r in everything["robust"]} == {16}


def test_arc_threat_model_runs_arc_only(models):
    x, y = toy_images(8, size=8, seed=10)
    preset = presets.get_preset("paper_mnist").replace(**{**SMALL, "arc_paths": 2})
    config = _config(attacks=("pgd", "arc"), threat_models=("arc",), preset=preset)
    results = runner.run_evaluation(models, x, y, config, log=None)
    assert {(r["attack"], r["threat_model"]) for r in results["robust"]} == {("arc", "arc[P=2]")}
    rls = next(r for r in results["robust"] if r["model"] == "rls")
    assert rls["attacker"]["members"] == 2 and len(rls["attacker"]["paths"]) == 2
    assert any(s["attack"] == "pgd" and s["threat_model"] == "arc[P=2]"
               for s in results["skipped"])
