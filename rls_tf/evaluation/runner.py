"""Runs attacks x parameters x threat models on a baseline and an RLS model.

`run_evaluation` is the engine behind ``attack_eval.py``. For every model
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

import dataclasses
import platform
import sys
import time
import zlib
from typing import Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from rls_tf import attacks as rls_attacks
from rls_tf.evaluation import interrater
from rls_tf.evaluation import threat_models as tm_lib
from rls_tf.evaluation.presets import Preset

__all__ = [
    "ATTACKS",
    "MIN_NORM_ATTACKS",
    "AttackSetting",
    "Defender",
    "EvalConfig",
    "attack_settings",
    "defender_summary",
    "derive_seed",
    "environment_info",
    "is_applicable",
    "record_summary",
    "run_evaluation",
]

# CLI names of the attacks, in table order.
ATTACKS = ("fgsm", "pgd", "apgd", "deepfool", "cw", "ead")
MIN_NORM_ATTACKS = ("deepfool", "cw", "ead")
ATTACK_TITLES = {
    "fgsm": "FGSM",
    "pgd": "PGD",
    "apgd": "APGD",
    "deepfool": "DeepFool",
    "cw": "C&W-L2",
    "ead": "EAD",
}
DEFAULT_SAMPLE_COUNTS = (1, 3, 5, 10, 15)


def derive_seed(seed, *keys):
    """A reproducible seed in [0, 2**31) from a base seed and some labels."""
    text = "/".join([str(seed)] + [str(k) for k in keys])
    return zlib.crc32(text.encode("utf-8")) & 0x7FFFFFFF


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """What `run_evaluation` runs.

    Attributes:
        attacks: attack names (subset of `ATTACKS`).
        threat_models: threat-model names (subset of
            `threat_models.THREAT_MODELS`).
        preset: the attack parameters.
        eval_samples: N, the defender's sampled models.
        repeats: R, repeats of the defender's draw.
        sample_counts: the N values of the accuracy-against-N table.
        batch_size: examples per attack batch (an EOT batch runs E times as
            many rows through the network).
        seed: base seed of everything random (paths, random starts, TF).
        verbose: 0 silent, 1 progress bars and a line per run.
    """

    attacks: Tuple[str, ...]
    threat_models: Tuple[str, ...]
    preset: Preset
    eval_samples: int = 10
    repeats: int = 5
    sample_counts: Tuple[int, ...] = DEFAULT_SAMPLE_COUNTS
    batch_size: int = 100
    seed: int = 0
    verbose: int = 1

    def __post_init__(self):
        object.__setattr__(self, "attacks", tuple(self.attacks))
        object.__setattr__(self, "threat_models", tuple(self.threat_models))
        object.__setattr__(self, "sample_counts", tuple(int(n) for n in self.sample_counts))
        if not self.attacks:
            raise ValueError("At least one attack is needed. Received: attacks=()")
        for name in self.attacks:
            if name not in ATTACKS:
                raise ValueError(
                    f"Unknown attack. Received: attack={name!r}. Expected one of {ATTACKS}."
                )
        if not self.threat_models:
            raise ValueError("At least one threat model is needed. Received: threat_models=()")
        for name in self.threat_models:
            if name not in tm_lib.THREAT_MODELS:
                raise ValueError(
                    f"Unknown threat model. Received: threat_model={name!r}. "
                    f"Expected one of {tm_lib.THREAT_MODELS}."
                )
        if not isinstance(self.preset, Preset):
            raise ValueError(f"`preset` must be a Preset. Received: preset={self.preset!r}")
        for name in ("eval_samples", "repeats", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1. Received: {name}={value!r}")
        if not self.sample_counts or min(self.sample_counts) < 1:
            raise ValueError(
                f"`sample_counts` must be ints >= 1. Received: sample_counts={self.sample_counts!r}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"`seed` must be an int >= 0. Received: seed={self.seed!r}")

    def threat_model_grid(self):
        return tm_lib.threat_model_grid(
            self.threat_models,
            multi_sample_paths=self.preset.multi_sample_paths,
            eot_samples=self.preset.eot_samples,
        )

    def to_json(self):
        return {
            "attacks": list(self.attacks),
            "threat_models": [t.to_json() for t in self.threat_model_grid()],
            "preset": self.preset.to_json(),
            "eval_samples": self.eval_samples,
            "repeats": self.repeats,
            "sample_counts": list(self.sample_counts),
            "batch_size": self.batch_size,
            "seed": self.seed,
        }


@dataclasses.dataclass(frozen=True)
class AttackSetting:
    """One row of the results table: an attack with one parameter value.

    Attributes:
        attack: attack name (`ATTACKS`).
        param: the row label, e.g. ``"eps=0.05"``, ``"c=0.1, kappa=1"``.
        kwargs: keyword arguments of the attack function.
        recipe: how it is run: "single", "restarts" (PGD under eot) or
            "ce+dlr" (apgd_rand).
        restarts: number of candidates for "restarts".
        value: the parameter as given (eps in preset units, c, ...), for plots.
    """

    attack: str
    param: str
    kwargs: dict
    recipe: str = "single"
    restarts: int = 1
    value: Optional[float] = None

    def to_json(self):
        out = {"attack": self.attack, "param": self.param, "kwargs": dict(self.kwargs),
               "recipe": self.recipe}
        if self.recipe == "restarts":
            out["restarts"] = self.restarts
        return out


def _fmt(value):
    return f"{value:g}"


def is_applicable(attack, threat_model, preset):
    """``(applicable, reason)`` of an attack under a threat model."""
    name = threat_model.name if not isinstance(threat_model, str) else threat_model
    if name == "apgd_rand" and attack != "apgd":
        return False, "apgd_rand is the APGD-CE + APGD-DLR recipe; it runs attack 'apgd' only"
    if name == "eot" and attack in MIN_NORM_ATTACKS and not preset.eot_min_norm:
        return False, "minimum-norm attacks under eot are optional (--eot_min_norm)"
    return True, ""


def attack_settings(attack, threat_model, preset):
    """The `AttackSetting`s of one attack under one threat model."""
    name = threat_model.name
    eot = name == "eot"
    out = []
    if attack == "fgsm":
        for eps in preset.fgsm_eps:
            out.append(AttackSetting("fgsm", f"eps={_fmt(eps)}",
                                     {"eps": preset.model_eps(eps)}, value=eps))
    elif attack == "pgd":
        for eps in preset.pgd_eps:
            meps = preset.model_eps(eps)
            if eot:
                steps = preset.eot_pgd_steps
                kwargs = {"eps": meps, "eps_iter": min(meps, 2.5 * meps / steps),
                          "nb_iter": steps, "rand_init": True}
                out.append(AttackSetting("pgd", f"eps={_fmt(eps)}", kwargs, recipe="restarts",
                                         restarts=preset.eot_pgd_restarts, value=eps))
            else:
                kwargs = {"eps": meps, "eps_iter": preset.pgd_step_ratio * meps,
                          "nb_iter": preset.pgd_steps, "rand_init": preset.pgd_rand_init}
                out.append(AttackSetting("pgd", f"eps={_fmt(eps)}", kwargs, value=eps))
    elif attack == "apgd":
        for eps in preset.pgd_eps:
            kwargs = {"eps": preset.model_eps(eps), "loss": "ce",
                      "nb_iter": preset.apgd_steps}
            if name == "apgd_rand":
                kwargs["n_restarts"] = 1
                out.append(AttackSetting("apgd", f"eps={_fmt(eps)}", kwargs,
                                         recipe="ce+dlr", value=eps))
            else:
                kwargs["n_restarts"] = preset.apgd_restarts
                out.append(AttackSetting("apgd", f"eps={_fmt(eps)}", kwargs, value=eps))
    elif attack == "deepfool":
        base = {"max_iter": preset.deepfool_max_iter,
                "candidates": preset.deepfool_candidates}
        out.append(AttackSetting("deepfool", f"overshoot={_fmt(preset.deepfool_overshoot)}",
                                 {**base, "overshoot": preset.deepfool_overshoot}))
        if eot:
            ov = preset.eot_deepfool_overshoot
            out.append(AttackSetting("deepfool", f"overshoot={_fmt(ov)}",
                                     {**base, "overshoot": ov}))
    elif attack in ("cw", "ead"):
        prefix = "cw" if attack == "cw" else "ead"
        for c in getattr(preset, f"{prefix}_c"):
            base = {"c": float(c), "lr": getattr(preset, f"{prefix}_lr"),
                    "binary_search_steps": getattr(preset, f"{prefix}_binary_search_steps")}
            if attack == "ead":
                base["beta"] = preset.ead_beta
                base["decision_rule"] = preset.ead_decision_rule
            confidence = getattr(preset, f"{prefix}_confidence")
            if eot:
                base["steps"] = preset.eot_min_norm_steps
                kappas = [confidence, preset.eot_kappa]
            else:
                base["steps"] = getattr(preset, f"{prefix}_steps")
                kappas = [confidence]
            for kappa in kappas:
                param = f"c={_fmt(c)}" + (f", kappa={_fmt(kappa)}" if kappa else "")
                out.append(AttackSetting(attack, param, {**base, "confidence": float(kappa)},
                                         value=float(c)))
    else:
        raise ValueError(f"Unknown attack. Received: attack={attack!r}. Expected one of {ATTACKS}.")
    return out


_ATTACK_FNS = {
    "fgsm": rls_attacks.fgsm,
    "pgd": rls_attacks.pgd,
    "apgd": rls_attacks.apgd,
    "deepfool": rls_attacks.deepfool,
    "cw": rls_attacks.cw_l2,
    "ead": rls_attacks.ead,
}
_SEEDED = ("pgd", "apgd")


class _MarginFn:
    """``(x, y) -> max_{i != y} D_i - D_y`` on the attacker's decision function."""

    def __init__(self, model_fn):
        self._model_fn = model_fn
        self._fn = None

    def _build(self, image_shape):
        model_fn = self._model_fn

        # One trace for every batch size (restarts attack shrinking subsets).
        @tf.function(input_signature=[
            tf.TensorSpec([None, *image_shape], tf.float32),
            tf.TensorSpec([None], tf.int64),
        ])
        def margin(x, y):
            d = rls_attacks.decision_logits(model_fn(x))
            one_hot = tf.one_hot(y, d.shape[-1]) > 0.5
            true = tf.reduce_sum(tf.where(one_hot, d, tf.zeros_like(d)), axis=-1)
            other = tf.reduce_max(tf.where(one_hot, tf.fill(tf.shape(d), -np.inf), d), axis=-1)
            return other - true

        return margin

    def __call__(self, x, y):
        x = tf.convert_to_tensor(x, tf.float32)
        if self._fn is None:
            self._fn = self._build(tuple(x.shape[1:]))
        return self._fn(x, tf.convert_to_tensor(y, tf.int64)).numpy()


