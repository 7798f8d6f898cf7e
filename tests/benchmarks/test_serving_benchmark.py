"""`benchmarks/serving_benchmark.py` at a tiny size: it runs, writes its JSON and prints ratios."""

import json

import pytest

from benchmarks import serving_benchmark  # a folder of scripts, imported as a namespace package


def test_tiny_run_writes_every_measurement(tmp_path, capsys):
    out = tmp_path / "serving.json"
    serving_benchmark.main(["--tiny", "--calls=5", "--repeats=1", "--batch_size=8",
                            "--threads=2", "--eval_samples=3", "--tflite", f"--output={out}"])
    results = json.loads(out.read_text())
    assert set(results["models"]) == {"plain", "rls"}
    for m in results["models"].values():
        for key in ("predict_s", "defend_s", "saved_model_s", "tflite_s"):
            assert m[key] > 0
        assert 0 < m["saved_model_latency"]["p50_ms"] <= m["saved_model_latency"]["p99_ms"]
        assert 0 < m["tflite_latency"]["p50_ms"] <= m["tflite_latency"]["p99_ms"]
        assert m["concurrent_requests_per_s"] > 0 and m["concurrent_batch_images_per_s"] > 0
        assert m["images_per_s"]["saved_model"] == pytest.approx(8 / m["saved_model_s"])
        assert m["saved_model_vs_predict"] == pytest.approx(m["saved_model_s"] / m["predict_s"])
        assert m["tflite_vs_predict"] == pytest.approx(m["tflite_s"] / m["predict_s"])
        # Each model ran in its own process: a TF process holds well over 50 MB.
        assert m["peak_rss_mb"] > 50
    assert results["models"]["rls"]["stochastic"] and not results["models"]["plain"]["stochastic"]
    assert results["vs_plain"]["plain"] == {"predict_s": 1.0, "defend_s": 1.0,
                                            "saved_model_s": 1.0, "tflite_s": 1.0}
    assert "| rls |" in capsys.readouterr().out


def test_bad_arguments_are_named():
    with pytest.raises(SystemExit):
        serving_benchmark.parse_args([])  # neither --model_dirs nor --tiny
    with pytest.raises(SystemExit):
        serving_benchmark.parse_args(["--tiny", "--calls=0"])
    with pytest.raises(ValueError, match="NAME=DIR"):
        serving_benchmark.main(["--model_dirs=runs/x"])


def test_the_models_run_the_measured_n_and_forward():
    args = serving_benchmark.parse_args(["--tiny", "--eval_samples=4", "--eval_forward=tiled"])
    model = serving_benchmark._load(2, args)  # pylint: disable=protected-access
    assert model.eval_samples == 4 and model.eval_forward == "tiled"
    with pytest.raises(SystemExit):
        serving_benchmark.parse_args(["--tiny", "--eval_forward=sideways"])
