"""The recipe ablation script (`benchmarks/recipe_ablation.py`) at its CI size."""

import json
import os

import pytest

from benchmarks import recipe_ablation

DATA_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")


@pytest.mark.skipif(not os.path.exists(os.path.join(DATA_DIR, "cifar10_train_10k.npz")),
                    reason="needs ../shared/data (CIFAR-10 files)")
def test_tiny_grid_trains_records_and_resumes(tmp_path, capsys):
    args = ["--grid=tiny", f"--data_dir={DATA_DIR}", f"--runs_dir={tmp_path / 'runs'}",
            f"--output_dir={tmp_path / 'out'}", "--verbose=0"]
    recipe_ablation.main(args)
    payload = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["variant"] for r in payload["results"]] == list(recipe_ablation.GRIDS["tiny"])
    for record in payload["results"]:
        assert 0.0 <= record["test_accuracy"] <= 1.0 and record["train_seconds"] > 0
        assert record["test_examples"] == 128 and record["epochs"] == 1
    fast, step = payload["results"]
    assert fast["config"]["lr_schedule"] == "onecycle" and step["config"]["lr_schedule"] == "step"
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| r9w4_fast | plain | crossentropy | resnet9 | 4 | 1 | 256 | onecycle |" in table
    # A second run reads the finished variants back instead of training again.
    capsys.readouterr()
    recipe_ablation.main(args)
    assert "r9w4_fast:" not in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == payload


def test_unknown_variant_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        recipe_ablation.main(["--grid=tiny", "--variants=nope",
                              f"--output_dir={tmp_path}"])
