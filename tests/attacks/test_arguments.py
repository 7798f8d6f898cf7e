"""Argument checks, eps=0 / c=0 identities and output ranges of every attack.

These run on a tiny linear model (no training) so that they are fast.
"""

import numpy as np
import pytest
import tensorflow as tf

import rls_tf.attacks as attacks
from rls_tf.attacks import checks
from tests.attacks.conftest import linear_model_fn
from tests.attacks.conftest import two_linear_models_fn

NUM_CLASSES = 3
SHAPE = (4, 4, 4, 1)  # [B, H, W, C]
RNG = np.random.default_rng(0)
W = RNG.normal(size=(NUM_CLASSES, 16)).astype(np.float32)
B = RNG.normal(scale=0.1, size=NUM_CLASSES).astype(np.float32)
W2 = RNG.normal(size=(NUM_CLASSES, 16)).astype(np.float32)
B2 = RNG.normal(scale=0.1, size=NUM_CLASSES).astype(np.float32)
MODEL = linear_model_fn(W, B)
EOT_MODEL = two_linear_models_fn(W, B, W2, B2)
MODEL2 = linear_model_fn(W2, B2)
# ARC attacks the members of an ensemble unaveraged: members_fn(x) -> [M, B, K].
MEMBERS = lambda v: tf.stack([MODEL(v), MODEL2(v)])  # noqa: E731
X = RNG.uniform(-0.9, 0.9, size=SHAPE).astype(np.float32)
X[0, 0, 0, 0] = -1.0  # pixels on the bounds
X[1, 0, 0, 0] = 1.0
Y = np.argmax(MODEL(X).numpy(), axis=-1).astype(np.int64)

# Cheap settings per attack (the real ones are tested for strength elsewhere).
FAST = {
    "fgsm": dict(eps=0.1),
    "pgd": dict(eps=0.1, nb_iter=3),
    "apgd": dict(eps=0.1, nb_iter=5),
    "deepfool": dict(max_iter=5),
    "cw_l2": dict(c=10.0, steps=10, lr=0.05),
    "ead": dict(c=10.0, steps=10, lr=0.05),
    "mi_fgsm": dict(eps=0.1, nb_iter=3),
    "square": dict(eps=0.1, n_queries=5, seed=0),
    "spsa": dict(eps=0.1, nb_iter=2, nb_sample=4, seed=0),
    "arc": dict(eps=0.1, nb_iter=2),
}
# The first argument's name where it is not ``model_fn``.
MODEL_ARGUMENT = {"arc": "members_fn"}


def run(name, model_fn=None, x=X, y=Y, **overrides):
    if model_fn is None:
        model_fn = MEMBERS if name == "arc" else MODEL
    kwargs = dict(FAST[name])
    kwargs.update(overrides)
    return attacks.ATTACKS[name](model_fn, x, y, **kwargs)


def assert_names(err, name):
    message = str(err.value)
    assert "Received:" in message, message
    received = message.split("Received:", 1)[1]
    assert f"{name}=" in received or f"{name} returning" in received, message


def test_exports():
    assert set(attacks.ATTACKS) == set(FAST)
    for name in tuple(FAST) + ("l2_distance", "l1_distance", "linf_distance", "ATTACKS"):
        assert hasattr(attacks, name), name
    assert attacks.ATTACKS["cw_l2"] is attacks.cw_l2


# -- bad arguments ------------------------------------------------------------

COMMON_BAD = [
    ("y", dict(y=None)),
    ("y", dict(y=Y[:, None])),  # [B, 1]
    ("y", dict(y=np.eye(NUM_CLASSES, dtype=np.int64)[Y])),  # one-hot
    ("y", dict(y=Y[:2])),  # wrong batch
    ("y", dict(y=Y.astype(np.float32))),
    ("y", dict(y=np.full_like(Y, NUM_CLASSES))),  # out of range for K=3
    ("y", dict(y=np.full_like(Y, -1))),
    ("x", dict(x=X + 0.5)),  # out of [-1, 1]
    ("x", dict(x=X[0])),  # rank 3
    ("x", dict(x=np.zeros(SHAPE, np.uint8))),
    ("x", dict(x=None)),
    ("clip_min", dict(clip_min=1.0, clip_max=-1.0)),
    ("clip_min", dict(clip_min=0.5, clip_max=0.5)),
    ("model_fn", dict(model_fn="not callable")),
    ("model_fn", dict(model_fn=lambda v: tf.reduce_sum(v, axis=[1, 2, 3]))),  # rank 1
]

