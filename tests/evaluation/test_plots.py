"""The robustness plot from results whose stored intervals miss their mean by rounding."""

import os

from rls_tf.evaluation import plots


def _interval(mean, low, high):
    return {"mean": mean, "low": low, "high": high, "worst_of_r": mean, "worst_low": low,
            "worst_high": high, "num_examples": 500, "repeats": 1, "confidence": 0.95}


def test_plot_draws_a_mean_that_rounding_put_outside_its_interval(tmp_path):
    # A cifar10 merge of 500 images: PGD left 0 of 500 and the stored Wilson
    # interval's low bound was 1e-17 (written before wilson_interval clamped
    # it), which made matplotlib refuse a negative error bar.
    accuracy = {"mean": 0.0, "std": 0.0, "values": [0.0], "repeats": 1}
    results = {
        "config": {"preset": {"eps_units": "model", "dataset": "cifar10"},
                   "threat_models": [{"label": "paper"}], "eval_samples": 10},
        "models": {"plain": {"stochastic": False}},
        "clean": {"plain": {"accuracy": {"mean": 0.8, "std": 0.0},
                            "interval": _interval(0.8, 0.76, 0.83)}},
        "robust": [{"attack": "pgd", "threat_model": "paper", "model": "plain", "eps": 0.0627,
                    "accuracy": accuracy, "interval": _interval(0.0, 1e-17, 0.0076)}],
    }
    path = os.path.join(str(tmp_path), "robustness.png")
    plots.plot_robustness(results, path)
    assert os.path.getsize(path) > 0