class Defender:
    """The defender's R repeated draws of sampled models, evaluated in batches.

    Args:
        model: the `RLSModel`.
        eval_samples: N.
        sample_counts: N values for accuracy against N.
        repeats: R.
        batch_size: images per network call (times the number of samples).
        seed: base seed; repeat r's paths come from ``derive_seed(seed, r)``.
    """

    def __init__(self, model, eval_samples, sample_counts, repeats, batch_size, seed):
        self.model = model
        self.eval_samples = int(eval_samples)
        self.sample_counts = tuple(sorted(set(int(n) for n in sample_counts) | {self.eval_samples}))
        self.stochastic = model.is_stochastic
        self.repeats = int(repeats) if self.stochastic else 1
        self.batch_size = int(batch_size)
        self.num_draws = max(self.sample_counts) if self.stochastic else 1
        per_example = model.per_example_sampling or any(
            layer.per_example_sampling for layer in model.rls_layers
        )
        self.pinned = self.stochastic and not per_example
        num_draws = self.num_draws
        if self.pinned:
            self.paths = [model.sample_paths(num_draws, seed=derive_seed(seed, "defender", r))
                          for r in range(self.repeats)]

            @tf.function(reduce_retracing=True)
            def outputs(x, paths):
                return model.sample_outputs(x, num_draws, paths=paths)
        else:
            self.paths = None

            @tf.function(reduce_retracing=True)
            def outputs(x, paths):  # pylint: disable=unused-argument
                return model.sample_outputs(x, num_draws)

        self._outputs = outputs

    def describe(self):
        out = {"eval_samples": self.eval_samples, "repeats": self.repeats,
               "draws_per_repeat": self.num_draws, "stochastic": self.stochastic}
        if self.paths is not None:
            out["paths"] = [p.tolist() for p in self.paths]
        elif self.stochastic:
            out["paths"] = "fresh per-example draws"
        return out

    def evaluate(self, x, y):
        """Accuracy (mean/std over repeats), accuracy against N, interrater.

        Returns:
            dict with ``accuracy`` (`interrater.summarize` of the R
            accuracies of the N-sample defender), ``accuracy_vs_samples``
            ``{str(n): summary}``, ``interrater`` (summary, or None for a
            deterministic model or N < 2), ``correct`` (bool ``[R, B]``) and
            ``examples``: the per-example data all of these are computed
            from (`defender_summary`), ``{"correct": {str(n): bool [R, B]},
            "members_correct": int [R, B] or None}``; ``members_correct``
            counts how many of the N sampled models are right on each image.
        """
        x = np.asarray(x, np.float32)
        y = np.asarray(y, np.int64)
        correct_all = {n: [] for n in self.sample_counts}
        members_all = []
        keep_members = self.stochastic and self.eval_samples >= 2
        for r in range(self.repeats):
            paths = tf.constant(self.paths[r]) if self.paths is not None else tf.zeros([0, 0], tf.int32)
            correct = {n: [] for n in self.sample_counts}
            members = []
            for start in range(0, len(x), self.batch_size):
                xb, yb = x[start:start + self.batch_size], y[start:start + self.batch_size]
                probs = self._outputs(tf.constant(xb), paths).numpy()
                cumulative = np.cumsum(probs, axis=0)
                for n in self.sample_counts:
                    index = min(n, self.num_draws) - 1
                    correct[n].append(np.argmax(cumulative[index], axis=-1) == yb)
                members.append(np.sum(np.argmax(probs[: self.eval_samples], axis=-1) == yb[None],
                                      axis=0))
            for n in self.sample_counts:
                correct_all[n].append(np.concatenate(correct[n]) if correct[n]
                                      else np.zeros(0, bool))
            if keep_members:
                members_all.append(np.concatenate(members) if members else np.zeros(0, np.int64))
        examples = {
            "correct": {str(n): np.stack(v).astype(bool) for n, v in correct_all.items()},
            "members_correct": np.stack(members_all).astype(np.int64) if keep_members else None,
        }
        return {
            **defender_summary(examples, self.eval_samples),
            "correct": examples["correct"][str(self.eval_samples)],
            "examples": examples,
        }


