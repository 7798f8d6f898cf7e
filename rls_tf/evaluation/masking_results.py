"""What the gradient-masking checks read from an evaluation's results dict.

The statuses, the registry views (which attacks and threat models are white-box,
score-based, challengers), the numbers (`tolerance`, a summary's mean and std) and
the access to the results (a model's eps-bounded robust records, its sweeps, the
undefended reference it is compared with: `resolve_reference`,
`pinned_references`). The checks themselves are in
`rls_tf.evaluation.masking_rules`; `rls_tf.evaluation.masking` is the public
entry point and re-exports the public names here.

Imports nothing from TensorFlow or Keras.
"""

import math
import re

from rls_tf.attacks.registry import REGISTRY as _ATTACKS
from rls_tf.attacks.registry import attack_titles
from rls_tf.evaluation.formatting import rate
from rls_tf.evaluation.threat_models import THREAT_MODEL_REGISTRY

__all__ = ["BLACK_BOX_ATTACKS", "FAIL", "NA", "PASS", "STATUSES", "WHITE_BOX_ATTACKS",
           "WHITE_BOX_THREAT_MODELS", "pinned_references", "resolve_reference", "tolerance"]

PASS, FAIL, NA = "pass", "fail", "n/a"
STATUSES = (PASS, FAIL, NA)

# Views of the registries (built-in entries). A white-box adaptive record:
# a gradient loss attack through E fresh draws per step.
WHITE_BOX_THREAT_MODELS = tuple(n for n, s in THREAT_MODEL_REGISTRY.items() if s.uses_eot)
WHITE_BOX_ATTACKS = tuple(n for n, s in _ATTACKS.items()
                          if s.access == "gradient" and s.kind == "loss")
# Score-based attacks (run under "eot": E fresh draws per query).
BLACK_BOX_ATTACKS = tuple(n for n, s in _ATTACKS.items() if s.access == "scores")


def _threat_model_spec(record):
    """The record's `ThreatModelSpec`, or None (a name no longer registered)."""
    return THREAT_MODEL_REGISTRY.get(record.get("threat_model_name"))


def _attack_spec(record):
    """The record's `AttackSpec`, or None (a name no longer registered)."""
    return _ATTACKS.get(record.get("attack"))


# ---------------------------------------------------------------------------
# Numbers.


def _mean(summary):
    """The mean of an accuracy summary (or a plain number); None if missing/NaN."""
    if summary is None:
        return None
    value = summary.get("mean") if isinstance(summary, dict) else summary
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _std(summary):
    """The std of an accuracy summary; 0 for a plain number or a missing std."""
    if not isinstance(summary, dict):
        return 0.0
    value = summary.get("std")
    if value is None:
        return 0.0
    value = float(value)
    return value if math.isfinite(value) else 0.0


def tolerance(a, b, n):
    """The slack of every comparison of two accuracies: ``std_a + std_b + 1/n``.

    Each accuracy is a mean over R repeats of the defender's random draw, so two
    numbers measured on differently random defenders differ by about their spreads
    without either attack being stronger: both stds are allowed (summed, not added
    in quadrature, to stay on the side of no false alarm). ``1/n`` is one example of
    the n evaluated: accuracies move in steps of 1/n, and two attacks on the same
    images can differ by a single image from floating-point or tie effects; for
    deterministic models (std 0) it is the whole slack.

    Args:
        a, b: accuracy summaries (dicts with ``std``; a missing std counts 0) or
            plain numbers (std 0, e.g. an attacker accuracy of one pinned model).
        n: the number of examples (callers pass the smaller of the two records').
    """
    n = int(n)
    if n <= 0:
        raise ValueError(f"tolerance needs n >= 1 examples, got {n}")
    return _std(a) + _std(b) + 1.0 / n


_pct = rate


def _eps_text(values):
    return ", ".join(f"{v:g}" for v in values)


def _key(value):
    """A float made into a dict key (eps/steps/E printed from different places)."""
    return None if value is None else round(float(value), 10)


def _n(*records):
    counts = [int(r["num_examples"]) for r in records if r.get("num_examples")]
    if not counts:
        raise ValueError("a record without num_examples")
    return min(counts)


def _attack_title(attack):
    return attack_titles().get(attack, attack)