SPECIFIC_BAD = {
    "fgsm": [("eps", dict(eps=-0.1)), ("eps", dict(eps=float("nan"))),
             ("targeted", dict(targeted="yes"))],
    "pgd": [("eps", dict(eps=-0.1)), ("nb_iter", dict(nb_iter=0)),
            ("nb_iter", dict(nb_iter=2.5)), ("eps_iter", dict(eps_iter=0.2)),
            ("eps_iter", dict(eps_iter=-0.01)), ("rand_minmax", dict(rand_minmax=-1.0)),
            ("seed", dict(seed=-1)), ("rand_init", dict(rand_init=1))],
    "apgd": [("eps", dict(eps=-0.1)), ("nb_iter", dict(nb_iter=0)),
             ("loss", dict(loss="mse")), ("loss", dict(loss="CE")),
             ("rho", dict(rho=0.0)), ("rho", dict(rho=1.5)),
             ("n_restarts", dict(n_restarts=0)), ("seed", dict(seed=1.5))],
    "deepfool": [("max_iter", dict(max_iter=0)), ("overshoot", dict(overshoot=-0.1)),
                 ("candidates", dict(candidates=1))],
    "cw_l2": [("c", dict(c=-1.0)), ("steps", dict(steps=0)), ("lr", dict(lr=0.0)),
              ("confidence", dict(confidence=-1.0)),
              ("binary_search_steps", dict(binary_search_steps=0)),
              ("abort_early", dict(abort_early=None))],
    "ead": [("c", dict(c=-1.0)), ("beta", dict(beta=-0.1)), ("steps", dict(steps=0)),
            ("lr", dict(lr=-0.01)), ("decision_rule", dict(decision_rule="L2")),
            ("decision_rule", dict(decision_rule="en")),
            ("binary_search_steps", dict(binary_search_steps=0))],
    # The gradient-free and momentum attacks' own files test every argument;
    # here they join the common contract with a few each.
    "mi_fgsm": [("eps", dict(eps=-0.1)), ("decay", dict(decay=-1.0)),
                ("loss", dict(loss="dlr"))],
    "square": [("eps", dict(eps=-0.1)), ("n_queries", dict(n_queries=0)),
               ("p_init", dict(p_init=1.5)), ("seed", dict(seed=-1))],
    "spsa": [("eps", dict(eps=-0.1)), ("nb_sample", dict(nb_sample=7)),
             ("delta", dict(delta=0.0)), ("seed", dict(seed=-1))],
    "arc": [("eps", dict(eps=-0.1)), ("nb_iter", dict(nb_iter=0)),
            ("eta", dict(eta=0.5))],
}

BAD_CASES = [
    pytest.param(attack, name, kwargs, id=f"{attack}-{name}-{i}")
    for attack in attacks.ATTACKS
    for i, (name, kwargs) in enumerate(COMMON_BAD + SPECIFIC_BAD[attack])
]


@pytest.mark.parametrize("attack, name, kwargs", BAD_CASES)
def test_bad_argument_raises_value_error_naming_it(attack, name, kwargs):
    if attack in MODEL_ARGUMENT and name == "model_fn":
        name = MODEL_ARGUMENT[attack]
    with pytest.raises(ValueError) as err:
        run(attack, **kwargs)
    assert_names(err, name)


def test_y_is_required_positional():
    with pytest.raises(TypeError):
        attacks.fgsm(MODEL, X, eps=0.1)  # pylint: disable=no-value-for-parameter


def test_apgd_dlr_needs_three_classes():
    two_class = linear_model_fn(W[:2], B[:2])
    y = np.argmax(two_class(X).numpy(), axis=-1)
    with pytest.raises(ValueError) as err:
        attacks.apgd(two_class, X, y, eps=0.1, loss="dlr", nb_iter=2)
    assert_names(err, "loss")
    attacks.apgd(two_class, X, y, eps=0.1, loss="ce", nb_iter=2)  # CE is fine


def test_x_slightly_out_of_range_is_accepted_and_clipped():
    x = X.copy()
    x[0, 0, 0, 0] = -1.0 - 5e-7
    x_adv = attacks.fgsm(MODEL, x, Y, eps=0.0)
    assert float(tf.reduce_min(x_adv)) >= -1.0


def test_checks_helpers():
    with pytest.raises(ValueError, match="nb_iter=True"):
        checks.check_positive_int(True, "nb_iter")
    with pytest.raises(ValueError, match="eps=inf"):
        checks.check_non_negative(float("inf"), "eps")
    assert checks.check_model_output(tf.zeros([5, 4, 3]), 4) == 3
    with pytest.raises(ValueError, match="model_fn"):
        checks.check_model_output(tf.zeros([4, 1]), 4)


