"""Interrater agreement of an ensemble's members (Kuncheva & Whitaker 2003).

The RLS paper (Lee et al., Table 5) measures the diversity of its N sampled
models with the *interrater agreement* kappa of Kuncheva & Whitaker,
"Measures of Diversity in Classifier Ensembles", Machine Learning 51, 2003
(eq. 16, the non-pairwise measure built on Fleiss' kappa):

    kappa = 1 - [ (1/L) sum_j l(z_j) (L - l(z_j)) ]
                / [ N_ex (L - 1) pbar (1 - pbar) ]

with L the number of classifiers (here the N sampled models), N_ex the
number of examples, ``l(z_j)`` how many of the L classifiers are correct on
example j, and ``pbar = sum_j l(z_j) / (N_ex L)`` their mean individual
accuracy. kappa = 1 when all classifiers are correct on exactly the same
examples; lower kappa means more diversity (it can be negative).

It is undefined (0/0) when ``pbar`` is 0 or 1, i.e. when every classifier is
right on every example or wrong on every example: the functions here return
NaN then, and `repeated_interrater_agreement` leaves such repeats out of the
mean.
"""

import numpy as np

__all__ = [
    "correctness_from_outputs",
    "interrater_agreement",
    "interrater_agreement_from_counts",
    "repeated_interrater_agreement",
]


def correctness_from_outputs(outputs, labels):
    """Oracle outputs: whether each classifier is right on each example.

    Args:
        outputs: ``[L, N_ex, K]`` probabilities or logits of L classifiers
            (e.g. ``RLSModel.sample_outputs(x, L)``), or ``[L, N_ex]``
            predicted classes (integers).
        labels: int ``[N_ex]`` true classes.

    Returns:
        bool ``np.ndarray`` ``[L, N_ex]``.
    """
    outputs = np.asarray(outputs)
    labels = np.asarray(labels)
    if outputs.ndim == 3:
        predictions = np.argmax(outputs, axis=-1)
    elif outputs.ndim == 2 and np.issubdtype(outputs.dtype, np.integer):
        predictions = outputs
    else:
        raise ValueError(
            "`outputs` must be [L, N_ex, K] scores or [L, N_ex] integer "
            f"predictions. Received: outputs.shape={outputs.shape}, "
            f"dtype={outputs.dtype}"
        )
    if labels.shape != (predictions.shape[1],):
        raise ValueError(
            f"`labels` must have shape [N_ex] = [{predictions.shape[1]}]. "
            f"Received: labels.shape={labels.shape}"
        )
    return predictions == labels[None, :]


def interrater_agreement(correct):
    """Interrater agreement kappa of L classifiers (Kuncheva & Whitaker eq. 16).

    Args:
        correct: bool/0-1 array ``[L, N_ex]``: ``correct[i, j]`` is whether
            classifier i is right on example j (`correctness_from_outputs`).

    Returns:
        float: kappa; NaN when undefined (mean accuracy 0 or 1).

    Raises:
        ValueError: not a 2-D 0/1 array, fewer than 2 classifiers or no
            examples.

    Example:

    >>> correct = [[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 0]]  # L=3, N_ex=4
    >>> # l(z) = 3, 2, 2, 0; pbar = 7/12
    >>> round(interrater_agreement(correct), 6)  # 1 - (4/3) / (4*2*35/144)
    0.314286
    """
    correct = np.asarray(correct)
    if correct.ndim != 2:
        raise ValueError(
            f"`correct` must be [L, N_ex]. Received: correct.shape={correct.shape}"
        )
    if correct.dtype != np.bool_ and not np.all((correct == 0) | (correct == 1)):
        raise ValueError("`correct` must hold only 0/1 or booleans.")
    num_classifiers, num_examples = correct.shape
    if num_classifiers < 2:
        raise ValueError(
            "Interrater agreement needs at least 2 classifiers. "
            f"Received: L={num_classifiers}"
        )
    if num_examples < 1:
        raise ValueError("Interrater agreement needs at least 1 example. Received: N_ex=0")
    return interrater_agreement_from_counts(correct.sum(axis=0), num_classifiers)


def interrater_agreement_from_counts(num_correct, num_classifiers):
    """kappa from how many of the L classifiers are right on each example.

    kappa depends on the ``[L, N_ex]`` oracle outputs only through their
    column sums ``l(z_j)``, so these are sufficient statistics: the kappa of
    several example sets taken together is the kappa of their concatenated
    counts (not an average of their kappas). `interrater_agreement` computes
    through this function, so both give bit-identical results.

    Args:
        num_correct: int ``[N_ex]``: ``l(z_j)``, in ``[0, L]``.
        num_classifiers: L >= 2.

    Returns:
        float: kappa; NaN when undefined (mean accuracy 0 or 1).
    """
    num_correct = np.asarray(num_correct)
    if num_correct.ndim != 1:
        raise ValueError(
            f"`num_correct` must be [N_ex]. Received: num_correct.shape={num_correct.shape}"
        )
    if isinstance(num_classifiers, bool) or int(num_classifiers) != num_classifiers:
        raise ValueError(
            f"`num_classifiers` must be an int. Received: num_classifiers={num_classifiers!r}"
        )
    num_classifiers = int(num_classifiers)
    if num_classifiers < 2:
        raise ValueError(
            "Interrater agreement needs at least 2 classifiers. "
            f"Received: L={num_classifiers}"
        )
    num_examples = num_correct.shape[0]
    if num_examples < 1:
        raise ValueError("Interrater agreement needs at least 1 example. Received: N_ex=0")
    if num_correct.min() < 0 or num_correct.max() > num_classifiers:
        raise ValueError(
            f"`num_correct` must be in [0, L={num_classifiers}]. Received: "
            f"min={num_correct.min()}, max={num_correct.max()}"
        )
    num_correct = num_correct.astype(np.float64)  # l(z_j)
    mean_accuracy = num_correct.sum() / (num_examples * num_classifiers)  # pbar
    denominator = num_examples * (num_classifiers - 1) * mean_accuracy * (1 - mean_accuracy)
    if denominator == 0:
        return float("nan")
    numerator = np.sum(num_correct * (num_classifiers - num_correct)) / num_classifiers
    return float(1.0 - numerator / denominator)


def repeated_interrater_agreement(sample_fn, labels, repeats):
    """kappa of R independent draws of L classifiers: mean, std and values.

    Args:
        sample_fn: ``repeat_index -> [L, N_ex, K]`` outputs (or ``[L, N_ex]``
            predictions) of one fresh draw of L sampled models.
        labels: int ``[N_ex]``.
        repeats: R >= 1.

    Returns:
        dict ``{"mean", "std", "values", "repeats"}``: mean and population
        standard deviation over the repeats where kappa is defined (None if
        none is), and the R values (None where undefined).
    """
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"`repeats` must be an int >= 1. Received: repeats={repeats!r}")
    values = []
    for r in range(int(repeats)):
        kappa = interrater_agreement(correctness_from_outputs(sample_fn(r), labels))
        values.append(None if np.isnan(kappa) else kappa)
    return summarize(values)


def summarize(values):
    """``{"mean", "std", "values", "repeats"}`` of a list (None = undefined)."""
    defined = np.asarray([v for v in values if v is not None], dtype=np.float64)
    return {
        "mean": float(defined.mean()) if defined.size else None,
        "std": float(defined.std()) if defined.size else None,
        "values": [None if v is None else float(v) for v in values],
        "repeats": len(values),
    }
