"""`benchmarks/serving_benchmark.py` at a tiny size: it runs, writes its JSON and prints ratios."""

import importlib.util
import json
import os

import pytest

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load_script():
    # benchmarks/ is a folder of scripts, not a package.
    path = os.path.join(_REPO_ROOT, "benchmarks", "serving_benchmark.py")
    spec = importlib.util.spec_from_file_location("serving_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


serving_benchmark = _load_script()


def test_tiny_run_writes_every_measurement(tmp_path, capsys):
    out = tmp_path / "serving.json"
    serving_benchmark.main(["--tiny", "--calls=5", "--repeats=1", "--batch_size=8",
                            "--threads=2", "--eval_samples=3", f"--output={out}"])
    results = json.loads(out.read_text())
    assert set(results["models"]) == {"plain", "rls"}
    for m in results["models"].values():
        assert m["predict_s"] > 0 and m["saved_model_s"] > 0 and m["defend_s"] > 0
        assert 0 < m["saved_model_latency"]["p50_ms"] <= m["saved_model_latency"]["p99_ms"]
        assert m["concurrent_requests_per_s"] > 0
        assert m["saved_model_vs_predict"] == pytest.approx(m["saved_model_s"] / m["predict_s"])
    assert results["models"]["rls"]["stochastic"] and not results["models"]["plain"]["stochastic"]
    assert results["vs_plain"]["plain"] == {"predict_s": 1.0, "defend_s": 1.0,
                                            "saved_model_s": 1.0}
    assert "| rls |" in capsys.readouterr().out


def test_bad_arguments_are_named():
    with pytest.raises(SystemExit):
        serving_benchmark.parse_args([])  # neither --model_dirs nor --tiny
    with pytest.raises(SystemExit):
        serving_benchmark.parse_args(["--tiny", "--calls=0"])
    with pytest.raises(ValueError, match="NAME=DIR"):
        serving_benchmark.main(["--model_dirs=runs/x"])
