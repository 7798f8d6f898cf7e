"""Threat models: pinned paths honoured, multi-sample means, exact EOT, M=1 = white box."""

import numpy as np
import pytest
import tensorflow as tf

from rls_tf.evaluation import attackers
from rls_tf.evaluation import presets
from rls_tf.evaluation import runner
from rls_tf.evaluation import threat_models as tm
from rls_tf.evaluation.runner import Defender

from tests.evaluation.conftest import toy_images


def _log(p):
    return np.log(np.asarray(p) + tm.TINY)


def test_paper_attacker_uses_its_pinned_path(tiny_models):
    model = tiny_models["rls"]
    x, _ = toy_images(6, seed=3)
    attacker = tm.make_attacker(model, "paper", seed=0)
    assert not attacker.white_box and attacker.paths.shape == (1, len(model.rls_layers))
    pinned = model.outputs(x, attacker.paths)[0]
    out = attacker.model_fn(x).numpy()
    np.testing.assert_allclose(out, _log(pinned), rtol=1e-5, atol=1e-5)
    # Pinned: the same sampled model at every call (also inside tf.function).
    traced = tf.function(attacker.model_fn)
    np.testing.assert_allclose(traced(x).numpy(), out, rtol=1e-5, atol=1e-5)
    # Re-pinning changes the path the (already traced) function uses.
    other = attacker.paths.copy()
    other[0, 0] = 1 - other[0, 0]
    attacker.paths_variable.assign(other)
    np.testing.assert_allclose(
        traced(x).numpy(), _log(model.outputs(x, other)[0]),
        rtol=1e-5, atol=1e-5,
    )
    assert not np.allclose(traced(x).numpy(), out, atol=1e-4)  # the pin matters
    new = attacker.repin(seed=123)
    np.testing.assert_array_equal(attacker.paths_variable.numpy(), new)


def test_paper_attacker_path_is_not_the_defenders(tiny_models):
    model = tiny_models["rls"]
    x, _ = toy_images(6, seed=4)
    attacker = tm.make_attacker(model, "paper", seed=7)
    attacked = attacker.model_fn(x).numpy()
    # The defender: N fresh samples, a different ensemble at every call,
    # never the attacker's single sampled model.
    defender = [tm.defender_outputs(model, x, 8).numpy() for _ in range(3)]
    assert defender[0].shape == (8, 6, 4)
    assert not np.allclose(defender[0], defender[1])
    for probs in defender:
        assert not np.allclose(_log(probs.mean(axis=0)), attacked, atol=1e-4)
    # The runner's defender draws its own paths from its own seeds: across
    # its repeats it uses several sampled models, not the attacker's path.
    runner_defender = Defender(model, 4, (1, 4), repeats=3, batch_size=8, seed=1)
    distinct = {tuple(p) for paths in runner_defender.paths for p in paths}
    assert len(distinct) > 1


def test_multi_sample_is_mean_of_pinned_outputs(tiny_models):
    model = tiny_models["rls"]
    x, _ = toy_images(5, seed=5)
    for num_paths in (1, 3, 5):
        threat = tm.ThreatModel("multi_sample", num_paths=num_paths)
        attacker = tm.make_attacker(model, threat, seed=num_paths)
        assert attacker.paths.shape == (num_paths, len(model.rls_layers))
        singles = [model.outputs(x, attacker.paths[i: i + 1])[0].numpy()
                   for i in range(num_paths)]
        expected = _log(np.mean(singles, axis=0))
        np.testing.assert_allclose(attacker.model_fn(x).numpy(), expected, rtol=1e-5, atol=1e-5)
        assert threat.label == f"multi_sample[S={num_paths}]"


def _ce(logits, y):
    labels = tf.broadcast_to(tf.constant(y)[None], tf.shape(logits)[:2]) if logits.shape.rank == 3 \
        else tf.constant(y)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return tf.reduce_sum(tf.reduce_mean(ce, axis=0)) if logits.shape.rank == 3 else tf.reduce_sum(ce)


def _grad(fn, x, y):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = _ce(fn(x), y)
    return tape.gradient(loss, x).numpy()


