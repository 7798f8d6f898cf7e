"""The defender: R repeated draws of the classifier's own inference, in batches.

Repeat r of the defender is a fixed set of ``max(N, max(sample_counts))``
draws (drawn with a seed derived from the evaluation's seed, the model and
r), used on every batch and for every attack, so all numbers of one repeat
are measured against the same N-draw ensemble and attacks are compared on
paired draws. A classifier whose inference draws per example gets fresh
per-example draws instead; a deterministic one is evaluated once. Speaks
only `rls_tf.interface.StochasticClassifier`.
"""

import numpy as np
import tensorflow as tf

from rls_tf.evaluation.config import derive_seed
from rls_tf.evaluation.records import defender_summary

__all__ = ["Defender"]


class Defender:
    """The defender's R repeated draws of sampled models, evaluated in batches.

    Args:
        model: a `StochasticClassifier`.
        eval_samples: N.
        sample_counts: N values for accuracy against N.
        repeats: R.
        batch_size: images per network call (times the number of samples).
        seed: base seed; repeat r's paths come from ``derive_seed(seed, r)``.
    """

    def __init__(self, model, eval_samples, sample_counts, repeats, batch_size, seed):
        self.model = model
        self.stochastic = model.is_stochastic
        self.batch_size = int(batch_size)
        fixed = model.defender_draws()
        if fixed is not None:
            # The defender is exactly these draws (e.g. every member of an
            # ensemble): evaluated once; accuracy against N is that of the
            # first n of them (Table 6's ensemble size).
            fixed = np.asarray(fixed)
            self.eval_samples = len(fixed)
            self.sample_counts = tuple(sorted(
                {int(n) for n in sample_counts if int(n) <= len(fixed)} | {len(fixed)}))
        else:
            self.eval_samples = int(eval_samples)
            self.sample_counts = tuple(sorted(set(int(n) for n in sample_counts)
                                              | {self.eval_samples}))
        self.repeats = int(repeats) if self.stochastic else 1
        self.num_draws = (max(self.sample_counts) if self.stochastic or fixed is not None
                          else 1)
        self.fixed = fixed is not None
        # Seeded draws per repeat, where draws fix the randomness; a model
        # whose randomness cannot be pinned draws fresh at every call.
        self.pinned = ((self.stochastic and model.pinnable and not model.draws_per_example)
                       or self.fixed)
        num_draws = self.num_draws
        if self.fixed:
            self.paths = [fixed]
        elif self.pinned:
            self.paths = [np.asarray(model.draw(num_draws, seed=derive_seed(seed, "defender", r)))
                          for r in range(self.repeats)]
        else:
            self.paths = None
        if self.paths is not None:

            @tf.function(reduce_retracing=True)
            def outputs(x, paths):
                return model.inference_outputs(x, paths)
        else:

            @tf.function(reduce_retracing=True)
            def outputs(x, paths):  # pylint: disable=unused-argument
                if not self.stochastic:
                    return model.defend(x)[None]
                return model.sample(x, num_draws)

        self._outputs = outputs

    def describe(self):
        out = {"eval_samples": self.eval_samples, "repeats": self.repeats,
               "draws_per_repeat": self.num_draws, "stochastic": self.stochastic}
        if self.fixed:
            out["fixed_draws"] = True
        if self.paths is not None:
            out["paths"] = [p.tolist() for p in self.paths]
        elif self.stochastic:
            out["paths"] = ("fresh per-example draws" if self.model.pinnable else
                            "fresh at every call (the model's own randomness)")
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
        keep_members = (self.stochastic or self.fixed) and self.eval_samples >= 2
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
