"""Orchestration: attacks x parameters x threat models on several classifiers.

`run_evaluation` is the engine behind ``attack_eval.py`` (via
`rls_tf.evaluation.api.evaluate_dirs`). The parts live in their own modules:
the configuration and seeds (`config`), the defender (`defender`), the
crafting with its APGD-CE memo (`crafting`), the typed records and the one
summary function (`records`); the attacks come from the registry
(`rls_tf.attacks.REGISTRY`). Every model is seen through
`rls_tf.interface.StochasticClassifier` only. For every model
(usually ``"baseline"``, the undefended M=1 network, and ``"rls"``) it
measures

* clean accuracy of the defender (N fresh sampled models, the model's own
  inference), as mean +- std over R repeats of the defender's draw, and
  against the number of defender samples N = 1, 3, 5, 10, 15 (Table 6);
* the interrater agreement of the defender's N samples (Table 5), R repeats;
* for every threat model, attack and parameter: the robust accuracy of the
  defender on the adversarial examples (mean +- std over the same R draws,
  and against N), the accuracy of the attacker's own model on them, and for
  DeepFool, C&W and EAD the success rate and the mean L2 / L1 size.

**The defender's draws.** Repeat r of the defender is a fixed set of
``max(N, max(sample_counts))`` sampled models (random paths drawn with a seed
derived from ``seed``, the model and r), used on every batch and for every
attack, so all numbers of one repeat are measured against the same N-model
ensemble and attacks are compared on paired draws. The first N of them are
the defender; prefixes give accuracy against N. A model built with
per-example sampling draws fresh per-example paths instead. A deterministic
model (M=1) is evaluated once.

**Attack recipes per threat model** (parameters from the `Preset`):

| attack | paper / multi_sample | eot | apgd_rand |
|---|---|---|---|
| fgsm | one step | one EOT step | n/a |
| pgd | ``pgd_steps`` of ``pgd_step_ratio * eps`` | ``eot_pgd_steps`` of 2.5 eps / steps, random start, ``eot_pgd_restarts`` restarts | n/a |
| apgd | APGD-CE | APGD-CE | APGD-CE then APGD-DLR |
| deepfool, cw, ead | paper settings | only with ``eot_min_norm``: ``eot_min_norm_steps``, zero and ``eot_kappa`` confidence | n/a |

With restarts, and for APGD-CE + APGD-DLR, the attacker submits ONE point
per example: the candidate whose margin ``max_{i != y} D_i - D_y`` on its own
decision function D (``log`` of the mean probabilities of the attacker's
model, under EOT a fresh E-draw estimate) is largest; later candidates are
only crafted for examples the earlier ones did not already fool (by that
estimate). The defender's randomness is never consulted when choosing.
(AutoAttack's ``rand`` version judges each stage with a fresh forward pass of
the randomised model instead, which gives the attacker several chances
against the defender's coin flips.)

The APGD-CE stage of ``apgd_rand`` is the ``eot`` threat model's APGD-CE run
(same E, steps, restarts and seeds) when both are requested: it is reused,
not recomputed.
"""

import time

import keras
import numpy as np

from rls_tf.attacks.registry import ATTACK_NAMES
from rls_tf.attacks.registry import REGISTRY
from rls_tf.attacks.registry import AttackSetting
from rls_tf.attacks.registry import get_attack
from rls_tf.evaluation import threat_models as tm_lib
from rls_tf.evaluation.config import EvalConfig
from rls_tf.evaluation.config import check_data
from rls_tf.evaluation.config import derive_seed
from rls_tf.evaluation.config import environment_info
from rls_tf.evaluation.crafting import Crafter
from rls_tf.evaluation.crafting import batch_seed
from rls_tf.evaluation.crafting import ce_memo_key
from rls_tf.evaluation.defender import Defender
from rls_tf.evaluation.records import FORMAT_VERSION
from rls_tf.evaluation.records import RobustRecord
from rls_tf.evaluation.records import defender_summary
from rls_tf.evaluation.records import model_fingerprint
from rls_tf.evaluation.records import perturbation_sizes
from rls_tf.evaluation.records import record_summary
from rls_tf.evaluation.results import EvaluationResults
from rls_tf.validation import check_int