def test_eot_gradient_approaches_exact_expectation(one_layer_model):
    model = one_layer_model
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(6, 4, 4, 1)).astype("float32")
    y = np.array([0, 1, 2, 0, 1, 2])
    # Exact: the two sampled models have probability 1/2 each.
    paths = np.array([[0], [1]], np.int32)
    g = [_grad(lambda v, p=p: tm.log_probabilities(model.outputs(v, p[None])[0]),
               x, y) for p in paths]
    exact = 0.5 * (g[0] + g[1])
    spread = np.abs(g[0] - g[1]).max()
    assert spread > 0.1  # the two paths' gradients really differ

    many = tm.eot_model_fn(model, 4000)
    logits = many(tf.constant(x))
    assert logits.shape == (4000, 6, 3)
    eot = _grad(many, x, y)
    # Error per example = (fraction of path-0 draws - 1/2) * (g0 - g1):
    # std 0.5/sqrt(4000) ~ 0.008 of the spread.
    np.testing.assert_allclose(eot, exact, atol=0.04 * spread)
    assert np.abs(eot - g[0]).max() > 0.2 * spread and np.abs(eot - g[1]).max() > 0.2 * spread

    # Every draw is one of the two sampled models, drawn per example.
    probs = np.exp(logits.numpy())
    pinned = model.outputs(x, paths).numpy()
    is_0 = np.all(np.isclose(probs, pinned[0][None], atol=1e-5), axis=-1)
    is_1 = np.all(np.isclose(probs, pinned[1][None], atol=1e-5), axis=-1)
    assert np.all(is_0 | is_1)
    fraction = is_0.mean(axis=0)
    np.testing.assert_allclose(fraction, 0.5, atol=0.04)
    # Per-example sampling: within one draw e, examples take different paths.
    assert np.any(is_0.any(axis=1) & is_1.any(axis=1))


def test_eot_single_draw_is_one_path(one_layer_model):
    model = one_layer_model
    x = np.random.default_rng(1).uniform(-1, 1, size=(3, 4, 4, 1)).astype("float32")
    out = np.exp(tm.eot_model_fn(model, 1)(x).numpy())
    pinned = model.outputs(x, [[0], [1]]).numpy()
    for b in range(3):
        assert np.allclose(out[0, b], pinned[0, b], atol=1e-5) or np.allclose(
            out[0, b], pinned[1, b], atol=1e-5)


def test_baseline_is_white_box_under_every_threat_model(tiny_models):
    model = tiny_models["baseline"]
    assert not model.is_stochastic
    x, _ = toy_images(4, seed=6)
    plain = _log(model.network(x, training=False).numpy())
    # transfer attacks a surrogate and arc the members unaveraged: see
    # test_masking_runs.
    names = tuple(n for n in tm.THREAT_MODELS if n not in ("transfer", "arc"))
    for threat in tm.threat_model_grid(names, multi_sample_paths=(1, 5), eot_samples=20):
        attacker = tm.make_attacker(model, threat, seed=0)
        assert attacker.white_box and attacker.paths is None
        out = attacker.model_fn(x)
        assert out.shape == plain.shape  # no [E, B, K] tiling for a deterministic model
        np.testing.assert_allclose(out.numpy(), plain, rtol=1e-5, atol=1e-5)
    assert tm.defender_outputs(model, x, 10).shape == (1, 4, 4)


def test_threat_model_labels_and_checks():
    grid = tm.threat_model_grid(["paper", "multi_sample", "eot", "apgd_rand"],
                                multi_sample_paths=(1, 5), eot_samples=7)
    assert [t.label for t in grid] == [
        "paper", "multi_sample[S=1]", "multi_sample[S=5]", "eot[E=7]", "apgd_rand[E=7]"]
    with pytest.raises(ValueError, match="Unknown threat model"):
        tm.ThreatModel("bogus")
    with pytest.raises(ValueError, match="Unknown threat model"):
        tm.threat_model_grid(["paper", "whitebox"])
    with pytest.raises(ValueError, match="num_paths"):
        tm.ThreatModel("multi_sample", num_paths=0)
    with pytest.raises(ValueError, match="one sampled model"):
        tm.ThreatModel("paper", num_paths=2)
    with pytest.raises(ValueError, match="num_draws"):
        tm.eot_model_fn(None, 0)


def test_seeded_eot_draws_are_fresh_per_call_and_repeat_after_reseed(one_layer_model):
    model = one_layer_model
    x = np.random.default_rng(2).uniform(-1, 1, size=(64, 4, 4, 1)).astype("float32")
    draws = tm.EotDraws(model, seed=5)
    model_fn = tm.eot_model_fn(model, 4, draws)
    first, second = model_fn(x).numpy(), model_fn(x).numpy()
    assert first.shape == (4, 64, 3)
    assert not np.allclose(first, second)  # fresh paths at every call
    draws.reseed(5)
    np.testing.assert_allclose(model_fn(x).numpy(), first)  # the same sequence again
    draws.reseed(6)
    assert not np.allclose(model_fn(x).numpy(), first)
    # Each row is one of the two sampled models, about half each (mu uniform).
    pinned = model.outputs(x, [[0], [1]]).numpy()
    is_0 = np.all(np.isclose(np.exp(first), pinned[0][None], atol=1e-5), axis=-1)
    is_1 = np.all(np.isclose(np.exp(first), pinned[1][None], atol=1e-5), axis=-1)
    assert np.all(is_0 | is_1)
    assert 0.35 < is_0.mean() < 0.65


