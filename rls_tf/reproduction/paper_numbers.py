"""The printed numbers of Lee et al., Tables 1-6 (arXiv 2005.10757), as data.

Source: Lee et al., "Robust Ensemble Model Training via Random Layer Sampling
Against Adversarial Attack", arXiv 2005.10757, Tables 1-6, transcribed once
from an OCR'd text of the paper. Every value is the number as printed:

* Tables 1, 2, 3, 4 and 6: classification accuracy in percent (0-100).
* Table 5: the Interrater Agreement (IA) score, kappa in [0, 1] (lower means
  more diverse), printed as mean ± std over 10 repeats of 10 samples; ADP is
  printed without a std (one run of a fixed model), so its ``std`` is None.

What each table is:

* Table 1: Baseline vs. Ours (RLS), ResNet-50, MNIST / CIFAR-10 / SVHN, each
  dataset with its own attack parameters ("Para." columns).
* Table 2: the same with VGG-16 (different parameters from Table 1).
* Table 3: defenses on CIFAR-10 (ResNet-50, section 4.3). The table prints no
  attack parameters ("same as section 4.2"); its "No defense" and "Ours" rows
  equal Table 1's CIFAR-10 cells at the first parameter of each attack
  (FGSM/PGD eps=0.01, C&W/EAD c=0.01), but ``param`` stays "" as printed.
* Table 4: Ours when the attacker attacks 1/5/10/15 sampled models
  (``samples``), ResNet-50 (printed), CIFAR-10 (caption). The 1-model row
  equals Table 1's CIFAR-10 Ours cells at eps/c=0.01; ``param`` is "".
* Table 5: IA scores on the three datasets. The paper does not say the
  backbone for Table 5, so ``backbone`` is None.
* Table 6: accuracy against the number of samples (``samples``): Base ensemble
  of 3 and 5 individually trained ResNet-50 sub-models (the text, section
  4.6) and Our ensemble with 5/10/15 samples. The dataset is not printed; it
  is CIFAR-10 by inference (the Ours cells are Table 1's CIFAR-10 Ours cells
  within 0.1, the 15-sample row equals them exactly). ``param`` is "".
  Note the paper's own slight inconsistency: section 4.2 says Tables 1-3 use
  N=10 samples, but Table 1's CIFAR-10 numbers match Table 6's 15-sample row
  (65.1 / 70.9 / 91.7), not its 10-sample row (65.2 / 70.8 / 91.7).

Normalisation of labels:

* defense: "Baseline" and "No defense" -> "plain"; "Ours", "RSL" (the OCR's
  and the paper's spelling of RLS) and "Our ensemble" -> "rls"; "ADP" ->
  "adp"; "RSE" -> "rse"; "Stochastic Dropout" -> "sap"; "Base ensemble" ->
  "ensemble".
* attack: "No Attack" -> "clean"; "FGSM" -> "fgsm"; "PGD" -> "pgd";
  "Deepfool" -> "deepfool"; "C&W" -> "cw"; "EAD" -> "ead"; Table 5 ->
  "interrater".
* param: "ε=0.1" -> "eps=0.1", "c=0.01" -> "c=0.01", "c=1" -> "c=1"; the
  printed "-" (and no parameter at all) -> "".
* dataset: "MNIST" -> "mnist", "CIFAR-10" -> "cifar10", "SVHN" -> "svhn";
  backbone: "Resnet-50"/"ResNet-50" -> "resnet50", "VGG-16" -> "vgg16".

OCR corrections made (the OCR'd text is wrong; the paper's layout makes the
right label unambiguous):

* Table 1, row 3 label "POSM" -> "FGSM" (second FGSM row, MNIST eps=0.2,
  CIFAR-10 eps=0.02, SVHN eps=0.1; PGD has its own two rows below).
* Table 1, row 8 label "Caw" -> "C&W" (second C&W row, c=1 / 0.1 / 0.1).
* Table 2, row 3 label "LOSM" -> "FGSM" (second FGSM row, eps=0.8 / 0.2 /
  0.2).
* Table 2, row 7 label "CON" -> "C&W" (first C&W row, c=0.1 / 0.01 / 0.01;
  the next row, printed "C&W", is the second).
* Tables 1 and 2: the unlabelled row after "PGD" is PGD's second parameter.
* Table 2 column header "RSL" -> Ours (RLS, defense "rls").
* Table 3, row "RSE [51.8 45.8 82.1 91.2 75.4": the OCR swallowed the
  reference number and the cell separator; the row is RSE with FGSM 51.8,
  PGD 45.8, Deepfool 82.1, C&W 91.2, EAD 75.4. The reference numbers of
  "ADP [77]" and "Stochastic Dropout [2]" are OCR noise and are dropped.
* Table 5, CIFAR-10 "Ours": the OCR kept the LaTeX bold
  ("\\textbf{0.51} \\pm \\textbf{0.018}"): 0.51 ± 0.018.
* Table 6, row 2 label "Dase ensemble" -> "Base ensemble" (5 sub-models);
  the "Our ensemble" label, printed on the middle of its three rows, covers
  the rows with 5, 10 and 15 samples.

Values kept exactly as printed, including Table 2's two-decimal MNIST PGD
cells (66.55, 23.57) and the non-monotone Table 4 FGSM column (58.7 at 10
attacked models, 63.1 at 15).

This module imports nothing from rls_tf: it is pure data. Note that importing
it as ``rls_tf.reproduction.paper_numbers`` runs ``rls_tf/__init__.py``
(which imports Keras); load it by file path to avoid that.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

TABLES = (1, 2, 3, 4, 5, 6)
DATASETS = ("mnist", "cifar10", "svhn")
BACKBONES = ("resnet50", "vgg16", None)
DEFENSES = ("plain", "rls", "adp", "rse", "sap", "ensemble")
ATTACKS = ("clean", "fgsm", "pgd", "deepfool", "cw", "ead", "interrater")

_FIELDS = ("table", "dataset", "backbone", "defense", "attack", "param",
           "value", "std", "samples")


@dataclasses.dataclass(frozen=True)
class PaperCell:
    """One printed number of the paper's Tables 1-6.

    Attributes:
        table: The table number, 1-6.
        dataset: "mnist", "cifar10" or "svhn".
        backbone: "resnet50", "vgg16", or None where the paper does not say
            (Table 5).
        defense: "plain" (Baseline / No defense), "rls" (Ours / RSL / Our
            ensemble), "adp", "rse", "sap" (Stochastic Dropout) or
            "ensemble" (Base ensemble).
        attack: "clean" (No Attack), "fgsm", "pgd", "deepfool", "cw", "ead",
            or "interrater" (Table 5's IA score).
        param: The attack parameter as printed, normalised ("eps=0.1",
            "c=0.01", "c=1"); "" where the table prints "-" or none.
        value: The printed number: accuracy in percent, or IA kappa in
            Table 5.
        std: The printed standard deviation (Table 5), else None.
        samples: Table 4's "# of attacked sampled models" or Table 6's
            "# of samples"; None elsewhere.
    """

    table: int
    dataset: str
    backbone: Optional[str]
    defense: str
    attack: str
    param: str
    value: float
    std: Optional[float] = None
    samples: Optional[int] = None

    def __post_init__(self):
        checks = (
            ("table", self.table, TABLES),
            ("dataset", self.dataset, DATASETS),
            ("backbone", self.backbone, BACKBONES),
            ("defense", self.defense, DEFENSES),
            ("attack", self.attack, ATTACKS),
        )
        for name, got, allowed in checks:
            if got not in allowed or isinstance(got, bool):
                raise ValueError(
                    f"PaperCell.{name} must be one of {allowed}. "
                    f"Received: {name}={got!r}")
        if not isinstance(self.param, str):
            raise ValueError(
                f"PaperCell.param must be a string. Received: param={self.param!r}")
        for name in ("value", "std"):
            got = getattr(self, name)
            if got is None and name == "std":
                continue
            if isinstance(got, bool) or not isinstance(got, (int, float)):
                raise ValueError(
                    f"PaperCell.{name} must be a number. Received: {name}={got!r}")
            object.__setattr__(self, name, float(got))
        if self.samples is not None and (
                isinstance(self.samples, bool) or not isinstance(self.samples, int)
                or self.samples < 1):
            raise ValueError(
                "PaperCell.samples must be a positive int or None. "
                f"Received: samples={self.samples!r}")

    @property
    def key(self) -> tuple:
        """The identity of the cell (every field but value and std)."""
        return (self.table, self.dataset, self.backbone, self.defense,
                self.attack, self.param, self.samples)

    def to_json(self) -> dict[str, Any]:
        """Returns the cell as a JSON-serialisable dict.

        Returns:
            A dict with one entry per field.
        """
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "PaperCell":
        """Builds a cell from the output of `to_json`.

        Args:
            data: A dict with the fields of `PaperCell` (std and samples may
                be absent).

        Returns:
            The cell.

        Raises:
            ValueError: On unknown or missing keys, or invalid values.
        """
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise ValueError(
                f"PaperCell.from_json got unknown keys. Received: {unknown}")
        missing = [n for n in _FIELDS[:7] if n not in data]
        if missing:
            raise ValueError(
                f"PaperCell.from_json is missing keys {missing}. "
                f"Received: {sorted(data)}")
        return cls(**data)


# ---------------------------------------------------------------------------
# Transcription. Tables 1 and 2: one row per (attack, per-dataset parameter),
# with (param, baseline, ours) per dataset in the order MNIST, CIFAR-10, SVHN.

_TABLE_1_RESNET50 = (
    # attack,     MNIST                     CIFAR-10                   SVHN
    ("clean",    ("", 99.5, 99.6),         ("", 95.1, 96.7),          ("", 96.2, 97.6)),
    ("fgsm",     ("eps=0.1", 89.5, 98.6),  ("eps=0.01", 45.4, 65.1),  ("eps=0.05", 40.4, 56.2)),
    ("fgsm",     ("eps=0.2", 44.1, 70.4),  ("eps=0.02", 35.6, 48.1),  ("eps=0.1", 28.5, 41.0)),
    ("pgd",      ("eps=0.05", 68.3, 86.4), ("eps=0.01", 36.4, 70.9),  ("eps=0.01", 66.0, 88.4)),
    ("pgd",      ("eps=0.1", 30.8, 62.5),  ("eps=0.02", 12.0, 39.2),  ("eps=0.02", 35.3, 68.5)),
    ("deepfool", ("", 3.7, 91.4),          ("", 0.4, 84.9),           ("", 1.1, 84.1)),
    ("cw",       ("c=0.1", 43.7, 83.9),    ("c=0.01", 41.7, 91.7),    ("c=0.01", 38.8, 92.3)),
    ("cw",       ("c=1", 13.8, 75.3),      ("c=0.1", 16.4, 87.9),     ("c=0.1", 9.5, 75.7)),
    ("ead",      ("c=0.1", 35.9, 68.0),    ("c=0.01", 26.2, 79.0),    ("c=0.01", 29.8, 80.3)),
    ("ead",      ("c=1", 12.8, 48.3),      ("c=0.1", 10.8, 47.6),     ("c=0.1", 5.9, 69.2)),
)

_TABLE_2_VGG16 = (
    # attack,     MNIST                     CIFAR-10                   SVHN
    ("clean",    ("", 98.2, 99.1),         ("", 92.1, 93.7),          ("", 96.5, 97.0)),
    ("fgsm",     ("eps=0.4", 67.3, 84.3),  ("eps=0.1", 45.4, 53.3),   ("eps=0.1", 27.8, 40.1)),
    ("fgsm",     ("eps=0.8", 16.7, 28.6),  ("eps=0.2", 22.0, 28.1),   ("eps=0.2", 17.4, 26.8)),
    ("pgd",      ("eps=0.1", 66.55, 83.9), ("eps=0.01", 54.7, 78.8),  ("eps=0.02", 42.5, 74.0)),
    ("pgd",      ("eps=0.2", 23.57, 49.1), ("eps=0.02", 37.4, 58.9),  ("eps=0.04", 18.4, 45.0)),
    ("deepfool", ("", 1.7, 82.2),          ("", 0.9, 67.9),           ("", 1.3, 68.4)),
    ("cw",       ("c=0.1", 58.5, 89.5),    ("c=0.01", 61.0, 91.5),    ("c=0.01", 47.1, 88.6)),
    ("cw",       ("c=1", 15.2, 65.8),      ("c=0.1", 18.2, 74.3),     ("c=0.1", 13.9, 68.5)),
    ("ead",      ("c=0.1", 48.1, 65.7),    ("c=0.01", 51.4, 84.3),    ("c=0.01", 18.0, 67.4)),
    ("ead",      ("c=1", 22.2, 45.6),      ("c=0.1", 28.5, 44.9),     ("c=0.1", 3.8, 61.2)),
)

# Table 3 (CIFAR-10, ResNet-50): defense -> FGSM, PGD, Deepfool, C&W, EAD.
_TABLE_3_ATTACKS = ("fgsm", "pgd", "deepfool", "cw", "ead")
_TABLE_3 = (
    ("plain", (45.4, 36.4, 0.4, 41.7, 26.2)),  # No defense
    ("adp", (70.2, 61.7, 20.3, 52.0, 61.9)),
    ("rse", (51.8, 45.8, 82.1, 91.2, 75.4)),
    ("sap", (58.5, 59.0, 56.4, 53.4, 38.1)),   # Stochastic Dropout
    ("rls", (65.1, 70.9, 84.9, 91.7, 79.0)),   # Ours
)

# Table 4 (CIFAR-10, ResNet-50, Ours): # of attacked sampled models ->
# FGSM, PGD, C&W.
_TABLE_4_ATTACKS = ("fgsm", "pgd", "cw")
_TABLE_4 = (
    (1, (65.1, 70.9, 91.7)),
    (5, (60.5, 65.3, 84.5)),
    (10, (58.7, 60.9, 82.3)),
    (15, (63.1, 60.2, 81.7)),
)

# Table 5 (IA kappa): dataset -> {defense: (mean, std or None)}.
_TABLE_5 = (
    ("mnist", (("sap", 0.53, 0.005), ("rse", 0.55, 0.015), ("adp", 0.52, None),
               ("rls", 0.43, 0.021))),
    ("cifar10", (("sap", 0.58, 0.004), ("rse", 0.60, 0.031), ("adp", 0.54, None),
                 ("rls", 0.51, 0.018))),
    ("svhn", (("sap", 0.62, 0.003), ("rse", 0.66, 0.024), ("adp", 0.62, None),
              ("rls", 0.58, 0.023))),
)

# Table 6 (CIFAR-10 by inference, ResNet-50): (defense, # of samples) ->
# FGSM, PGD, C&W.
_TABLE_6_ATTACKS = ("fgsm", "pgd", "cw")
_TABLE_6 = (
    ("ensemble", 3, (50.2, 53.7, 46.7)),  # Base ensemble
    ("ensemble", 5, (51.1, 55.2, 47.6)),  # "Dase ensemble" in the OCR
    ("rls", 5, (64.8, 70.3, 91.5)),       # Our ensemble
    ("rls", 10, (65.2, 70.8, 91.7)),
    ("rls", 15, (65.1, 70.9, 91.7)),
)


def _build() -> tuple[PaperCell, ...]:
    cells = []
    for table, backbone, rows in ((1, "resnet50", _TABLE_1_RESNET50),
                                  (2, "vgg16", _TABLE_2_VGG16)):
        for attack, *per_dataset in rows:
            for dataset, (param, baseline, ours) in zip(DATASETS, per_dataset):
                for defense, value in (("plain", baseline), ("rls", ours)):
                    cells.append(PaperCell(table, dataset, backbone, defense,
                                           attack, param, value))
    for defense, values in _TABLE_3:
        for attack, value in zip(_TABLE_3_ATTACKS, values):
            cells.append(PaperCell(3, "cifar10", "resnet50", defense, attack, "",
                                   value))
    for samples, values in _TABLE_4:
        for attack, value in zip(_TABLE_4_ATTACKS, values):
            cells.append(PaperCell(4, "cifar10", "resnet50", "rls", attack, "",
                                   value, samples=samples))
    for dataset, entries in _TABLE_5:
        for defense, mean, std in entries:
            cells.append(PaperCell(5, dataset, None, defense, "interrater", "",
                                   mean, std=std))
    for defense, samples, values in _TABLE_6:
        for attack, value in zip(_TABLE_6_ATTACKS, values):
            cells.append(PaperCell(6, "cifar10", "resnet50", defense, attack, "",
                                   value, samples=samples))
    return tuple(cells)


PAPER_CELLS: tuple[PaperCell, ...] = _build()
"""Every printed number of Tables 1-6 (184 cells: 60, 60, 25, 12, 12, 15)."""


def paper_cells(table: Optional[int] = None, dataset: Optional[str] = None,
                defense: Optional[str] = None,
                attack: Optional[str] = None) -> tuple[PaperCell, ...]:
    """Returns the cells matching every given filter (None matches all).

    Args:
        table: A table number, 1-6.
        dataset: "mnist", "cifar10" or "svhn".
        defense: One of `DEFENSES`.
        attack: One of `ATTACKS`.

    Returns:
        The matching cells, in transcription order (possibly empty).
    """
    return tuple(
        cell for cell in PAPER_CELLS
        if (table is None or cell.table == table)
        and (dataset is None or cell.dataset == dataset)
        and (defense is None or cell.defense == defense)
        and (attack is None or cell.attack == attack))


def paper_value(table: int, dataset: str, defense: str, attack: str,
                param: str = "", samples: Optional[int] = None) -> float:
    """Returns the value of the single cell matching all the arguments.

    Args:
        table: A table number, 1-6.
        dataset: "mnist", "cifar10" or "svhn".
        defense: One of `DEFENSES`.
        attack: One of `ATTACKS`.
        param: The normalised parameter ("eps=0.01", "c=1"), "" for none.
        samples: Table 4/6's number of (attacked) sampled models, else None.

    Returns:
        The printed value (accuracy in percent; IA kappa in Table 5).

    Raises:
        ValueError: When no cell or more than one cell matches.
    """
    matches = [cell for cell in paper_cells(table, dataset, defense, attack)
               if cell.param == param and cell.samples == samples]
    if len(matches) != 1:
        received = (f"table={table!r}, dataset={dataset!r}, defense={defense!r}, "
                    f"attack={attack!r}, param={param!r}, samples={samples!r}")
        if not matches:
            options = sorted({(c.param, c.samples) for c in
                              paper_cells(table, dataset, defense, attack)},
                             key=repr)
            raise ValueError(
                "No paper cell matches (table, dataset, defense, attack, param, "
                f"samples); (param, samples) available there: {options}. "
                f"Received: {received}")
        raise ValueError(
            f"{len(matches)} paper cells match (table, dataset, defense, attack, "
            f"param, samples). Received: {received}")
    return matches[0].value
