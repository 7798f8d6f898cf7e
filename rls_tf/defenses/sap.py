"""SAP: Stochastic Activation Pruning (Dhillon et al., ICLR 2018).

"Stochastic Activation Pruning for Robust Adversarial Defense"; the row
"Stochastic Dropout" of Lee et al.'s comparison cites it. Applied after
every ReLU of a trained plain network, without fine-tuning; the prediction
is the mean of n stochastic passes (their evaluation: 100, ``eval_samples``).

The operator, as in the official MXNet implementation
(``Guneet-Dhillon/mxnet`` @ 4a512b487c9c5ccd040bc43f3b2b04cea5e5fc9c,
``src/operator/stochastic_activation_pruning-inl.h`` l.50-130, 160-172; the
first version 04d8dfca50292ff2b260f7f4752f181740b9c41c has the same
algorithm), per example, over ALL n activations of the layer (C*H*W of a
conv map, ``FlatTo2D``):

1. ``p_j = |h_j| / sum_i |h_i|`` (the caller's ``prob`` input there);
2. draw ``k = int(frac * n)`` indices WITH replacement from p
   (``std::discrete_distribution``; here inverse-CDF sampling of sorted
   uniforms from a stateless key, `draw_counts`);
3. keep the drawn activations, scaled by ``1 / (1 - (1 - p_j)^k)`` (the
   inverse of the probability that j is drawn at least once, so that
   ``E[output] = h``), zero the others;
4. backward: the gradient passes through the same mask, none flows into p.

Differences: ``k`` is at least 1 (``int(frac * n)`` would be 0 for a tiny
layer and a small frac, pruning everything); a row whose activations are all
zero stays zero (p is 0/0 there: the draw uses a uniform p and the output is
zero anyway); p, the CDF and the keep probabilities are float64 (the CDF of
a conv map sums up to C*H*W terms). The official operator seeds from the
clock; here every pass is a stateless key (`rls_tf.defenses.seeded`), so
pinned draws repeat exactly. Athalye et al.'s re-implementation
(``anishathalye/obfuscated-gradients`` @ 9ef8b37a, ``sap/sap_model.py``
l.19-35) approximates this with independent Bernoulli keeps, ``1 -
exp(-N p)`` and N = 2n, wrapped around every conv output; this module keeps
the official operator.
"""

import math

import keras
import tensorflow as tf

from rls_tf.defenses.seeded import SeededNoiseLayer
from rls_tf.defenses.seeded import SeededNoiseModel
from rls_tf.validation import check_float

__all__ = ["SAP", "SAPModel", "check_frac", "draw_counts", "keep_probability",
           "num_draws_for"]


def check_frac(value, name="frac"):
    """SAP's fraction: a float in (0, 1]."""
    return check_float(name, value, minimum=0.0, maximum=1.0, min_open=True)


def num_draws_for(frac, num_activations):
    """k = max(1, int(frac * n)): draws with replacement per example."""
    return max(1, int(frac * num_activations))


def draw_counts(p, k, seed):
    """``[rows, n]`` int32 counts of k i.i.d. draws from each row of `p`.

    Row r's counts are those of k indices drawn with replacement from
    ``p[r]`` (a multinomial); an index of probability 0 is never drawn.
    Inverse-CDF sampling with the k uniforms generated already sorted, as
    the normalised partial sums of k + 1 standard exponentials (the joint
    law of the order statistics of k uniforms; Devroye 1986, V.2.1): then
    the count of index j is the number of uniforms in ``[cdf_{j-1},
    cdf_j)``, one `searchsorted` of the CDF into the sorted uniforms. Only
    the multiset of the draws matters to SAP, and it has exactly the law of
    k independent draws; this is about 3x faster on CPU than searching k
    unsorted uniforms in the CDF (monotone queries stay in cache; see
    ``benchmarks/README.md``). ``stateless_categorical(log p, k)`` is not
    used because its GPU kernel materialises a ``[rows, k, n]`` score
    tensor (k = n = C*H*W here: terabytes for a conv map).

    Args:
        p: float64 ``[rows, n]`` probabilities (rows summing to 1).
        k: static int, draws per row.
        seed: ``[2]`` stateless key.
    """
    cdf = tf.cumsum(p, axis=1)
    rows = tf.shape(p)[0]
    # -log of a uniform on [tiny, 1): a standard exponential, never 0 or inf.
    tiny = tf.constant(2.0 ** -1000, p.dtype)
    spacings = -tf.math.log(tf.random.stateless_uniform(tf.stack([rows, k + 1]), seed,
                                                         minval=tiny, dtype=p.dtype))
    sums = tf.cumsum(spacings, axis=1)
    uniforms = sums[:, :k] / sums[:, k:]
    # The right edge of the last index is +inf: a uniform that rounds to 1
    # (or a CDF that sums to just under it) still lands in the last index.
    edges = tf.concat([(cdf / cdf[:, -1:])[:, :-1],
                       tf.fill(tf.stack([rows, 1]), tf.constant(2.0, p.dtype))], axis=1)
    below = tf.searchsorted(uniforms, edges, side="left", out_type=tf.int32)
    return below - tf.pad(below[:, :-1], [[0, 0], [1, 0]])


