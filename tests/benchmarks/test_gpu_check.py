"""Tests of `benchmarks/gpu_check.py` at a tiny size on CPU.

One in-process run (small_cnn of width 4, batch 4, one timed step, float32
and mixed_bfloat16, with and without XLA, K=N=2) is shared by the checks of
its record; the training part runs on the real CIFAR-10 file when
``../shared/data`` holds it and must be recorded as skipped otherwise. That
run times the tiled forward only: tracing is most of its time (about 35 s on
2 idle cores), the loop forward would add about 25 s, and the tiled one is
the one whose XLA variants fail today, so the error path is exercised too.
The loop/tiled ratios are checked on `compute_ratios` directly.
"""

import argparse

import json
import os

import keras
import pytest

from benchmarks import gpu_check  # a folder of scripts, imported as a namespace package

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED_DATA = os.path.normpath(os.path.join(_REPO_ROOT, "..", "shared", "data"))
HAS_CIFAR10 = all(os.path.exists(os.path.join(SHARED_DATA, f))
                  for f in ("cifar10_train_10k.npz", "cifar10_test_1k.npz"))

KINDS = ("train_plain", "train_rls_tiled", "predict_plain", "predict_rls_tiled")


def _tiny_args(output, *extra):
    return ["--backbone=small_cnn", "--backbone_width=4", "--batch_size=4", "--steps=1",
            "--repeats=1", "--warmup=1", "--policies=float32,mixed_bfloat16", "--xla=both",
            "--forwards=tiled", "--num_samples=2", "--eval_samples=2",
            "--serving_backbone=small_cnn", "--serving_width=4", "--serving_calls=2",
            # Budgets far away even on a loaded CI machine (their own tests below).
            "--serving_deadline_s=100000", "--budget_s=100000", "--train_deadline_s=100000",
            f"--data_dir={SHARED_DATA}",
            f"--output={output}", *extra]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    output = str(tmp_path_factory.mktemp("gpu_check") / "out" / "gpu_check.json")
    returned = gpu_check.main(_tiny_args(output, "--train_epochs=1", "--max_train_examples=64",
                                         "--max_test_examples=32"))
    with open(output, encoding="utf-8") as f:
        written = json.load(f)
    return returned, written


def test_record_is_written_and_complete(run):
    returned, written = run
    assert written == json.loads(json.dumps(returned))
    assert written["finished"]
    for key in ("device", "versions", "args", "variants", "ratios", "training"):
        assert key in written


def test_device_is_recorded(run):
    device = run[1]["device"]
    assert device["kind"] in ("cpu", "gpu")
    assert device["cpu_model"]
    if device["kind"] == "gpu":
        assert device["gpus"] and all("name" in g for g in device["gpus"])
    versions = run[1]["versions"]
    assert versions["tensorflow"] and versions["keras"]


def test_every_variant_is_timed_or_fails_with_a_message(run):
    variants = run[1]["variants"]
    expected = {f"{p}/{x}/{k}" for p in ("float32", "mixed_bfloat16")
                for x in ("noxla", "xla") for k in KINDS}
    assert {v["name"] for v in variants} == expected
    for v in variants:
        assert "skipped" not in v, v  # the budget is far away
        if "error" in v:
            assert isinstance(v["error"], str) and v["error"], v
        else:
            assert v["images_per_s"] > 0, v
    # Without XLA the float32 variants are the library's ordinary paths.
    for kind in KINDS:
        entry = next(v for v in variants if v["name"] == f"float32/noxla/{kind}")
        assert "images_per_s" in entry, entry


def test_ratios(run):
    ratios = run[1]["ratios"]
    for key in ("train_rls_tiled_vs_plain", "predict_rls_tiled_vs_plain"):
        assert ratios["float32/noxla"][key] > 0, key
    assert set(ratios) == {"float32/noxla", "float32/xla", "mixed_bfloat16/noxla",
                           "mixed_bfloat16/xla", "xla_vs_noxla", "vs_float32"}
    assert ratios["xla_vs_noxla"]["float32/train_plain"] > 0
    assert ratios["vs_float32"]["mixed_bfloat16/noxla/train_plain"] > 0
    for value in ratios["xla_vs_noxla"].values():
        assert value is None or value > 0


def test_compute_ratios_pairs_the_right_variants():
    args = argparse.Namespace(policies=["float32", "mixed_float16"], xla="both",
                              forwards=["loop", "tiled"])
    seconds = {"train_plain": 1.0, "train_rls_loop": 2.0, "train_rls_tiled": 3.0,
               "predict_plain": 0.5, "predict_rls_loop": 4.0, "predict_rls_tiled": 2.0}
    variants = []
    for policy, slower in (("float32", 1.0), ("mixed_float16", 0.5)):
        for xla, factor in (("noxla", 1.0), ("xla", 0.8)):
            for kind, s in seconds.items():
                entry = {"name": f"{policy}/{xla}/{kind}", "kind": kind,
                         "step_s": s * slower * factor}
                if policy == "mixed_float16" and xla == "xla" and "tiled" in kind:
                    entry = {"name": entry["name"], "kind": kind, "error": "X: failed"}
                variants.append(entry)
    ratios = gpu_check.compute_ratios(variants, args)
    assert ratios["float32/noxla"] == {
        "train_rls_loop_vs_plain": 2.0, "predict_rls_loop_vs_plain": 8.0,
        "train_rls_tiled_vs_plain": 3.0, "predict_rls_tiled_vs_plain": 4.0,
        "train_tiled_vs_loop": 1.5, "predict_tiled_vs_loop": 0.5}
    assert ratios["xla_vs_noxla"]["float32/train_rls_loop"] == 0.8
    assert ratios["xla_vs_noxla"]["mixed_float16/train_rls_tiled"] is None
    assert ratios["mixed_float16/xla"]["train_tiled_vs_loop"] is None
    assert ratios["vs_float32"]["mixed_float16/noxla/predict_plain"] == 0.5


