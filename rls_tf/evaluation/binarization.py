"""The binarization test: does the attack find an adversarial example known to exist?

Zimmermann, Brendel, Tramèr and Carlini 2022, "Increasing Confidence in
Adversarial Robustness Evaluations" (``google-research/active-adversarial-tests``,
``interior_boundary_discrimination_attack``). For each test image x:

1. Sample ``num_inner`` points uniformly in the L-inf ball of radius
   ``0.95 eps`` around x (``relative_inner_boundary_gap`` 0.05) and one
   boundary point, a corner of the eps-ball (their
   ``sample_training_data_from_corners``); all clipped to [-1, 1].
2. Train a linear readout (unregularised logistic regression, class-balanced)
   on the model's features of x and the inner points (class 0) against the
   boundary point (class 1). It must separate them exactly, else the image is
   skipped ("setup failed") and counted, as in their code.
3. Shift the readout's bias so that the boundary point keeps only a fraction
   of its margin (their ``decision_boundary_closeness`` 0.9999 keeps 1e-4):
   the adversarial region is then small and must be found, not stumbled on.
4. Attack the binarized classifier (the model's feature extractor, then the
   readout) at x with the attack under test; it succeeds if the defender
   of the binarized classifier calls the point class 1.

An adversarial example provably exists (the boundary point), so a sound
attack succeeds on every image whose setup succeeded; a low attack success
rate (ASR) means the attack, not the model, failed.

Our adaptation, for any classifier of the interface (ours, external ones, a
SavedModel): the features are the classifier's log-probabilities of one
draw (theirs: the penultimate layer of the network, which an external model
does not expose), and the readout applies to every draw, so the binarized
classifier is itself a `StochasticClassifier` with the model's randomness.
A random model's features are the mean over the evaluation's draws (their
``n_inference_repetitions``). A model whose defender is a fixed set of draws
(an ensemble's members) gets one row per member instead: its binarized
defender averages the members' 2-class outputs, so a readout fitted on the
members' mean log-probabilities can separate the points while the averaged
outputs do not (ADP's members disagree most); separated member by member with
a margin, the average is on the same side. The boundary point must be adversarial and x
and the inner points clean under three seeded calls of the binarized
defender; the kept margin is the smallest of 1e-4, 1e-3, ... 1 at which the
boundary point stays adversarial under those calls (a point 1e-4 from the
boundary of a random classifier is adversarial under about half its draws:
not "known to exist"). The test fails when the ASR is below 95% of at least
`MIN_VALID` valid images (their code reports the ASR without a threshold).

Example:

>>> import keras, numpy as np
>>> from rls_tf.models.external import ExternalClassifier
>>> keras.utils.set_random_seed(0)
>>> net = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
...                         keras.layers.Dense(3)])
>>> model = ExternalClassifier.from_keras(net)
>>> x = np.random.default_rng(0).uniform(-1, 1, (6, 4, 4, 1)).astype("float32")
>>> def one_step(binarized, x, eps):   # FGSM towards class 1, returns x_adv
...     with tf.GradientTape() as tape:
...         xt = tf.constant(x); tape.watch(xt)
...         score = tf.math.log(binarized.defend(xt)[:, 1])
...     return tf.clip_by_value(xt + eps * tf.sign(tape.gradient(score, xt)), -1, 1)
>>> found = binarization_test(model, x, eps=0.2, attack=one_step, num_inner=20)
>>> found.images, found.valid + found.not_separable + found.not_adversarial
(6, 6)
"""

import dataclasses

import numpy as np
import tensorflow as tf

from rls_tf.interface import StochasticClassifier
from rls_tf.validation import check_float, check_int

__all__ = ["BinarizationResult", "BinarizedClassifier", "binarization_test", "fit_readouts"]

INNER_RADIUS = 0.95          # inner points: L-inf ball of 0.95 eps (their gap 0.05)
KEEP_FRACTIONS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)   # margin the boundary point keeps
PASS_ASR = 0.95
MIN_VALID = 5
_CHECK_CALLS = 3             # seeded defender calls that must agree on every point
_NEWTON_STEPS = 60
_RIDGE = 1e-3
_MIN_STD = 1e-3
_MIN_MARGIN = 1.0            # every point this far on its side (logit units, fitted scale)
_SCORE_RANGE = 10.0          # largest |readout score| over an image's points


@dataclasses.dataclass(frozen=True)
class BinarizationResult:
    """What the test found on one model.

    Attributes:
        images: images tried.
        valid: images whose readout separated the points and whose boundary
            point the binarized defender calls adversarial (the ASR's base).
        not_separable: images whose points no linear readout of the
            features separates.
        not_adversarial: separable, but the binarized defender does not call
            the boundary point adversarial (or calls x or an inner point so).
        successes: valid images on which the attack found an adversarial
            point (for a random model, the mean over the defender's calls of
            the images called adversarial).
        keep_fractions: per valid image, the margin fraction the boundary
            point kept.
    """

    images: int
    valid: int
    not_separable: int
    not_adversarial: int
    successes: float
    keep_fractions: tuple = ()

    @property
    def attack_success_rate(self):
        return self.successes / self.valid if self.valid else float("nan")

    def to_json(self):
        return {**dataclasses.asdict(self), "keep_fractions": list(self.keep_fractions),
                "attack_success_rate": (None if not self.valid else self.attack_success_rate)}


