"""`Command`: recorded commands edited by flag name, not by text substitution."""

import pytest

from rls_tf.evaluation.commands import Command

RECORDED = ("python attack_eval.py --model_dirs=plain=runs/plain,rls=runs/rls "
            "--data_dir=../shared/data --attacks=fgsm,pgd --num_examples=50 "
            "--output_dir=results/a --seed=0 --num_shards=4 --shard_index=1")


def test_a_recorded_command_round_trips():
    command = Command.parse(RECORDED)
    assert command.to_text() == RECORDED
    assert command.get("attacks") == "fgsm,pgd" and command.get("missing") is None
    assert command.has("model_dirs") and not command.has("model_dir")


def test_edits_by_flag_name():
    command = Command.parse(RECORDED)
    unsharded = command.without("num_shards", "shard_index")
    assert unsharded.to_text() == RECORDED.replace(" --num_shards=4 --shard_index=1", "")
    moved = unsharded.replace(output_dir="results/b", model_dir="ignored: not present")
    assert moved.get("output_dir") == "results/b" and not moved.has("model_dir")
    assert [n for n, _ in moved.flags] == [n for n, _ in unsharded.flags]


def test_from_flags_joins_lists_and_skips_none():
    command = Command.from_flags([("attacks", ["fgsm", "pgd"]), ("preset", None), ("seed", 0)])
    assert command.to_text() == "python attack_eval.py --attacks=fgsm,pgd --seed=0"
    with pytest.raises(ValueError, match="given twice"):
        Command.from_flags([("seed", 0), ("seed", 1)])