__all__ = [
    "ATTACK_NAMES",
    "MIN_NORM_ATTACKS",
    "AttackSetting",
    "Defender",
    "EvalConfig",
    "Evaluation",
    "attack_settings",
    "convergence_settings",
    "defender_summary",
    "derive_seed",
    "environment_info",
    "is_applicable",
    "record_summary",
    "run_evaluation",
]

# Views of the registry's built-in attacks (its order is table order); the
# attack functions by function name are `rls_tf.attacks.ATTACKS`.
MIN_NORM_ATTACKS = tuple(name for name, spec in REGISTRY.items() if spec.min_norm)
_Crafter = Crafter  # the name earlier versions used


def _threat_model_spec(threat_model):
    if isinstance(threat_model, str):
        return tm_lib.get_threat_model(threat_model)
    return threat_model.spec


def is_applicable(attack, threat_model, preset):
    """``(applicable, reason)`` of an attack under a threat model (or its name)."""
    return _threat_model_spec(threat_model).applicable(get_attack(attack), preset)


def attack_settings(attack, threat_model, preset):
    """The `AttackSetting`s of one attack under one threat model (or its name)."""
    return _threat_model_spec(threat_model).settings(get_attack(attack), preset)


def _batches(num, batch_size):
    return [(s, min(s + batch_size, num)) for s in range(0, num, batch_size)]


def _surrogate_parts(spec, target, models, surrogate_models):
    """``(surrogate id, [classifiers], reason)`` of a transfer spec for `target`.

    ``reason`` is set (and the rest None) when `target` has no copy.
    """
    names, found = [], []
    for part in spec.split("+"):
        if part == "copy":
            if target not in surrogate_models:
                return None, None, (f"no independently trained copy of {target!r} "
                                    "(--surrogate_dirs)")
            names.append(f"copy:{target}")
            found.append(surrogate_models[target])
        elif part in models:
            names.append(part)
            found.append(models[part])
        elif part in surrogate_models:
            names.append(f"copy:{part}")
            found.append(surrogate_models[part])
        else:
            raise ValueError(
                f"Unknown surrogate. Received: surrogate={part!r} (in {spec!r}). Expected "
                f"'copy' or one of the evaluated models {tuple(models)}.")
    return "+".join(names), found, None


def _check_surrogates(config, models, surrogate_models):
    if not config.uses_surrogates:
        return
    for spec in config.surrogates:
        for key in models:
            _surrogate_parts(spec, key, models, surrogate_models)


def run_evaluation(models, x, y, config, log=print, example_offset=0, keep_examples=False,
                   surrogate_models=None, checkpoint=None):
    """Evaluates `models` under every attack x parameter x threat model.

    **Seeds.** Everything random is a function of ``config.seed`` and of
    what it is for, never of the order things run in: the defender's draws
    of repeat r (per model), the attacker's pinned draws (per model, threat
    model, attack and parameter) and the random starts of batch b (its
    *global* index, ``example_offset // batch_size + b``). Evaluating a
    batch-aligned slice of the examples with its `example_offset` (a shard,
    `rls_tf.evaluation.shards`) thus crafts exactly the adversarial images of
    those examples in one run over all of them. EOT draws are seeded the same
    way (`threat_models.EotDraws`, restarted at every batch). Only the
    defender's draws of a classifier that draws per example are fresh,
    unseeded TF draws.

    Args:
        models: dict ``{key: StochasticClassifier}`` in column order, e.g.
            ``{"baseline": plain, "rls": rls}``.
        x: float32 images ``[B, H, W, C]`` in [-1, 1].
        y: int labels ``[B]``.
        config: an `EvalConfig`.
        log: function printing one line (None: silent).
        example_offset: index of ``x[0]`` in the full evaluation set, a
            multiple of ``config.batch_size`` (0 unless `x` is a shard).
        keep_examples: also return the per-example data every number is
            computed from (``results["examples"]["clean"][key]`` and
            ``record["examples"]``, NumPy arrays; see `defender_summary`
            and `record_summary`).
        surrogate_models: ``{key: StochasticClassifier}``, independently
            trained copies of the evaluated defenses (key: the defense's
            key), the ``copy`` surrogates of ``transfer``; not evaluated.
        checkpoint: a `rls_tf.evaluation.record_checkpoint.RecordCheckpoint`
            (with `keep_examples`): records it holds are taken from it, not
            recomputed, and every new record is saved to it.

    Returns:
        The results dict (see `rls_tf.evaluation.report` for its layout):
        ``format_version``, ``config``, ``environment``, ``models``,
        ``clean``, ``interrater``, ``robust`` (one `RobustRecord` JSON per
        model x threat model x attack setting, each with its
        ``threat_model`` label), ``skipped`` and ``timings``.
    """
    return Evaluation(models, x, y, config, log=log, example_offset=example_offset,
                      keep_examples=keep_examples, surrogate_models=surrogate_models,
                      checkpoint=checkpoint).run()


