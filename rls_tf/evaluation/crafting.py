"""Crafting: one attack setting run with an attacker's ``model_fn`` on a batch.

`Crafter` runs an `AttackSetting` by its recipe (one call; the best of
several random restarts; the attack's `AttackSpec.loss_stages` in turn, e.g.
APGD-CE then APGD-DLR on what CE did not fool) and judges candidates by the
margin of the attacker's own decision function (`MarginFn`), never by the
defender's randomness. It keeps a memo of first stages, so that the CE stage
of ``apgd_rand`` reuses the ``eot`` threat model's APGD-CE run (same E,
steps, eps and seed) instead of recomputing it. Which attacks stage is a
property of their registry entry, not of their name.
"""

import numpy as np
import tensorflow as tf

from rls_tf import attacks as rls_attacks
from rls_tf.attacks.registry import REGISTRY
from rls_tf.evaluation.config import derive_seed

__all__ = ["Crafter", "MarginFn", "batch_seed", "ce_memo_key"]


class MarginFn:
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


class Crafter:
    """Runs one `AttackSetting` with an `Attacker`'s ``model_fn`` on a batch."""

    def __init__(self, attacker):
        self.attacker = attacker
        self.margin = MarginFn(attacker.model_fn)
        # Per-example queries of the last call of a score-based attack.
        self.last_queries = None

    def _call(self, setting, x, y, seed, **overrides):
        kwargs = {**setting.kwargs, **overrides}
        spec = REGISTRY[setting.attack]
        if spec.seeded:
            kwargs["seed"] = seed
        for name in spec.attacker_fns:
            fn = getattr(self.attacker, name, None)
            if fn is not None:
                kwargs[name] = fn
        if spec.reports_queries:
            x_adv, info = spec.function(self.attacker.model_fn, x, y, return_info=True, **kwargs)
            self.last_queries = np.asarray(info["queries"], np.float64)
            return np.asarray(x_adv)
        return spec.function(self.attacker.model_fn, x, y, **kwargs).numpy()

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
        spec = REGISTRY[setting.attack]
        if spec.loss_stages and setting.recipe == spec.staged_recipe:
            first, *later = spec.loss_stages
            if ce_stage is None:
                ce_stage = self._call(setting, x, y, seed, loss=first)
            x_adv, margin = ce_stage, self.margin(ce_stage, y)
            for loss in later:
                x_adv, margin = self._improve(
                    x_adv, margin, x, y,
                    lambda xs, ys, loss=loss: self._call(setting, xs, ys,
                                                         derive_seed(seed, loss), loss=loss),
                )
            return x_adv, margin, ce_stage
        raise ValueError(f"Unknown recipe. Received: recipe={setting.recipe!r}")

    def craft_batch(self, setting, x, y, seed, memo=None, memo_key=None):
        """Crafts one batch, reusing (and filling) an APGD-CE memo entry.

        Returns:
            ``(x_adv, margin or None, reused)``.
        """
        ce_stage = memo.get(memo_key) if memo is not None and memo_key is not None else None
        if setting.recipe == "single" and ce_stage is not None:
            return ce_stage, None, True
        x_adv, margin, ce_out = self.craft(setting, x, y, seed, ce_stage=ce_stage)
        if memo is not None and memo_key is not None:
            memo.setdefault(memo_key, x_adv if setting.recipe == "single" else ce_out)
        return x_adv, margin, ce_stage is not None


def ce_memo_key(setting, threat_model, model_key, batch):
    """The first-stage memo key of a batch, or None when nothing can be shared.

    An attack with loss stages (APGD) under an EOT threat model, with one
    own restart: its single run (``eot``) and the first stage of its staged
    run (``apgd_rand``) have the same E, steps, eps and seed: one run serves
    both.
    """
    spec = REGISTRY[setting.attack]
    if (not spec.loss_stages or not threat_model.uses_eot
            or setting.kwargs.get(spec.restarts_kwarg) != 1):
        return None
    return (model_key, setting.param, threat_model.eot_samples, setting.kwargs["nb_iter"], batch)


def batch_seed(base_seed, run_id, batch, setting, threat_model):
    """The seed of one batch of one run (its global index seeds it).

    An attack with loss stages (APGD) under the EOT threat models is seeded
    without the threat model's label, so that the first stages of ``eot``
    and ``apgd_rand`` coincide.
    """
    if REGISTRY[setting.attack].loss_stages and threat_model.uses_eot:
        return derive_seed(base_seed, f"{setting.attack}-eot", *run_id[2:], batch)
    return derive_seed(base_seed, *run_id, batch)