def defender_summary(examples, eval_samples):
    """The defender's numbers from its per-example data (`Defender.evaluate`).

    Every number is a function of the per-example data of the whole example
    set, so evaluating shards of the examples and concatenating their data
    (`rls_tf.evaluation.shards`) gives exactly the numbers of one run.

    Args:
        examples: ``{"correct": {str(n): bool [R, B]}, "members_correct":
            int [R, B] or None}``.
        eval_samples: N.

    Returns:
        dict with ``accuracy``, ``accuracy_vs_samples`` and ``interrater``
        (None without ``members_correct`` or without examples).
    """
    accuracy = {}
    for n, correct in examples["correct"].items():
        correct = np.asarray(correct, bool)
        accuracy[str(n)] = [float(np.mean(row)) if row.size else float("nan") for row in correct]
    kappas = []
    members = examples.get("members_correct")
    if members is not None:
        for row in np.asarray(members, np.int64):
            if row.size:
                kappa = interrater.interrater_agreement_from_counts(row, eval_samples)
                kappas.append(None if np.isnan(kappa) else kappa)
    return {
        "accuracy": interrater.summarize(accuracy[str(eval_samples)]),
        "accuracy_vs_samples": {n: interrater.summarize(v) for n, v in accuracy.items()},
        "interrater": interrater.summarize(kappas) if kappas else None,
    }