# -- identities ---------------------------------------------------------------

@pytest.mark.parametrize("attack", ["fgsm", "pgd", "apgd"])
def test_eps_zero_returns_x(attack):
    x_adv = run(attack, eps=0.0)
    np.testing.assert_array_equal(x_adv.numpy(), X)


@pytest.mark.parametrize("attack", ["cw_l2", "ead"])
def test_c_zero_finds_nothing_and_returns_x(attack):
    # With c=0 the objective is the distance alone: no adversarial is ever
    # found, and the original x (not Foolbox's all-zero placeholder) comes back.
    x_adv = run(attack, c=0.0)
    np.testing.assert_array_equal(x_adv.numpy(), X)


@pytest.mark.parametrize("attack", list(attacks.ATTACKS))
def test_already_misclassified_examples_come_back_unchanged_or_stay_misclassified(attack):
    wrong = (Y + 1) % NUM_CLASSES  # every example is "already misclassified"
    x_adv = run(attack, y=wrong)
    if attack in ("deepfool", "cw_l2", "ead"):
        # Minimum-norm attacks: x itself is the smallest adversarial (C&W's
        # tanh round trip may move it by ~1e-6).
        np.testing.assert_allclose(x_adv.numpy(), X, atol=1e-5)
    assert x_adv.shape == X.shape


@pytest.mark.parametrize("attack", list(attacks.ATTACKS))
def test_empty_batch(attack):
    x_adv = run(attack, x=X[:0], y=Y[:0])
    assert x_adv.shape == (0,) + SHAPE[1:]


# -- output ranges ------------------------------------------------------------

@pytest.mark.parametrize("model", ["plain", "eot"])
@pytest.mark.parametrize("attack", list(attacks.ATTACKS))
def test_output_within_clip_range_and_eps_ball(attack, model):
    model_fn = MODEL if model == "plain" else EOT_MODEL
    if attack == "arc":  # members are never averaged: both inputs are [M, B, K]
        model_fn = MEMBERS if model == "plain" else lambda v: tf.stack(
            [MODEL(v), MODEL2(v), MODEL(-v)])
    eps = 0.3
    kwargs = {"eps": eps} if "eps" in FAST[attack] else {}
    x_adv = run(attack, model_fn=model_fn, **kwargs)
    assert isinstance(x_adv, tf.Tensor) and x_adv.dtype == tf.float32
    assert x_adv.shape == X.shape
    assert np.all(np.isfinite(x_adv.numpy()))
    assert float(tf.reduce_min(x_adv)) >= -1.0 and float(tf.reduce_max(x_adv)) <= 1.0
    if "eps" in kwargs:
        assert attacks.linf_distance(X, x_adv).max() <= eps + 1e-6


@pytest.mark.parametrize("attack", ["fgsm", "pgd", "apgd"])
def test_eps_ball_with_other_clip_range(attack):
    x01 = (X + 1.0) / 2.0  # pixels in [0, 1]
    model_fn = lambda v: MODEL(2.0 * v - 1.0)  # noqa: E731
    x_adv = run(attack, model_fn=model_fn, x=x01, eps=0.05, clip_min=0.0, clip_max=1.0)
    assert attacks.linf_distance(x01, x_adv).max() <= 0.05 + 1e-6
    assert float(tf.reduce_min(x_adv)) >= 0.0 and float(tf.reduce_max(x_adv)) <= 1.0


def test_norms():
    x = np.zeros((2, 2, 2, 1), np.float32)
    x_adv = x.copy()
    x_adv[0, 0, 0, 0] = 3.0
    x_adv[0, 1, 1, 0] = -4.0
    np.testing.assert_allclose(attacks.l2_distance(x, x_adv), [5.0, 0.0])
    np.testing.assert_allclose(attacks.l1_distance(x, tf.constant(x_adv)), [7.0, 0.0])
    np.testing.assert_allclose(attacks.linf_distance(x, x_adv), [4.0, 0.0])
    with pytest.raises(ValueError, match="x_adv.shape"):
        attacks.l2_distance(x, x_adv[:1])


def test_attacks_depend_on_no_other_part_of_rls_tf():
    import pathlib
    import re

    package = pathlib.Path(attacks.__file__).parent
    for path in package.glob("*.py"):
        for line in path.read_text().splitlines():
            match = re.match(r"\s*(?:from|import)\s+(rls_tf[\w.]*)", line)
            if match:
                assert match.group(1).startswith("rls_tf.attacks"), (path.name, line)