def test_eot_tied_fn_gives_every_block_the_same_fresh_draws(tiny_models):
    model = tiny_models["rls"]
    x, _ = toy_images(16, seed=4)
    x = np.asarray(x, np.float32)
    draws = tm.EotDraws(model, seed=3)
    tied_fn = tm.eot_tied_fn(model, 5, draws)
    shifted = np.clip(x + 0.05, -1, 1)
    out = tied_fn(np.concatenate([x, x, shifted]), 3).numpy()
    assert out.shape[:2] == (5, 48)
    # Blocks of the same images under the same draws: identical.
    np.testing.assert_allclose(out[:, :16], out[:, 16:32], atol=1e-6)
    # Per example the E draws differ (fresh per-example paths, like eot_model_fn)...
    assert not np.allclose(out[0, :16], out[1, :16])
    # ...and every call draws anew.
    again = tied_fn(np.concatenate([x, x, shifted]), 3).numpy()
    assert not np.allclose(again[:, :16], out[:, :16])
    # The EOT attacker hands it to the attacks that take it; a white-box one has none.
    attacker = tm.make_attacker(model, tm.ThreatModel("eot", eot_samples=5), seed=0)
    assert attacker.tied_fn is not None and "common_draws" in attacker.describe()
    assert tm.make_attacker(tiny_models["baseline"], "eot").tied_fn is None
    with pytest.raises(ValueError, match="num_draws"):
        tm.eot_tied_fn(model, 0)


def test_arc_member_fn_is_one_member_of_the_set(tiny_models):
    model = tiny_models["rls"]
    x, _ = toy_images(5, seed=8)
    attacker = tm.make_arc_attacker(model, tm.ThreatModel("arc", num_paths=4), seed=1)
    members = attacker.model_fn(x).numpy()
    assert members.shape[:2] == (4, 5)
    for m in range(4):
        np.testing.assert_allclose(attacker.member_fn(x, tf.constant(m)).numpy(), members[m],
                                   atol=1e-5)


def test_crafter_passes_common_draws_to_square_and_spsa_only(tiny_models, monkeypatch):
    from rls_tf.attacks import registry
    from rls_tf.evaluation.crafting import Crafter

    model = tiny_models["rls"]
    x, y = toy_images(4, seed=5)
    attacker = tm.make_attacker(model, tm.ThreatModel("eot", eot_samples=2), seed=0)
    seen = {}
    for name in ("square", "pgd"):
        spec = registry.REGISTRY[name]

        def spy(model_fn, xs, ys, _name=name, _spec=spec, **kwargs):
            seen[_name] = kwargs.get("tied_fn")
            out = np.asarray(xs)
            return (out, {"queries": np.ones(len(out))}) if _spec.reports_queries else \
                tf.constant(out)

        monkeypatch.setitem(registry.REGISTRY, name, dataclasses_replace(spec, function=spy))
        setting = registry.AttackSetting(name, "eps=0.1", {"eps": 0.1})
        Crafter(attacker).craft(setting, np.asarray(x, np.float32), np.asarray(y), seed=0)
    assert seen["square"] is attacker.tied_fn
    assert seen["pgd"] is None


def dataclasses_replace(spec, **changes):
    import dataclasses

    return dataclasses.replace(spec, **changes)


def test_a_threat_model_registered_from_a_test_runs_in_the_runner(micro_models):
    # One spec is all a threat model needs: label, JSON, attacker, admitted
    # attacks and budget come from it (no library file is touched).
    spec = tm.register_threat_model(tm.ThreatModelSpec(
        "pgd_pair", "standard", attackers.make_sampled_attacker,
        size="num_paths", size_symbol="S", admits=lambda attack: attack.name == "pgd",
        expand=lambda options: [{"num_paths": 2}]))
    try:
        preset = presets.get_preset("paper_mnist").replace(pgd_eps=(0.2,), pgd_steps=2)
        assert spec.applicable("fgsm", preset) == (False, "pgd_pair runs pgd only")
        assert tm.ThreatModel("pgd_pair", num_paths=2).to_json() == {
            "name": "pgd_pair", "label": "pgd_pair[S=2]", "num_paths": 2}
        config = runner.EvalConfig(attacks=("fgsm", "pgd"), threat_models=("pgd_pair",),
                                   preset=preset, eval_samples=3, repeats=1,
                                   sample_counts=(1,), batch_size=4, seed=0, verbose=0)
        x, y = toy_images(4, size=8, seed=5)
        results = runner.run_evaluation(micro_models, x, y, config, log=None)
        assert [(r["threat_model"], r["attack"], r["model"]) for r in results["robust"]] == [
            ("pgd_pair[S=2]", "pgd", "baseline"), ("pgd_pair[S=2]", "pgd", "rls")]
        rls = results["robust"][1]
        assert len(rls["attacker"]["paths"]) == 2  # two pinned draws
        assert results["skipped"] == [{"attack": "fgsm", "threat_model": "pgd_pair[S=2]",
                                       "reason": "pgd_pair runs pgd only"}]
    finally:
        tm.unregister_threat_model("pgd_pair")
    with pytest.raises(ValueError, match="Unknown threat model"):
        tm.ThreatModel("pgd_pair")
