"""Tests of rls_tf.metrics: diversity, accuracy intervals and worst-of-R."""

import itertools

import numpy as np
import pytest

from rls_tf import metrics


def test_pairwise_disagreement_matches_brute_force():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(4, 7))
    samples = np.eye(3)[labels]
    pairs = list(itertools.combinations(range(4), 2))
    expected = np.mean([np.mean(labels[i] != labels[j]) for i, j in pairs])
    assert float(metrics.pairwise_disagreement(samples)) == pytest.approx(expected, abs=1e-6)


def test_wilson_interval_matches_the_closed_form_reference():
    # Reference values of Wilson's (1927) interval at z = 1.959964, worked by
    # hand from (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n).
    low, high = metrics.wilson_interval(0.5, 100)
    assert (low, high) == pytest.approx((0.403832, 0.596168), abs=1e-6)
    zero_low, zero_high = metrics.wilson_interval(0.0, 20)
    assert zero_low == 0.0 and zero_high == pytest.approx(0.161125, abs=1e-6)
    one_low, one_high = metrics.wilson_interval(1.0, 20)
    assert one_high == 1.0 and one_low == pytest.approx(1 - 0.161125, abs=1e-6)
    low99, high99 = metrics.wilson_interval(0.5, 100, confidence=0.99)
    assert low99 < low and high99 > high  # wider at a higher level



def test_wilson_interval_always_holds_its_mean():
    # At 0 and 1 the closed form cancels only up to rounding (0 of 500 gave a
    # low bound of 1e-17 above 0, and a plot's error bar went negative).
    for n in range(1, 1001):
        for mean in (0.0, 1.0, 1 / n, 1 - 1 / n):
            low, high = metrics.wilson_interval(mean, n)
            assert 0.0 <= low <= mean <= high <= 1.0, (mean, n)


@pytest.mark.parametrize("kwargs, message", [
    ({"mean": 1.5, "num_examples": 10}, "mean=1.5"),
    ({"mean": 0.5, "num_examples": 0}, "num_examples=0"),
    ({"mean": 0.5, "num_examples": 2.5}, "num_examples=2.5"),
    ({"mean": 0.5, "num_examples": 10, "confidence": 1.0}, "confidence=1.0"),
])
def test_wilson_interval_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        metrics.wilson_interval(**kwargs)


def test_worst_of_r_equals_a_brute_force_count():
    rng = np.random.default_rng(1)
    correct = rng.random((5, 200)) < 0.8
    result = metrics.accuracy_interval(correct)
    brute = sum(1 for b in range(200) if all(correct[r, b] for r in range(5))) / 200
    assert result.worst_of_r == brute
    assert result.mean == pytest.approx(correct.sum() / correct.size)
    assert result.worst_of_r <= result.mean
    assert result.repeats == 5 and result.num_examples == 200


def test_one_repeat_worst_of_r_is_the_accuracy():
    correct = np.array([[True, False, True, True]])
    result = metrics.accuracy_interval(correct)
    assert result.worst_of_r == result.mean == 0.75
    assert (result.worst_low, result.worst_high) == (result.low, result.high)


def test_accuracy_interval_round_trips_json():
    result = metrics.accuracy_interval(np.ones((3, 10), bool))
    assert metrics.AccuracyInterval.from_json(result.to_json()) == result


@pytest.mark.parametrize("correct, message", [
    (np.ones((0, 3), bool), "shape"),
    (np.ones(3, bool), "shape"),
    (np.full((2, 3), 0.5), "booleans"),
])
def test_accuracy_interval_rejects_bad_input(correct, message):
    with pytest.raises(ValueError, match=message):
        metrics.accuracy_interval(correct)


def _coverage(rng, trials, num_examples, repeats, per_example_accuracy):
    hits = worst_hits = 0
    true_mean = per_example_accuracy.mean()
    true_worst = np.mean(per_example_accuracy ** repeats)
    for _ in range(trials):
        # A simulated randomised classifier: test examples drawn from a
        # population whose example i is classified right by a fresh draw with
        # probability q_i; R independent defender repeats.
        q = rng.choice(per_example_accuracy, size=num_examples)
        correct = rng.random((repeats, num_examples)) < q
        result = metrics.accuracy_interval(correct)
        hits += result.low <= true_mean <= result.high
        worst_hits += result.worst_low <= true_worst <= result.worst_high
    return hits / trials, worst_hits / trials


@pytest.mark.parametrize("repeats", [1, 5])
def test_interval_covers_the_true_accuracy_at_its_nominal_rate(repeats):
    rng = np.random.default_rng(2)
    # Examples of every kind: always right, always wrong, and in between.
    population = np.concatenate([np.ones(40), np.zeros(20), rng.uniform(0.2, 0.9, 40)])
    coverage, worst_coverage = _coverage(rng, 2000, 200, repeats, population)
    # Nominal 95%; 2,000 trials put the estimate within +-1.5 points (3 sd);
    # the mean's interval may be conservative when R > 1 (bounded scores).
    assert 0.935 <= coverage <= (0.965 if repeats == 1 else 0.995)
    assert 0.935 <= worst_coverage <= 0.965