def _describe(model):
    info = model.describe()
    return {k: info[k] for k in ("defense", "num_submodels", "stochastic") if k in info}


class Evaluation:
    """One evaluation's state: its inputs, defenders, attackers' memos and results.

    `run_evaluation` builds one and calls `run`; the arguments are its.
    The state the runs share lives here instead of in parameter lists: the
    defenders (one per model), the APGD-CE memo shared by ``eot`` and
    ``apgd_rand`` (see `crafting`), the surrogate examples that serve every
    defense under ``transfer``, the surrogates' weight fingerprints and the
    results dict being filled.
    """

    def __init__(self, models, x, y, config, log=print, example_offset=0, keep_examples=False,
                 surrogate_models=None, checkpoint=None):
        if not isinstance(config, EvalConfig):
            raise ValueError(f"`config` must be an EvalConfig. Received: config={config!r}")
        if not models:
            raise ValueError("At least one model is needed. Received: models={}")
        example_offset = check_int("example_offset", example_offset, minimum=0)
        if example_offset % config.batch_size:
            raise ValueError(
                f"`example_offset` must be an int >= 0 and a multiple of batch_size="
                f"{config.batch_size}. Received: example_offset={example_offset!r}"
            )
        self.models = models
        self.config = config
        self.example_offset = example_offset
        self.batch_offset = example_offset // config.batch_size
        self.keep_examples = keep_examples
        self.surrogate_models = dict(surrogate_models or {})
        _check_surrogates(config, models, self.surrogate_models)
        self.x, self.y = check_data(x, y)
        self.log = log or (lambda *_: None)
        self.defenders = {}
        self.memo = {}  # APGD-CE stages shared by eot and apgd_rand (see crafting)
        self.transfer_cache = {}  # a surrogate's examples serve every defense
        self.fingerprints = {}
        self.results = None
        if checkpoint is not None and not keep_examples:
            raise ValueError("A checkpoint saves records with their per-example data: "
                             "keep_examples must be True. Received: keep_examples=False")
        self.checkpoint = checkpoint

    def run(self):
        """Runs everything; returns the results dict (see `run_evaluation`)."""
        config = self.config
        keras.utils.set_random_seed(config.seed)
        started = time.time()
        order = ("format_version", "config", "environment", "models", "clean", "interrater",
                 "robust", "skipped", "timings", *(("examples",) if self.keep_examples else ()),
                 *(("convergence",) if config.convergence else ()))
        self.results = EvaluationResults(
            config={**config.to_json(), "num_examples": int(len(self.x))},
            models={}, clean={}, interrater={}, robust=[], skipped=[], timings={},
            convergence=[] if config.convergence else None, format_version=FORMAT_VERSION,
            environment=environment_info(),
            extra={"examples": {"clean": {}}} if self.keep_examples else {}, order=order)
        for key, model in self.models.items():
            self._evaluate_clean(key, model)
        for threat_model in config.threat_model_grid():
            self._run_threat_model(threat_model)
        if config.convergence:
            self._run_convergence()
        self.results.timings["total"] = time.time() - started
        return self.results.to_json()

    def _evaluate_clean(self, key, model):
        config, results = self.config, self.results
        t0 = time.time()
        defender = Defender(model, config.eval_samples, config.sample_counts, config.repeats,
                            config.batch_size, derive_seed(config.seed, key))
        self.defenders[key] = defender
        clean = defender.evaluate(self.x, self.y)
        results.models[key] = {**model.describe(), "defender": defender.describe()}
        results.clean[key] = {k: v for k, v in clean.items()
                              if k not in ("correct", "interrater", "examples")}
        if self.keep_examples:
            results.extra["examples"]["clean"][key] = clean["examples"]
        results.interrater[key] = clean["interrater"]
        results.timings[f"clean/{key}"] = time.time() - t0
        acc = clean["accuracy"]
        self.log(f"clean accuracy [{key}]: {acc['mean']:.4f} +- {acc['std']:.4f} "
                 f"(N={config.eval_samples}, R={defender.repeats})")

    def _skip(self, attack, threat_model, reason, model=None):
        entry = {"attack": attack, "threat_model": threat_model.label}
        if model is not None:
            entry["model"] = model
        entry["reason"] = reason
        self.results.skipped.append(entry)

    def _run_threat_model(self, threat_model):
        """Every applicable attack setting on every model under one threat model."""
        crafters = {}  # one attacker (and traced functions) per attacker id
        on_surrogate = threat_model.spec.crafted_on_surrogate
        for attack in self.config.attacks_under(threat_model.name):
            ok, reason = is_applicable(attack, threat_model, self.config.preset)
            if not ok:
                self._skip(attack, threat_model, reason)
                continue
            refused = {key: threat_model.spec.refuses(model)
                       for key, model in self.models.items()}
            for key, reason in refused.items():
                if reason:
                    self._skip(attack, threat_model, reason, model=key)
            for setting in attack_settings(attack, threat_model, self.config.preset):
                for key, model in self.models.items():
                    if refused[key]:
                        continue
                    seed_id, surrogates = key, None
                    if on_surrogate:
                        seed_id, surrogates, reason = _surrogate_parts(
                            threat_model.surrogate, key, self.models, self.surrogate_models)
                        if reason:
                            self._skip(attack, threat_model, reason, model=key)
                            continue
                    if seed_id not in crafters:
                        crafters[seed_id] = Crafter(
                            self._make_attacker(threat_model, model, seed_id, surrogates))
                    crafter = crafters[seed_id]
                    run_id = (threat_model.label, attack, setting.param, seed_id)
                    # Pinned draws are redrawn per run.
                    crafter.attacker.repin(derive_seed(self.config.seed, "attacker", *run_id))
                    record = self._run_one(crafter, setting, run_id, key,
                                           cache=self.transfer_cache if on_surrogate else None)
                    self._add_record("robust", record, f"{threat_model.label}/{attack}/{key}")

    def _make_attacker(self, threat_model, model, seed_id, surrogates):
        attacker_seed = derive_seed(self.config.seed, "attacker", seed_id)
        if surrogates is None:
            return tm_lib.make_attacker(model, threat_model, seed=attacker_seed)
        info = []
        for name, surrogate in zip(seed_id.split("+"), surrogates):
            if name not in self.fingerprints:
                self.fingerprints[name] = model_fingerprint(surrogate)
            info.append({"name": name, "fingerprint": self.fingerprints[name],
                         **_describe(surrogate)})
        return tm_lib.make_transfer_attacker(surrogates, threat_model, seed=attacker_seed,
                                             info=info)

    def _add_record(self, section, record, part):
        getattr(self.results, section).append(record)
        timings = self.results.timings
        timings[part] = timings.get(part, 0.0) + (
            record.seconds["attack"] + record.seconds["defender"])

    def _run_convergence(self):
        """EOT PGD against steps, draws and eps: ``results["convergence"]``."""
        for key, model in self.models.items():
            crafters = {}
            for sweep, value, setting, num_draws in convergence_settings(self.config.preset,
                                                                         model.is_stochastic):
                threat_model = tm_lib.ThreatModel("eot", eot_samples=int(num_draws))
                if num_draws not in crafters:
                    crafters[num_draws] = Crafter(tm_lib.make_attacker(
                        model, threat_model, seed=derive_seed(self.config.seed, "attacker", key)))
                run_id = (f"convergence/{threat_model.label}", "pgd", setting.param, key)
                record = self._run_one(crafters[num_draws], setting, run_id, key,
                                       sweep={"sweep": sweep, "steps": setting.kwargs["nb_iter"],
                                              "eot_samples": int(num_draws)}, value=value)
                self._add_record("convergence", record, f"convergence/{sweep}/{key}")

    def _craft(self, crafter, setting, run_id, x, y, cache):
        """Crafts every batch of one run: ``(x_adv, margins, clean_margins, queries, reused)``."""
        attacker, config = crafter.attacker, self.config
        spec = REGISTRY[setting.attack]
        batches = _batches(len(x), config.batch_size)
        progbar = keras.utils.Progbar(len(batches), verbose=1 if config.verbose else 0,
                                      unit_name="batch")
        x_adv = np.empty_like(x)
        queries = np.zeros(len(x), np.float64) if spec.reports_queries else None
        margins = np.empty(len(x), np.float32)
        clean_margins = np.empty(len(x), np.float32)
        reused = False
        for local_b, (start, stop) in enumerate(batches):
            b = self.batch_offset + local_b  # the global batch index: it seeds the batch
            xb, yb = x[start:stop], y[start:stop]
            cache_key = (run_id, b)
            if cache is not None and cache_key in cache:
                x_adv[start:stop], margins[start:stop], clean_margins[start:stop] = (
                    cache[cache_key])
                progbar.update(local_b + 1)
                continue
            seed = batch_seed(config.seed, run_id, b, setting, attacker.threat_model)
            # EOT draws restart from the batch's seed: a shard repeats them.
            attacker.reseed(derive_seed(seed, "eot-draws"))
            adv, margin, was_reused = crafter.craft_batch(
                setting, xb, yb, seed, self.memo,
                ce_memo_key(setting, attacker.threat_model, run_id[3], b))
            reused = reused or was_reused
            if queries is not None:
                queries[start:stop] = crafter.last_queries
            x_adv[start:stop] = adv
            margins[start:stop] = crafter.margin(adv, yb) if margin is None else margin
            clean_margins[start:stop] = crafter.margin(xb, yb)
            if cache is not None:
                cache[cache_key] = (x_adv[start:stop].copy(), margins[start:stop].copy(),
                                    clean_margins[start:stop].copy())
            progbar.update(local_b + 1)
        return x_adv, margins, clean_margins, queries, reused

    def _run_one(self, crafter, setting, run_id, model_key, cache=None, sweep=None, value=None):
        """One attack setting on one model over all batches: its `RobustRecord`.

        ``run_id`` (threat-model label, attack, param, attacker id) seeds the
        batches; the attacker id is the model's key, or under ``transfer``
        the surrogates', whose examples `cache` shares between the defenses.
        """
        attacker, config = crafter.attacker, self.config
        saved_as = (*run_id, model_key, sweep, value)
        if self.checkpoint is not None:
            record = self.checkpoint.get(saved_as)
            if record is not None:
                if config.verbose:
                    self.log(f"[{run_id[0]}] {REGISTRY[setting.attack].title} {run_id[2]} on "
                             f"{model_key}: kept from the checkpoint")
                return record
        threat_model = attacker.threat_model
        defender = self.defenders[model_key]
        spec = REGISTRY[setting.attack]
        x, y = self.x, self.y
        if spec.subset is not None:
            # The first n images of the whole evaluation (of this shard: those
            # with a global index below n); n = 0: all of them.
            limit = int(getattr(config.preset, spec.subset))
            if limit > 0:
                stop = max(0, min(len(x), limit - self.example_offset))
                x, y = x[:stop], y[:stop]
        if config.verbose:
            on = (model_key if run_id[3] == model_key
                  else f"{model_key} (crafted on {run_id[3]})")
            self.log(f"[{run_id[0]}] {spec.title} {run_id[2]} on {on}")
        t0 = time.time()
        x_adv, margins, clean_margins, queries, reused = self._craft(
            crafter, setting, run_id, x, y, cache)
        attack_seconds = time.time() - t0

        t0 = time.time()
        evaluation = defender.evaluate(x_adv, y)
        defender_seconds = time.time() - t0

        changed, linf, l2, l1 = perturbation_sizes(x_adv, x)
        examples = {
            **evaluation["examples"],
            "attacker_correct": margins <= 0,
            "attacker_clean_correct": clean_margins <= 0,
            "linf": linf,
        }
        if queries is not None:
            examples["queries"] = queries
        if spec.min_norm:
            examples["success"] = (clean_margins <= 0) & changed & (margins > 0)
            examples["l2"] = l2
            examples["l1"] = l1
        eps = None
        if setting.value is not None and spec.kind == "loss":
            model_eps = config.preset.model_eps(setting.value)
            eps = (setting.value, model_eps, model_eps / 2.0)
        identity = {
            "model": model_key,
            "threat_model": threat_model.label,
            "threat_model_name": threat_model.name,
            "attack": setting.attack,
            "param": setting.param,
            "value": setting.value if value is None else value,
            "settings": setting.to_json(),
            "attacker": attacker.describe(),
        }
        record = RobustRecord.from_examples(
            examples, defender.eval_samples, identity,
            {"attack": attack_seconds, "defender": defender_seconds}, spec.min_norm,
            ce_stage_reused=reused, eps=eps, keep_examples=self.keep_examples, sweep=sweep)
        acc = evaluation["accuracy"]
        if config.verbose:
            self.log(f"  robust accuracy {acc['mean']:.4f} +- {acc['std']:.4f}; attacker's "
                     f"model {record.attacker_accuracy:.4f}; {attack_seconds:.1f}s attack, "
                     f"{defender_seconds:.1f}s defender")
        if self.checkpoint is not None:
            self.checkpoint.put(saved_as, record)
        return record