def record_summary(examples, attack, eval_samples):
    """The numbers of one robust record from its per-example data.

    Args:
        examples: the defender's per-example data on the adversarial images
            (see `defender_summary`) plus ``attacker_correct`` and
            ``attacker_clean_correct`` (bool ``[B]``: the attacker's own model
            is right on the adversarial / clean image), ``linf`` (float
            ``[B]``) and, for the minimum-norm attacks, ``success`` (bool
            ``[B]``), ``l2`` and ``l1`` (float ``[B]``).
        attack: the attack name.
        eval_samples: N.

    Returns:
        The record's numbers (``accuracy`` ... ``num_examples``, and
        ``attacked_examples``, ``success_rate``, ``l2``, ``l1`` for the
        minimum-norm attacks).
    """
    defender = defender_summary(examples, eval_samples)
    attacker_correct = np.asarray(examples["attacker_correct"], bool)
    linf = np.asarray(examples["linf"], np.float64)
    out = {
        "accuracy": defender["accuracy"],
        "accuracy_vs_samples": defender["accuracy_vs_samples"],
        "interrater": defender["interrater"],
        "attacker_accuracy": float(np.mean(attacker_correct)),
        "attacker_clean_accuracy": float(np.mean(np.asarray(examples["attacker_clean_correct"],
                                                            bool))),
        "linf_max": float(linf.max()),
        "num_examples": int(len(attacker_correct)),
    }
    if attack in MIN_NORM_ATTACKS:
        # Success: among the images the attacked model got right, those the
        # attack changed into ones it gets wrong (per the attacker's own
        # decision function; under EOT an E-draw estimate).
        attacked = np.asarray(examples["attacker_clean_correct"], bool)
        success = np.asarray(examples["success"], bool)
        out["attacked_examples"] = int(attacked.sum())
        out["success_rate"] = float(success.sum() / attacked.sum()) if attacked.any() else None
        out["l2"] = _norm_summary(np.asarray(examples["l2"], np.float64)[success])
        out["l1"] = _norm_summary(np.asarray(examples["l1"], np.float64)[success])
    return out