class BinarizedClassifier(StochasticClassifier):
    """The model's features through per-image linear readouts: a 2-class classifier.

    Output of one draw for image i: ``softmax([0, w_i . log p(x_i) + b_i])``,
    with ``p`` the model's probabilities of that draw; so the binarized
    classifier has the model's randomness, draws and defender. Image i of
    every batch must be the image readout i was fitted for.

    Args:
        model: a `StochasticClassifier`.
        weights: ``[B, K]`` readout weights, one row per image.
        biases: ``[B]`` readout biases.
    """

    def __init__(self, model, weights, biases):
        self.model = model
        self.weights = tf.constant(np.asarray(weights, np.float32))
        self.biases = tf.constant(np.asarray(biases, np.float32))
        self.eval_samples = model.eval_samples

    @property
    def is_stochastic(self):
        return self.model.is_stochastic

    @property
    def draw_shape(self):
        return self.model.draw_shape

    @property
    def image_shape(self):
        return self.model.image_shape

    @property
    def draws_per_example(self):
        return self.model.draws_per_example

    @property
    def pinnable(self):
        return self.model.pinnable

    def defender_draws(self):
        return self.model.defender_draws()

    def draw(self, num_draws, seed=None):
        return self.model.draw(num_draws, seed)

    def _readout(self, probs):
        tf.debugging.assert_equal(
            tf.shape(probs)[1], tf.shape(self.weights)[0],
            message="BinarizedClassifier: the batch must hold exactly the images its readouts "
                    "were fitted for (one readout per image)")
        score = tf.einsum("dbk,bk->db", tf.math.log(probs + 1e-12), self.weights) + self.biases
        return tf.nn.softmax(tf.stack([tf.zeros_like(score), score], axis=-1), axis=-1)

    def outputs(self, x, draws, training=False):
        return self._readout(self.model.outputs(x, draws, training=training))

    def inference_outputs(self, x, draws):
        return self._readout(self.model.inference_outputs(x, draws))


def fit_readouts(features, labels):
    """Class-balanced, unregularised logistic regressions, one per image.

    Newton's method on standardised features (features that move less than
    1e-3 are not scaled up: float noise of a saturated softmax must not
    separate the classes), with a ridge of 1e-3 on the standardised weights
    (which keeps the Hessian invertible when the classes separate); the
    readout is then scaled so that its largest score over the points is 10
    in size: the same decisions, and a 2-class softmax whose gradient does
    not vanish in float32.

    Args:
        features: ``[S, P, K]``: S images, P points each, K features.
        labels: ``[P]`` 0/1, the same for every image.

    Returns:
        ``(weights [S, K], biases [S], separated [S] bool)``: the readouts in
        the raw feature space and whether each puts all its P points on their
        side with a margin of 1 (in the fitted logit scale, before rescaling).
    """
    f = np.asarray(features, np.float64)
    t = np.asarray(labels, np.float64)
    mean = f.mean(axis=1, keepdims=True)
    # A feature that moves less than 1e-3 over the points (a log-probability
    # saturated at 0 or at the floor) is float noise: not scaled up.
    std = np.maximum(f.std(axis=1, keepdims=True), _MIN_STD)
    z = np.concatenate([(f - mean) / std, np.ones(f.shape[:2] + (1,))], axis=-1)
    balance = np.where(t == 1, 0.5 / t.sum(), 0.5 / (1 - t).sum())
    theta = np.zeros((f.shape[0], z.shape[-1]))
    eye = _RIDGE * np.eye(z.shape[-1])
    for _ in range(_NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-np.clip(np.einsum("spk,sk->sp", z, theta), -50, 50)))
        grad = np.einsum("sp,spk->sk", balance * (p - t), z)
        hess = np.einsum("sp,spk,spl->skl", balance * p * (1 - p), z, z) + eye
        theta -= np.linalg.solve(hess, grad[..., None])[..., 0]
    scores = np.einsum("spk,sk->sp", z, theta)
    # Separated with a margin: a readout that only just splits the points
    # (the ridge keeps float-noise features from separating them widely)
    # would not be "known" to hold once the points move.
    separated = np.all(scores * (2 * t - 1) >= _MIN_MARGIN, axis=1)
    # Separable classes drive the weights to infinity: scaled back (same
    # decisions), the 2-class softmax keeps a gradient (their rescale_logits).
    theta *= _SCORE_RANGE / np.maximum(np.abs(scores).max(axis=1, keepdims=True), 1e-12)
    weights = theta[:, :-1] / std[:, 0]
    biases = theta[:, -1] - np.sum(weights * mean[:, 0], axis=-1)
    return weights, biases, separated


def _features(model, points, draws, key, per_draw):
    """``[P, D, K]`` log-probabilities of the defender's draws (``D`` = 1: their mean)."""
    logs = tf.math.log(model.defender_outputs(tf.constant(points), num_samples=draws,
                                              seed=key) + 1e-12)
    if not per_draw:
        logs = tf.reduce_mean(logs, axis=0, keepdims=True)
    return np.moveaxis(logs.numpy(), 0, 1)