# -- convergence sweeps ---------------------------------------------------------------


def convergence_settings(preset, stochastic):
    """The EOT-PGD points of the convergence sweeps: ``[(sweep, value, setting, E)]``.

    ``steps``: the step counts of ``convergence_steps`` at E =
    ``eot_samples``; ``draws``: the E of ``convergence_draws`` at
    ``eot_pgd_steps`` steps (stochastic models only: a deterministic model's
    draws are identical); ``eps``: ``sweep_eps`` at the eot defaults. PGD
    with step 2.5 eps / steps and a random start, one restart, CE loss.
    """
    eps = preset.sweep_eps_value

    def setting(eps_value, steps, num_draws):
        meps = preset.model_eps(eps_value)
        kwargs = {"eps": meps, "eps_iter": min(meps, 2.5 * meps / steps), "nb_iter": int(steps),
                  "rand_init": True}
        param = f"eps={eps_value:g}, steps={int(steps)}, E={int(num_draws)}"
        return AttackSetting("pgd", param, kwargs, value=eps_value)

    out = [("steps", int(n), setting(eps, n, preset.eot_samples), preset.eot_samples)
           for n in preset.convergence_steps]
    if stochastic:
        out += [("draws", int(e), setting(eps, preset.eot_pgd_steps, e), int(e))
                for e in preset.convergence_draws]
    out += [("eps", float(v), setting(v, preset.eot_pgd_steps, preset.eot_samples),
             preset.eot_samples) for v in preset.sweep_eps]
    return out