def _batches(num, batch_size):
    return [(s, min(s + batch_size, num)) for s in range(0, num, batch_size)]


class _Crafter:
    """Runs one `AttackSetting` with an `Attacker`'s ``model_fn`` on a batch."""

    def __init__(self, attacker):
        self.attacker = attacker
        self.margin = _MarginFn(attacker.model_fn)

    def _call(self, setting, x, y, seed, **overrides):
        kwargs = {**setting.kwargs, **overrides}
        if setting.attack in _SEEDED:
            kwargs["seed"] = seed
        return _ATTACK_FNS[setting.attack](self.attacker.model_fn, x, y, **kwargs).numpy()

    def _improve(self, x_adv, margin, x, y, make_candidate):
        """Crafts a candidate for the examples not fooled yet; keeps the worse."""
        todo = np.flatnonzero(margin <= 0)
        if todo.size == 0:
            return x_adv, margin
        candidate = make_candidate(x[todo], y[todo])
        cand_margin = self.margin(candidate, y[todo])
        better = cand_margin > margin[todo]
        x_adv, margin = x_adv.copy(), margin.copy()
        x_adv[todo[better]] = candidate[better]
        margin[todo[better]] = cand_margin[better]
        return x_adv, margin

    def craft(self, setting, x, y, seed, ce_stage=None):
        """Returns ``(x_adv, margin, ce_stage)`` for one batch."""
        if setting.recipe == "single":
            x_adv = self._call(setting, x, y, seed)
            return x_adv, None, None
        if setting.recipe == "restarts":
            x_adv = self._call(setting, x, y, derive_seed(seed, 0))
            margin = self.margin(x_adv, y)
            for r in range(1, setting.restarts):
                x_adv, margin = self._improve(
                    x_adv, margin, x, y,
                    lambda xs, ys, r=r: self._call(setting, xs, ys, derive_seed(seed, r)),
                )
            return x_adv, margin, None
        if setting.recipe == "ce+dlr":
            if ce_stage is None:
                ce_stage = self._call(setting, x, y, seed, loss="ce")
            margin = self.margin(ce_stage, y)
            x_adv, margin = self._improve(
                ce_stage, margin, x, y,
                lambda xs, ys: self._call(setting, xs, ys, derive_seed(seed, "dlr"), loss="dlr"),
            )
            return x_adv, margin, ce_stage
        raise ValueError(f"Unknown recipe {setting.recipe!r}")


