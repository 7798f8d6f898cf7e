"""The transcription of the paper's Tables 1-6 (rls_tf/reproduction/paper_numbers).

The module is loaded by file path: importing it through the package would run
rls_tf/__init__.py, which imports Keras and TensorFlow; this test stays pure
Python and fast.
"""

import ast
import collections
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

_PATH = (pathlib.Path(__file__).resolve().parents[2]
         / "rls_tf" / "reproduction" / "paper_numbers.py")
_NAME = "_rls_tf_paper_numbers_under_test"
_PAPER_TEXT = pathlib.Path("/work/shared/seeds/000_b28828458d12e4ba.txt")


def _load():
    if _NAME in sys.modules:
        return sys.modules[_NAME]
    spec = importlib.util.spec_from_file_location(_NAME, _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module  # dataclasses looks the module up by name
    spec.loader.exec_module(module)
    return module


pn = _load()


# (table, dataset, defense, attack, param, samples) -> the number read in the
# paper's text; at least three per table, across datasets and columns.
EXPECTED = [
    # Table 1, ResNet-50.
    (1, "mnist", "plain", "clean", "", None, 99.5),
    (1, "mnist", "rls", "fgsm", "eps=0.2", None, 70.4),
    (1, "mnist", "rls", "deepfool", "", None, 91.4),
    (1, "cifar10", "plain", "pgd", "eps=0.02", None, 12.0),
    (1, "cifar10", "rls", "cw", "c=0.01", None, 91.7),
    (1, "cifar10", "rls", "ead", "c=0.1", None, 47.6),
    (1, "svhn", "plain", "fgsm", "eps=0.05", None, 40.4),
    (1, "svhn", "rls", "pgd", "eps=0.02", None, 68.5),
    (1, "svhn", "plain", "cw", "c=0.1", None, 9.5),
    (1, "svhn", "rls", "ead", "c=0.1", None, 69.2),
    # Table 2, VGG-16.
    (2, "mnist", "plain", "pgd", "eps=0.1", None, 66.55),
    (2, "mnist", "plain", "pgd", "eps=0.2", None, 23.57),
    (2, "mnist", "rls", "fgsm", "eps=0.8", None, 28.6),
    (2, "mnist", "rls", "cw", "c=0.1", None, 89.5),
    (2, "cifar10", "rls", "clean", "", None, 93.7),
    (2, "cifar10", "plain", "fgsm", "eps=0.1", None, 45.4),
    (2, "cifar10", "rls", "ead", "c=0.01", None, 84.3),
    (2, "svhn", "rls", "pgd", "eps=0.04", None, 45.0),
    (2, "svhn", "plain", "ead", "c=0.1", None, 3.8),
    (2, "svhn", "rls", "deepfool", "", None, 68.4),
    # Table 3, defenses on CIFAR-10.
    (3, "cifar10", "plain", "deepfool", "", None, 0.4),
    (3, "cifar10", "adp", "ead", "", None, 61.9),
    (3, "cifar10", "rse", "fgsm", "", None, 51.8),
    (3, "cifar10", "rse", "cw", "", None, 91.2),
    (3, "cifar10", "sap", "pgd", "", None, 59.0),
    (3, "cifar10", "rls", "deepfool", "", None, 84.9),
    # Table 4, attacked sampled models.
    (4, "cifar10", "rls", "fgsm", "", 1, 65.1),
    (4, "cifar10", "rls", "pgd", "", 5, 65.3),
    (4, "cifar10", "rls", "cw", "", 10, 82.3),
    (4, "cifar10", "rls", "fgsm", "", 15, 63.1),
    # Table 5, IA kappa.
    (5, "mnist", "rls", "interrater", "", None, 0.43),
    (5, "cifar10", "rse", "interrater", "", None, 0.60),
    (5, "cifar10", "rls", "interrater", "", None, 0.51),
    (5, "svhn", "adp", "interrater", "", None, 0.62),
    (5, "svhn", "sap", "interrater", "", None, 0.62),
    # Table 6, number of samples.
    (6, "cifar10", "ensemble", "fgsm", "", 3, 50.2),
    (6, "cifar10", "ensemble", "cw", "", 5, 47.6),
    (6, "cifar10", "rls", "pgd", "", 5, 70.3),
    (6, "cifar10", "rls", "fgsm", "", 10, 65.2),
    (6, "cifar10", "rls", "cw", "", 15, 91.7),
]


@pytest.mark.parametrize("table,dataset,defense,attack,param,samples,value", EXPECTED)
def test_cells_as_read(table, dataset, defense, attack, param, samples, value):
    assert pn.paper_value(table, dataset, defense, attack, param=param,
                          samples=samples) == pytest.approx(value, abs=1e-9)


def test_every_table_has_checked_cells():
    per_table = collections.Counter(row[0] for row in EXPECTED)
    assert all(per_table[t] >= 3 for t in range(1, 7))
    for table in (1, 2, 5):
        assert {row[1] for row in EXPECTED if row[0] == table} == set(pn.DATASETS)


def test_table_5_stds():
    def std(dataset, defense):
        (cell,) = [c for c in pn.paper_cells(5, dataset, defense, "interrater")]
        return cell.std

    assert std("mnist", "sap") == pytest.approx(0.005)
    assert std("cifar10", "rse") == pytest.approx(0.031)
    assert std("cifar10", "rls") == pytest.approx(0.018)
    assert std("svhn", "rls") == pytest.approx(0.023)
    assert all(std(d, "adp") is None for d in pn.DATASETS)
    assert all(c.std is None for c in pn.PAPER_CELLS if c.table != 5)


def test_counts_per_table():
    counts = collections.Counter(cell.table for cell in pn.PAPER_CELLS)
    # 1, 2: 10 rows x 3 datasets x 2 defenses; 3: 5 defenses x 5 attacks;
    # 4: 4 attacked-model counts x 3 attacks; 5: 3 datasets x 4 defenses;
    # 6: 5 rows x 3 attacks.
    assert dict(counts) == {1: 60, 2: 60, 3: 25, 4: 12, 5: 12, 6: 15}
    assert len(pn.PAPER_CELLS) == 184
    for table in (1, 2):
        for dataset in pn.DATASETS:
            for defense in ("plain", "rls"):
                got = collections.Counter(
                    c.attack for c in pn.paper_cells(table, dataset, defense))
                assert got == {"clean": 1, "fgsm": 2, "pgd": 2, "deepfool": 1,
                               "cw": 2, "ead": 2}
    assert {(c.defense, c.attack) for c in pn.paper_cells(3)} == {
        (d, a) for d in ("plain", "adp", "rse", "sap", "rls")
        for a in ("fgsm", "pgd", "deepfool", "cw", "ead")}
    assert sorted({c.samples for c in pn.paper_cells(4)}) == [1, 5, 10, 15]
    assert sorted((c.defense, c.samples) for c in pn.paper_cells(6, attack="fgsm")) == [
        ("ensemble", 3), ("ensemble", 5), ("rls", 5), ("rls", 10), ("rls", 15)]


def test_fields_in_allowed_sets():
    for cell in pn.PAPER_CELLS:
        assert cell.table in (1, 2, 3, 4, 5, 6)
        assert cell.dataset in ("mnist", "cifar10", "svhn")
        assert cell.backbone in ("resnet50", "vgg16", None)
        assert cell.defense in ("plain", "rls", "adp", "rse", "sap", "ensemble")
        assert cell.attack in ("clean", "fgsm", "pgd", "deepfool", "cw", "ead",
                               "interrater")
        assert isinstance(cell.value, float)
        if cell.attack == "interrater":
            assert cell.table == 5 and 0.0 < cell.value < 1.0
        else:
            assert cell.table != 5 and 0.0 <= cell.value <= 100.0
        if cell.table in (1, 2) and cell.attack in ("fgsm", "pgd"):
            assert cell.param.startswith("eps=")
        elif cell.table in (1, 2) and cell.attack in ("cw", "ead"):
            assert cell.param.startswith("c=")
        else:
            assert cell.param == ""
        assert (cell.samples is not None) == (cell.table in (4, 6))
        expected_backbone = {1: "resnet50", 2: "vgg16", 5: None}.get(cell.table, "resnet50")
        assert cell.backbone == expected_backbone
        if cell.table in (3, 4, 6):
            assert cell.dataset == "cifar10"


def test_no_duplicate_keys():
    keys = [(c.table, c.dataset, c.backbone, c.defense, c.attack, c.param, c.samples)
            for c in pn.PAPER_CELLS]
    assert len(keys) == len(set(keys))
    assert all(c.key == k for c, k in zip(pn.PAPER_CELLS, keys))


def test_params_per_dataset():
    def params(table, dataset, attack):
        return sorted({c.param for c in pn.paper_cells(table, dataset, "plain", attack)},
                      key=lambda p: float(p.split("=")[1]))

    assert params(1, "mnist", "fgsm") == ["eps=0.1", "eps=0.2"]
    assert params(1, "cifar10", "fgsm") == ["eps=0.01", "eps=0.02"]
    assert params(1, "svhn", "fgsm") == ["eps=0.05", "eps=0.1"]
    assert params(1, "mnist", "pgd") == ["eps=0.05", "eps=0.1"]
    assert params(1, "mnist", "cw") == ["c=0.1", "c=1"]
    assert params(1, "svhn", "ead") == ["c=0.01", "c=0.1"]
    assert params(2, "mnist", "fgsm") == ["eps=0.4", "eps=0.8"]
    assert params(2, "cifar10", "fgsm") == ["eps=0.1", "eps=0.2"]
    assert params(2, "svhn", "pgd") == ["eps=0.02", "eps=0.04"]
    assert params(2, "mnist", "ead") == ["c=0.1", "c=1"]


def test_json_round_trip():
    for cell in pn.PAPER_CELLS:
        data = json.loads(json.dumps(cell.to_json()))
        assert pn.PaperCell.from_json(data) == cell
    assert set(pn.PAPER_CELLS[0].to_json()) == {
        "table", "dataset", "backbone", "defense", "attack", "param", "value",
        "std", "samples"}
    with pytest.raises(ValueError, match="Received:"):
        pn.PaperCell.from_json({**pn.PAPER_CELLS[0].to_json(), "extra": 1})


def test_frozen_and_validated():
    cell = pn.PAPER_CELLS[0]
    with pytest.raises(Exception):
        cell.value = 1.0
    with pytest.raises(ValueError, match="Received: defense='ours'"):
        pn.PaperCell(1, "mnist", "resnet50", "ours", "clean", "", 99.6)
    with pytest.raises(ValueError, match="Received: dataset='cifar-10'"):
        pn.PaperCell(1, "cifar-10", "resnet50", "rls", "clean", "", 96.7)


def test_paper_cells_filters():
    assert len(pn.paper_cells()) == len(pn.PAPER_CELLS)
    assert len(pn.paper_cells(table=1, dataset="svhn")) == 20
    assert len(pn.paper_cells(table=3, defense="rse")) == 5
    assert len(pn.paper_cells(attack="interrater")) == 12
    assert len(pn.paper_cells(dataset="mnist", attack="deepfool")) == 4
    assert pn.paper_cells(table=4, defense="plain") == ()


def test_paper_value_errors():
    with pytest.raises(ValueError, match="Received:") as info:
        pn.paper_value(1, "mnist", "rls", "fgsm", param="eps=0.3")
    assert "param='eps=0.3'" in str(info.value)
    assert "table=1" in str(info.value) and "dataset='mnist'" in str(info.value)
    with pytest.raises(ValueError, match="Received:"):
        pn.paper_value(1, "mnist", "rls", "fgsm")  # param missing
    with pytest.raises(ValueError, match="Received:.*samples=None"):
        pn.paper_value(4, "cifar10", "rls", "fgsm")  # samples missing
    with pytest.raises(ValueError, match="Received:"):
        pn.paper_value(3, "mnist", "rls", "fgsm")


def test_pure_data_module():
    tree = ast.parse(_PATH.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= {"__future__", "dataclasses", "typing"}
    docstring = ast.get_docstring(tree)
    assert "2005.10757" in docstring
    for ocr in ("POSM", "Caw", "LOSM", "CON", "RSL", "Dase", "RSE [51.8"):
        assert ocr in docstring
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('m', {str(_PATH)!r})\n"
            "m = importlib.util.module_from_spec(spec); sys.modules['m'] = m\n"
            "spec.loader.exec_module(m)\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
            "print(len(m.PAPER_CELLS))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONPATH": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "184"


# --- Whole-table audit against the OCR'd paper text, where it is available.

def _fmt(value, digits=1):
    text = f"{value:.2f}" if value in (66.55, 23.57) else f"{value:.{digits}f}"
    assert float(text) == value, (value, text)  # the printed precision, exactly
    return text


def _printed_param(param):
    return "-" if param == "" else param.replace("eps=", "ε=")


@pytest.mark.skipif(not _PAPER_TEXT.exists(), reason="paper text not available")
def test_whole_tables_against_paper_text():
    lines = _PAPER_TEXT.read_text(encoding="utf-8").splitlines()

    def region(start, end):
        i = next(n for n, line in enumerate(lines) if line.startswith(start))
        j = next(n for n in range(i, len(lines)) if lines[n].startswith(end))
        return lines[i:j]

    def suffix_in(block, suffix):
        return sum(line.endswith(suffix) for line in block)

    for table, start in ((1, "\tMNIST\t\t\tCIFAR-10"), (2, "Table 1:")):
        block = region(start, f"Table {table}:")
        seen = 0
        for cell in pn.paper_cells(table, "mnist", "plain"):
            parts = []
            for dataset in pn.DATASETS:
                # The row of this MNIST cell: the cells at the same position.
                index = pn.paper_cells(table, "mnist", "plain").index(cell)
                base = pn.paper_cells(table, dataset, "plain")[index]
                ours = pn.paper_cells(table, dataset, "rls")[index]
                assert (base.attack, base.param) == (ours.attack, ours.param)
                parts += [_printed_param(base.param), _fmt(base.value), _fmt(ours.value)]
            assert suffix_in(block, "\t" + "\t".join(parts)) == 1, (table, parts)
            seen += 1
        assert seen == 10
    block = region("Defense\tFGSM", "Table 3:")
    for defense in ("plain", "adp", "rse", "sap", "rls"):
        values = [_fmt(c.value) for c in pn.paper_cells(3, defense=defense)]
        assert suffix_in(block, "\t".join(values)) == 1, defense
    for table, head in ((4, "Model\t#"), (6, "Method\t#")):
        block = region(head, f"Table {table}:")
        rows = collections.OrderedDict()
        for c in pn.paper_cells(table):
            rows.setdefault((c.defense, c.samples), []).append(_fmt(c.value))
        for (_, samples), values in rows.items():
            assert suffix_in(block, f"\t{samples}\t" + "\t".join(values)) == 1
    block = region("Dataset\tStochastic", "Table 5:")
    names = {"mnist": "MNIST", "cifar10": "CIFAR-10", "svhn": "SVHN"}
    for dataset, name in names.items():
        (line,) = [row for row in block if row.startswith(name + "\t")]
        line = line.replace("$", "").replace("\\textbf{", "").replace("}", "")
        line = line.replace("\\pm", "±")
        printed = [" ".join(part.split()) for part in line.split("\t")[1:]]
        cells = [c for d in ("sap", "rse", "adp", "rls")
                 for c in pn.paper_cells(5, dataset, d)]
        assert printed == [_fmt(c.value, 2) + ("" if c.std is None else f" ± {_fmt(c.std, 3)}")
                           for c in cells]