def keep_probability(p, k):
    """``1 - (1 - p)^k`` (computed as ``-expm1(k * log1p(-p))``, exact for tiny p)."""
    return -tf.math.expm1(tf.cast(k, p.dtype) * tf.math.log1p(-p))


@keras.saving.register_keras_serializable(package="rls_tf")
class SAP(SeededNoiseLayer):
    """Stochastic activation pruning of each example's activations.

    Args:
        frac: draws per example as a fraction of its activations, in (0, 1]
            (the official operator's ``frac``, default 1.0).
        **kwargs: base layer arguments (e.g. `name`).
    """

    def __init__(self, frac=1.0, **kwargs):
        super().__init__(**kwargs)
        self.frac = check_frac(frac)

    def mask(self, inputs, seed):
        """The pruning mask of `inputs` ``[n, ...]`` (no gradient), same shape."""
        inputs = tf.stop_gradient(inputs)
        shape = tf.shape(inputs)
        size = math.prod(inputs.shape[1:])
        if any(d is None for d in inputs.shape[1:]):
            raise ValueError(f"SAP needs static activation shapes. Received: "
                             f"shape={inputs.shape}")
        k = num_draws_for(self.frac, size)
        flat = tf.reshape(tf.abs(tf.cast(inputs, tf.float64)), [-1, size])
        total = tf.reduce_sum(flat, axis=1, keepdims=True)
        nonzero = total > 0.0
        # An all-zero row: a uniform p keeps the draw valid; its output is 0.
        p = tf.where(nonzero, flat / tf.where(nonzero, total, 1.0), 1.0 / size)
        counts = draw_counts(p, k, seed)
        keep = keep_probability(p, k)
        # Kept: drawn at least once.
        scale = tf.where((counts > 0) & (p > 0.0), 1.0 / tf.maximum(keep, 1e-300), 0.0)
        return tf.cast(tf.reshape(scale, shape), inputs.dtype)

    def apply_block(self, inputs, seed):
        return inputs * self.mask(inputs, seed)

    def get_config(self):
        return {**super().get_config(), "frac": self.frac}


@keras.saving.register_keras_serializable(package="rls_tf")
class SAPModel(SeededNoiseModel):
    """A network with `SAP` after its ReLUs, N-pass inference.

    See `SeededNoiseModel` (draws are stateless seeds) and the module
    docstring (the algorithm and its source). Build one from a trained
    plain model with `rls_tf.defenses.noise_networks.wrap_sap`. SAP is not
    trained (the paper applies it to a trained network); `fit` would train
    through the pruning.

    Args:
        network: functional `keras.Model` (images -> probabilities) with at
            least one `SAP` layer.
        eval_samples: N, stochastic passes averaged at inference (default
            100, the paper's evaluation).
        eval_forward: "loop" or "tiled" (see `SeededNoiseModel`).
        **kwargs: `keras.Model` arguments.
    """

    defense_name = "sap"
    _noise_layer_class = SAP
    adversarial_training_support = (
        "SAP wraps a trained plain network and is not trained; adversarially train the "
        "plain model (train.py --defense=plain --adv_train=pgd) and wrap that run "
        "(--defense=sap --base_model_dir=DIR)")

    def __init__(self, network, eval_samples=100, eval_forward="loop", **kwargs):
        super().__init__(network, eval_samples=eval_samples, eval_forward=eval_forward,
                         **kwargs)

    def describe(self):
        return {**super().describe(), "frac": [float(layer.frac) for layer in self.noise_layers]}