def _norm_summary(values):
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return {"mean": None, "median": None}
    return {"mean": float(values.mean()), "median": float(np.median(values))}


def _check_data(x, y):
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 4 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(
            f"`x` must be float images [B, H, W, C] in [-1, 1]. Received: x.shape={x.shape}, "
            f"dtype={x.dtype}"
        )
    if x.size and (x.min() < -1 - 1e-6 or x.max() > 1 + 1e-6):
        raise ValueError(
            f"`x` must be in [-1, 1] (rls_tf.data.to_model_range). Received: min={x.min()}, "
            f"max={x.max()}"
        )
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"`y` must be int labels [B] = [{len(x)}]. Received: y.shape={y.shape}, dtype={y.dtype}"
        )
    if len(x) == 0:
        raise ValueError("At least one example is needed. Received: 0 examples")
    return np.clip(x.astype(np.float32), -1.0, 1.0), y.astype(np.int64)


def environment_info():
    """Library versions and machine facts recorded with every result."""
    from importlib import metadata  # pylint: disable=import-outside-toplevel

    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in ("rls-tf", "tensorflow", "tensorflow-cpu", "keras", "numpy",
                    "cleverhans", "foolbox", "eagerpy", "scipy", "matplotlib", "absl-py"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    versions["tf.__version__"] = tf.__version__
    versions["keras.__version__"] = keras.__version__
    try:
        import os  # pylint: disable=import-outside-toplevel

        versions["cpu_count"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    versions["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    return versions


def _model_info(model):
    return {
        "num_submodels": int(model.num_submodels),
        "stochastic": bool(model.is_stochastic),
        "rls_layers": [layer.name for layer in model.rls_layers],
    }


def run_evaluation(models, x, y, config, log=print, example_offset=0, keep_examples=False):
    """Evaluates `models` under every attack x parameter x threat model.

    **Seeds.** Everything random is a function of ``config.seed`` and of
    what it is for, never of the order things run in: the defender's paths
    of repeat r (per model), the attacker's pinned paths (per model, threat
    model, attack and parameter) and the random starts of batch b (its
    *global* index, ``example_offset // batch_size + b``). Evaluating a
    batch-aligned slice of the examples with its `example_offset` (a shard,
    `rls_tf.evaluation.shards`) thus crafts exactly the adversarial images of
    those examples in one run over all of them. EOT draws are seeded the same
    way (`threat_models.EotDraws`, restarted at every batch). Only the
    defender's draws of a model built with per-example sampling are fresh,
    unseeded TF draws.

    Args:
        models: dict ``{key: RLSModel}`` in column order, e.g.
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

    Returns:
        The results dict (see `rls_tf.evaluation.report` for its layout):
        ``config``, ``environment``, ``models``, ``clean``, ``interrater``,
        ``robust`` (one record per model x threat model x attack setting,
        each with its ``threat_model`` label), ``skipped`` and ``timings``.
    """
    if not isinstance(config, EvalConfig):
        raise ValueError(f"`config` must be an EvalConfig. Received: config={config!r}")
    if not models:
        raise ValueError("At least one model is needed. Received: models={}")
    if (isinstance(example_offset, bool) or not isinstance(example_offset, (int, np.integer))
            or example_offset < 0 or example_offset % config.batch_size):
        raise ValueError(
            f"`example_offset` must be an int >= 0 and a multiple of batch_size="
            f"{config.batch_size}. Received: example_offset={example_offset!r}"
        )
    batch_offset = int(example_offset) // config.batch_size
    x, y = _check_data(x, y)
    log = log or (lambda *_: None)
    keras.utils.set_random_seed(config.seed)
    started = time.time()
    grid = config.threat_model_grid()
    results = {
        "config": {**config.to_json(), "num_examples": int(len(x))},
        "environment": environment_info(),
        "models": {},
        "clean": {},
        "interrater": {},
        "robust": [],
        "skipped": [],
        "timings": {},
    }
    if keep_examples:
        results["examples"] = {"clean": {}}
    defenders = {}
    for key, model in models.items():
        t0 = time.time()
        defender = Defender(model, config.eval_samples, config.sample_counts, config.repeats,
                            config.batch_size, derive_seed(config.seed, key))
        defenders[key] = defender
        clean = defender.evaluate(x, y)
        results["models"][key] = {**_model_info(model), "defender": defender.describe()}
        results["clean"][key] = {k: v for k, v in clean.items()
                                 if k not in ("correct", "interrater", "examples")}
        if keep_examples:
            results["examples"]["clean"][key] = clean["examples"]
        results["interrater"][key] = clean["interrater"]
        results["timings"][f"clean/{key}"] = time.time() - t0
        acc = clean["accuracy"]
        log(f"clean accuracy [{key}]: {acc['mean']:.4f} +- {acc['std']:.4f} "
            f"(N={config.eval_samples}, R={defender.repeats})")

    batches = _batches(len(x), config.batch_size)
    ce_cache = {}
    for threat_model in grid:
        crafters = {}
        for attack in config.attacks:
            ok, reason = is_applicable(attack, threat_model, config.preset)
            if not ok:
                results["skipped"].append(
                    {"attack": attack, "threat_model": threat_model.label, "reason": reason}
                )
                continue
            for setting in attack_settings(attack, threat_model, config.preset):
                for key, model in models.items():
                    if key not in crafters:
                        # One attacker (and traced functions) per model and
                        # threat model; pinned paths are redrawn per run.
                        crafters[key] = _Crafter(tm_lib.make_attacker(
                            model, threat_model, seed=derive_seed(config.seed, "attacker", key)
                        ))
                    crafter = crafters[key]
                    attacker = crafter.attacker
                    run_id = (threat_model.label, attack, setting.param, key)
                    attacker.repin(derive_seed(config.seed, "attacker", *run_id))
                    record = _run_one(
                        crafter, setting, defenders[key], x, y, batches, config, run_id,
                        ce_cache, log, batch_offset,
                    )
                    examples = record.pop("examples")
                    record.update({
                        "model": key,
                        "threat_model": threat_model.label,
                        "threat_model_name": threat_model.name,
                        "attack": attack,
                        "param": setting.param,
                        "value": setting.value,
                        "settings": setting.to_json(),
                        "attacker": attacker.describe(),
                    })
                    if setting.value is not None and attack in ("fgsm", "pgd", "apgd"):
                        record["eps"] = setting.value
                        record["eps_model_units"] = config.preset.model_eps(setting.value)
                        record["eps_unit_range"] = config.preset.model_eps(setting.value) / 2.0
                    if keep_examples:
                        record["examples"] = examples
                    results["robust"].append(record)
                    part = f"{threat_model.label}/{attack}/{key}"
                    results["timings"][part] = results["timings"].get(part, 0.0) + (
                        record["seconds"]["attack"] + record["seconds"]["defender"]
                    )
    results["timings"]["total"] = time.time() - started
    return results


def _run_one(crafter, setting, defender, x, y, batches, config, run_id, ce_cache, log,
             batch_offset=0):
    attacker = crafter.attacker
    label = f"[{run_id[0]}] {ATTACK_TITLES[run_id[1]]} {run_id[2]} on {run_id[3]}"
    if config.verbose:
        log(label)
    progbar = keras.utils.Progbar(len(batches), verbose=1 if config.verbose else 0,
                                  unit_name="batch")
    t0 = time.time()
    x_adv = np.empty_like(x)
    margins = np.empty(len(x), np.float32)
    clean_margins = np.empty(len(x), np.float32)
    reused = False
    eot_samples = attacker.threat_model.eot_samples if attacker.threat_model.uses_eot else 1
    for local_b, (start, stop) in enumerate(batches):
        b = batch_offset + local_b  # the global batch index: it seeds the batch
        xb, yb = x[start:stop], y[start:stop]
        seed = derive_seed(config.seed, *run_id, b)
        ce_key = None
        ce_stage = None
        if setting.attack == "apgd" and attacker.threat_model.uses_eot:
            # APGD-CE under eot is the first stage of apgd_rand: share it.
            # Same E, steps, eps and seed in both: the CE stage is one run.
            ce_key = (run_id[3], setting.param, eot_samples, setting.kwargs["nb_iter"], b)
            if setting.kwargs["n_restarts"] == 1:
                ce_stage = ce_cache.get(ce_key)
                reused = reused or ce_stage is not None
            seed = derive_seed(config.seed, "apgd-eot", *run_id[2:], b)
        # EOT draws restart from the batch's seed: a shard repeats them.
        attacker.reseed(derive_seed(seed, "eot-draws"))
        if setting.recipe == "single" and ce_stage is not None:
            adv, margin, ce_out = ce_stage, None, ce_stage
        else:
            adv, margin, ce_out = crafter.craft(setting, xb, yb, seed, ce_stage=ce_stage)
        if ce_key is not None and setting.kwargs["n_restarts"] == 1:
            ce_cache.setdefault(ce_key, adv if setting.recipe == "single" else ce_out)
        x_adv[start:stop] = adv
        margins[start:stop] = crafter.margin(adv, yb) if margin is None else margin
        clean_margins[start:stop] = crafter.margin(xb, yb)
        progbar.update(local_b + 1)
    attack_seconds = time.time() - t0

    t0 = time.time()
    evaluation = defender.evaluate(x_adv, y)
    defender_seconds = time.time() - t0

    diff = (x_adv.astype(np.float64) - x.astype(np.float64)).reshape(len(x), -1)
    changed = np.any(diff != 0, axis=1)
    linf = np.max(np.abs(diff), axis=1) if diff.shape[1] else np.zeros(len(x))
    examples = {
        **evaluation["examples"],
        "attacker_correct": margins <= 0,
        "attacker_clean_correct": clean_margins <= 0,
        "linf": linf,
    }
    if setting.attack in MIN_NORM_ATTACKS:
        examples["success"] = (clean_margins <= 0) & changed & (margins > 0)
        examples["l2"] = np.sqrt(np.sum(diff ** 2, axis=1))
        examples["l1"] = np.sum(np.abs(diff), axis=1)
    summary = record_summary(examples, setting.attack, defender.eval_samples)
    record = {key: value for key, value in summary.items()
              if key not in ("attacked_examples", "success_rate", "l2", "l1")}
    record["seconds"] = {"attack": attack_seconds, "defender": defender_seconds}
    for key in ("attacked_examples", "success_rate", "l2", "l1"):
        if key in summary:
            record[key] = summary[key]
    if reused:
        record["ce_stage_reused"] = True
    record["examples"] = examples
    acc = evaluation["accuracy"]
    if config.verbose:
        log(f"  robust accuracy {acc['mean']:.4f} +- {acc['std']:.4f}; attacker's model "
            f"{record['attacker_accuracy']:.4f}; {attack_seconds:.1f}s attack, "
            f"{defender_seconds:.1f}s defender")
    return record