def _key(rng):
    """A ``[2]`` stateless key from the test's generator."""
    return tf.constant(rng.integers(0, 2 ** 31 - 1, 2), tf.int64)


def _adversarial(binarized, points, rng):
    """``[calls, B]`` bool: the binarized defender's class-1 verdicts, seeded calls."""
    points = tf.constant(points)
    return np.stack([tf.argmax(tf.reduce_mean(binarized.defender_outputs(
        points, seed=_key(rng)), axis=0),
        -1).numpy() == 1 for _ in range(_CHECK_CALLS)])


def _chunks(n, size=1000):
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def binarization_test(model, x, eps, attack, *, num_inner=99, draws=10, seed=0):
    """Runs the binarization test of `attack` on `model` at the images `x`.

    Args:
        model: a `StochasticClassifier`.
        x: ``[S, H, W, C]`` [-1, 1] images (labels play no part: the
            binarized task is x against its own boundary point).
        eps: L-inf radius, in [-1, 1] units.
        attack: ``attack(binarized, x, eps) -> x_adv``: the attack under
            test, run on a `BinarizedClassifier` towards class 1 (every
            image's true class is 0).
        num_inner: inner points per image (x itself is one more).
        draws: forward passes averaged into a random model's features.
        seed: seed of the points and of the defender calls.

    Returns:
        a `BinarizationResult`.
    """
    if not isinstance(model, StochasticClassifier):
        raise TypeError(f"model must be a StochasticClassifier. Received: model={model!r}")
    eps = check_float("eps", eps, minimum=0.0, min_open=True)
    num_inner = check_int("num_inner", num_inner)
    draws = check_int("draws", draws)
    x = np.asarray(x, np.float32)
    rng = np.random.default_rng(seed)
    images, shape = len(x), x.shape[1:]
    inner = x[:, None] + rng.uniform(-INNER_RADIUS * eps, INNER_RADIUS * eps,
                                     (images, num_inner) + shape).astype(np.float32)
    corner = x + eps * rng.choice(np.array([-1.0, 1.0], np.float32), x.shape)
    points = np.clip(np.concatenate([x[:, None], inner, corner[:, None]], axis=1), -1, 1)
    labels = np.zeros(num_inner + 2)
    labels[-1] = 1
    key = _key(rng)
    per_image = num_inner + 2
    flat = points.reshape((-1,) + shape)
    # A fixed-draw defender (an ensemble's members): one row per member.
    per_draw = model.defender_draws() is not None
    feats = np.concatenate([_features(model, flat[c], draws, key, per_draw)
                            for c in _chunks(len(flat))])
    rows = feats.shape[1]
    feats = feats.reshape(images, per_image * rows, -1)
    weights, biases, separated = fit_readouts(feats, np.repeat(labels, rows))
    # The boundary point's margin: its smallest over the rows (members).
    margin = np.min(np.einsum("sdk,sk->sd", feats[:, -rows:], weights), axis=1) + biases
    # The tightest kept margin at which the boundary point stays adversarial.
    keep = np.full(images, np.nan)
    for fraction in KEEP_FRACTIONS:
        todo = np.isnan(keep) & separated
        if not todo.any():
            break
        shifted = BinarizedClassifier(model, weights, biases - (1 - fraction) * margin)
        keep[todo & _adversarial(shifted, points[:, -1], rng).all(axis=0)] = fraction
    biases = biases - (1 - np.nan_to_num(keep, nan=1.0)) * margin
    # x and every inner point must be clean under every call: each point
    # through its own image's readout.
    clean = np.repeat(np.arange(images), per_image - 1)
    inner_points = points[:, :-1].reshape((-1,) + shape)
    flagged = np.concatenate([_adversarial(BinarizedClassifier(
        model, weights[clean[c]], biases[clean[c]]), inner_points[c], rng).any(axis=0)
        for c in _chunks(len(inner_points))])
    valid = separated & ~np.isnan(keep) & ~flagged.reshape(images, -1).any(axis=1)
    not_separable = int((~separated).sum())
    if not valid.any():
        return BinarizationResult(images, 0, not_separable, images - not_separable, 0.0, ())
    final = BinarizedClassifier(model, weights, biases)
    x_adv = np.asarray(attack(final, x, eps), np.float32)
    if x_adv.shape != x.shape or np.max(np.abs(x_adv - x)) > eps + 1e-5:
        raise ValueError(f"the attack must return points of the eps-ball around x, of x's "
                         f"shape {x.shape}. Received: shape {x_adv.shape}, max |x_adv - x| = "
                         f"{np.max(np.abs(x_adv - x)) if x_adv.shape == x.shape else 'n/a'} "
                         f"(eps={eps:g})")
    success = _adversarial(final, x_adv, rng).mean(axis=0)
    return BinarizationResult(images, int(valid.sum()), not_separable,
                              images - not_separable - int(valid.sum()),
                              float(success[valid].sum()),
                              tuple(float(k) for k in keep[valid]))