def _describe(record):
    return f"{_attack_title(record['attack'])} ({record['threat_model']})"


# ---------------------------------------------------------------------------
# Results access.


def resolve_reference(results, reference=None):
    """The undefended model's key: `reference`, else "plain", else "baseline", else None.

    Raises:
        ValueError: `reference` is given but is not a model of the results.
    """
    models = _models(results)
    if reference is not None:
        if reference not in models:
            raise ValueError(f"reference model {reference!r} is not in the results "
                             f"(models: {sorted(models)})")
        return reference
    for key in ("plain", "baseline"):
        if key in models:
            return key
    return None


def _recipe(entry):
    """A model's adversarial-training recipe, ``(method, eps)``, or None (clean-trained)."""
    config = (entry or {}).get("train_config") or {}
    recipe = config.get("adversarial_training")
    if not recipe:
        return None
    return (recipe.get("method"), recipe.get("eps"))


def _is_undefended(entry):
    # plain is RLS with one copy (train.py records defense "rls", num_submodels 1).
    config = entry.get("train_config") or {}
    return (not entry.get("stochastic", False) and config.get("defense") in ("plain", "rls")
            and entry.get("num_submodels", config.get("num_submodels")) == 1)


def pinned_references(results, reference=None):
    """Per model, the undefended model its pinned draw is compared with.

    An explicit `reference` serves every model. Otherwise each model gets the
    undefended (plain, deterministic) model trained with the same recipe: a
    clean-trained model the default reference (`resolve_reference`), an
    adversarially trained one the plain model adversarially trained with the
    same method and eps, or None when the results hold none (a clean plain
    network is no yardstick for an adversarially trained one: the attack that
    brings the clean one to 0% says nothing about the other's pinned draw).

    Returns:
        ``{model: reference key or None}``.
    """
    default = resolve_reference(results, reference)
    entries = results.get("models") or {}
    if reference is not None or not entries:
        return {model: default for model in _models(results)}
    out = {}
    for model in _models(results):
        recipe = _recipe(entries.get(model))
        if (default is not None and _recipe(entries.get(default)) == recipe) or \
                "train_config" not in (entries.get(model) or {}):
            out[model] = default  # results without training records: the default
            continue
        matches = [key for key, entry in entries.items()
                   if "train_config" in entry and _is_undefended(entry)
                   and _recipe(entry) == recipe]
        out[model] = matches[0] if matches else None
    return out


def _models(results):
    """``{key: stochastic}`` in results order (models of the records if no "models")."""
    models = {key: bool(entry.get("stochastic", False))
              for key, entry in (results.get("models") or {}).items()}
    if not models:
        for record in list(results.get("robust") or []) + list(results.get("convergence") or []):
            models.setdefault(record["model"], False)
    return models


def _robust(results, model):
    """The model's eps-bounded robust records with a defined accuracy."""
    return [r for r in results.get("robust") or []
            if r.get("model") == model and r.get("value") is not None
            and _mean(r.get("accuracy")) is not None]


def _is_white_box(record):
    threat_model, attack = _threat_model_spec(record), _attack_spec(record)
    return (threat_model is not None and threat_model.uses_eot and attack is not None
            and attack.access == "gradient" and attack.kind == "loss")


def _is_challenger(record):
    """A transfer, score-based black-box or ARC record."""
    threat_model, attack = _threat_model_spec(record), _attack_spec(record)
    return ((threat_model is not None and threat_model.challenger)
            or (attack is not None and attack.access != "gradient"))


def _white_box_best(records):
    """``{eps: record}``: the white-box record with the lowest accuracy at each eps."""
    best = {}
    for record in records:
        if _is_white_box(record):
            eps = _key(record["value"])
            if eps not in best or _mean(record["accuracy"]) < _mean(best[eps]["accuracy"]):
                best[eps] = record
    return best


def _sweep(results, model, sweep):
    return [c for c in results.get("convergence") or []
            if c.get("model") == model and c.get("sweep") == sweep
            and c.get("value") is not None and _mean(c.get("accuracy")) is not None]


def _family(label):
    """The threat model family of a label: "eot[E=10]" -> "eot"."""
    return re.sub(r"\[.*\]$", "", str(label))
