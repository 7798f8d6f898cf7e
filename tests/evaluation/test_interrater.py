"""Interrater agreement (Kuncheva & Whitaker 2003, eq. 16) on hand-made data."""

import math

import numpy as np
import pytest

from rls_tf.evaluation import interrater


def test_worked_example_by_hand():
    # 3 classifiers, 4 examples, 3 classes. True labels 0, 1, 2, 0.
    labels = np.array([0, 1, 2, 0])
    predictions = np.array([
        [0, 1, 1, 1],   # right on examples 0, 1
        [0, 2, 2, 2],   # right on examples 0, 2
        [0, 1, 2, 1],   # right on examples 0, 1, 2
    ])
    correct = interrater.correctness_from_outputs(predictions, labels)
    np.testing.assert_array_equal(
        correct, [[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 0]]
    )
    # By hand: l(z) = 3, 2, 2, 0 (L=3, N_ex=4); pbar = 7/12.
    # numerator   = (1/3) * (3*0 + 2*1 + 2*1 + 0*3) = 4/3
    # denominator = 4 * (3 - 1) * 7/12 * 5/12 = 280/144
    # kappa = 1 - (4/3) / (280/144) = 1 - 192/280 = 11/35
    assert interrater.interrater_agreement(correct) == pytest.approx(11 / 35, abs=1e-12)


def test_same_from_probabilities():
    labels = np.array([0, 1, 2, 0])
    predictions = np.array([[0, 1, 1, 1], [0, 2, 2, 2], [0, 1, 2, 1]])
    probs = np.eye(3)[predictions] * 0.8 + 0.2 / 3
    correct = interrater.correctness_from_outputs(probs, labels)
    assert interrater.interrater_agreement(correct) == pytest.approx(11 / 35)


def test_opposite_pair_is_minus_one_and_identical_is_one():
    # Two classifiers that are never right together: l(z) = 1, 1; pbar = 1/2;
    # 1 - ((1/2) * (1 + 1)) / (2 * 1 * 1/4) = -1.
    assert interrater.interrater_agreement([[1, 0], [0, 1]]) == pytest.approx(-1.0)
    same = [[1, 0, 1, 1], [1, 0, 1, 1], [1, 0, 1, 1]]
    assert interrater.interrater_agreement(same) == pytest.approx(1.0)


def test_random_matches_formula():
    rng = np.random.default_rng(0)
    correct = rng.random((7, 50)) < 0.7
    big_l, n_ex = correct.shape
    l = correct.sum(axis=0)
    pbar = l.sum() / (n_ex * big_l)
    expected = 1 - (np.sum(l * (big_l - l)) / big_l) / (n_ex * (big_l - 1) * pbar * (1 - pbar))
    assert interrater.interrater_agreement(correct) == pytest.approx(expected)


def test_undefined_and_bad_arguments():
    assert math.isnan(interrater.interrater_agreement([[1, 1], [1, 1]]))
    assert math.isnan(interrater.interrater_agreement([[0, 0], [0, 0]]))
    with pytest.raises(ValueError, match="at least 2 classifiers"):
        interrater.interrater_agreement([[1, 0, 1]])
    with pytest.raises(ValueError, match=r"\[L, N_ex\]"):
        interrater.interrater_agreement([1, 0, 1])
    with pytest.raises(ValueError, match="0/1"):
        interrater.interrater_agreement([[0.5, 1], [1, 0]])
    with pytest.raises(ValueError, match="labels"):
        interrater.correctness_from_outputs(np.zeros((2, 3, 4)), np.zeros(5, int))


def test_repeated_mean_and_std():
    labels = np.array([0, 1, 2, 0])
    draws = [
        np.array([[0, 1, 1, 1], [0, 2, 2, 2], [0, 1, 2, 1]]),   # 11/35
        np.array([[0, 1, 2, 1], [0, 1, 2, 1], [0, 1, 2, 1]]),   # identical: 1
        np.array([[0, 1, 2, 0], [0, 1, 2, 0], [0, 1, 2, 0]]),   # all right: undefined
    ]
    out = interrater.repeated_interrater_agreement(lambda r: draws[r], labels, repeats=3)
    assert out["repeats"] == 3
    assert out["values"][0] == pytest.approx(11 / 35)
    assert out["values"][1] == pytest.approx(1.0)
    assert out["values"][2] is None
    assert out["mean"] == pytest.approx((11 / 35 + 1) / 2)
    assert out["std"] == pytest.approx(np.std([11 / 35, 1.0]))
    with pytest.raises(ValueError, match="repeats"):
        interrater.repeated_interrater_agreement(lambda r: draws[0], labels, repeats=0)