def test_plan_answers_every_question_early():
    args = gpu_check.parse_args(["--policies=float32,mixed_bfloat16,mixed_float16",
                                 "--forwards=loop"])
    groups = list(dict.fromkeys((p, x) for p, x, _ in gpu_check.plan(args)))
    assert groups == [("float32", False), ("mixed_bfloat16", False), ("float32", True),
                      ("mixed_bfloat16", True), ("mixed_float16", False),
                      ("mixed_float16", True)]


def test_training_record(run):
    training = run[1]["training"]
    if not HAS_CIFAR10:
        assert "no" in training["skipped"]
        return
    assert "error" not in training, training
    assert 0.0 <= training["test_accuracy"] <= 1.0
    assert training["test_examples"] == 32
    assert training["wall_s"] > 0


def test_policy_is_restored(run):
    assert keras.mixed_precision.global_policy().name == "float32"


def test_budget_skips_the_rest(tmp_path):
    output = str(tmp_path / "skipped.json")
    record = gpu_check.main(_tiny_args(output, "--policies=float32", "--xla=off",
                                       "--budget_s=1e-9", "--train_epochs=0",
                                       "--serving_backbone=none"))
    assert len(record["variants"]) == len(KINDS)
    assert all(v["skipped"].startswith("budget") for v in record["variants"])
    assert record["training"]["skipped"] == "--train_epochs=0"
    assert record["serving"] == {"skipped": "--serving_backbone=none"}
    assert all(v is None for v in record["ratios"]["float32/noxla"].values())


def test_serving_is_skipped_after_its_deadline(tmp_path):
    args = gpu_check.parse_args(_tiny_args(str(tmp_path / "x.json"), "--serving_deadline_s=10"))
    assert gpu_check.run_serving(args, elapsed=11.0)["skipped"].startswith("the run was 11 s old")


def test_training_is_skipped_after_its_deadline(tmp_path):
    args = gpu_check.parse_args(_tiny_args(str(tmp_path / "x.json"), "--train_deadline_s=10"))
    assert gpu_check.run_training(args, elapsed=11.0)["skipped"].startswith("deadline")


def test_training_is_skipped_without_data(tmp_path):
    args = gpu_check.parse_args(_tiny_args(str(tmp_path / "x.json"),
                                           f"--data_dir={tmp_path / 'absent'}"))
    assert "not a directory" in gpu_check.run_training(args)["skipped"]
    args = gpu_check.parse_args(_tiny_args(str(tmp_path / "x.json"),
                                           f"--data_dir={tmp_path}"))
    assert gpu_check.run_training(args)["skipped"].startswith("no CIFAR-10 data")


@pytest.mark.parametrize("flag, message", [
    ("--xla=sometimes", "--xla='sometimes'"),
    ("--policies=float32,float64", "--policies='float32,float64'"),
    ("--forwards=", "--forwards=''"),
    ("--steps=0", "--steps=0"),
    ("--backbone=resnet1000", "--backbone='resnet1000'"),
    ("--backbone=resnet50", "--backbone_width=4"),
    ("--budget_s=0", "--budget_s=0"),
    ("--train_deadline_s=-1", "--train_deadline_s=-1"),
    ("--backbone_width=0", "--backbone_width=0"),
])
def test_bad_flags_name_the_flag_and_value(flag, message, capsys):
    with pytest.raises(SystemExit):
        gpu_check.parse_args(_tiny_args("x.json", flag))
    assert message in capsys.readouterr().err


def test_error_line_takes_the_reason_of_graph_errors():
    err = RuntimeError("Graph execution error:\n\nDetected at node a/b/DynamicStitch defined "
                       "at (most recent call last):\n<stack traces unavailable>\n"
                       "Reading input as constant from a dynamic tensor is not yet supported.\n"
                       "\t [[{{node a/b/DynamicStitch}}]]\n\ttf2xla conversion failed ...")
    assert gpu_check._error_line(err) == (
        "RuntimeError: Reading input as constant from a dynamic tensor is not yet "
        "supported. (node a/b/DynamicStitch)")


def test_the_serving_paths_are_measured(run):
    returned, written = run
    serving = written["serving"]
    assert serving["backbone"] == "small_cnn" and set(serving["paths"]) == {"plain", "tiled"}
    for key, m in serving["paths"].items():
        assert m["predict_s"] > 0 and m["defend_s"] > 0 and m["saved_model_s"] > 0, key
        assert m["saved_model_latency"]["p50_ms"] > 0
    assert serving["paths"]["tiled"]["eval_forward"] == "tiled"
    assert serving["paths"]["tiled"]["stochastic"]
    assert returned["serving"] == serving
