"""results.json / results.md / robustness.png."""

import json

from rls_tf.evaluation import report


def test_reports_are_written(tiny_results, tmp_path):
    paths = report.write_reports(tiny_results, str(tmp_path / "out"), command="python x.py")
    payload = json.loads(open(paths["json"], encoding="utf-8").read())
    assert payload["command"] == "python x.py"
    assert payload["config"]["preset"]["name"] == "paper_mnist"
    assert "tensorflow" in json.dumps(payload["environment"])
    assert all("threat_model" in r for r in payload["robust"])
    with open(paths["plot"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    text = open(paths["markdown"], encoding="utf-8").read()
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| Attack | Parameter |"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells == ["Attack", "Parameter",
                     "paper: Baseline", "paper: RLS",
                     "multi_sample[S=2]: Baseline", "multi_sample[S=2]: RLS",
                     "eot[E=3]: Baseline", "eot[E=3]: RLS",
                     "apgd_rand[E=3]: Baseline", "apgd_rand[E=3]: RLS"]
    start = lines.index(header)
    table = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        table.append([c.strip() for c in line.strip("|").split("|")])
    rows = [(r[0], r[1]) for r in table]
    assert rows == [
        ("Clean", "—"),
        ("FGSM", "eps=0.1"), ("FGSM", "eps=0.3"),
        ("PGD", "eps=0.1"), ("PGD", "eps=0.3"),
        ("APGD", "eps=0.1"), ("APGD", "eps=0.3"),
        ("DeepFool", "overshoot=0.02"), ("DeepFool", "overshoot=1"),
        ("C&W-L2", "c=1"), ("C&W-L2", "c=1, kappa=1"),
        ("EAD", "c=10"), ("EAD", "c=10, kappa=1"),
        ("Square", "eps=0.1"), ("Square", "eps=0.3"),
        ("SPSA", "eps=0.1"), ("SPSA", "eps=0.3"),
    ]
    assert all(len(r) == len(cells) for r in table)
    by_row = {(r[0], r[1]): r[2:] for r in table}
    # FGSM under apgd_rand was not run; APGD was.
    assert by_row[("FGSM", "eps=0.1")][6:] == ["—", "—"]
    assert "—" not in by_row[("APGD", "eps=0.1")]
    # kappa rows only exist under eot.
    assert by_row[("C&W-L2", "c=1, kappa=1")][:4] == ["—"] * 4
    # RLS cells carry mean ± std over the repeats; the baseline is evaluated once.
    assert "±" in by_row[("PGD", "eps=0.1")][1] and "±" not in by_row[("PGD", "eps=0.1")][0]
    for section in ("## Minimum-norm attacks", "## Every run", "## Interrater agreement",
                    "## Accuracy (%) against the number of defender samples N", "## Timings",
                    "## Gradient-masking checks", "eps units"):
        assert section in text


def test_nan_becomes_null(tmp_path, tiny_results):
    results = dict(tiny_results)
    results["timings"] = {**results["timings"], "odd": float("nan")}
    paths = report.write_reports(results, str(tmp_path))
    assert json.loads(open(paths["json"], encoding="utf-8").read())["timings"]["odd"] is None
