r"""Evaluates an RLS model and its undefended baseline under adversarial attacks.

Runs FGSM, PGD, APGD, DeepFool, C&W-L2 and EAD under the threat models of
`rls_tf.evaluation.threat_models` (``paper``: the attacker gets one random
sampled model, as in Lee et al. 4.2; ``multi_sample``: the mean of S sampled
models; ``eot``: every gradient averaged over E fresh draws; ``apgd_rand``:
AutoAttack's APGD-CE + APGD-DLR with EOT) and writes ``results.json``,
``results.md`` (the paper's table layout, one column block per threat model)
and ``robustness.png`` into --output_dir. Every robust accuracy is the
defender's (N fresh sampled models), as mean +- std over --repeats draws.

    python attack_eval.py --model_dir=runs/rls --baseline_dir=runs/plain \
        --dataset=mnist --data_dir=../shared/data --preset=paper_mnist \
        --attacks=fgsm,pgd,deepfool,cw,ead,apgd --threat_models=paper,eot \
        --num_examples=1000 --eval_samples=10 --output_dir=results/mnist

**Sharding.** ``--num_shards=S --shard_index=i`` evaluates shard i of the
first --num_examples images (a contiguous run of whole --batch_size batches)
and writes only ``<output_dir>/shard-<i>-of-<S>.json``; once all S shards
are in one directory, ``attack_eval.py --merge=DIR`` (no model needed)
checks that they are the S shards of one evaluation and writes
``results.json``, ``results.md`` and ``robustness.png`` into DIR (or
--output_dir when given): the numbers of one unsharded run with the same
seed (exactly, EOT threat models included, for models with the default
per-batch sampling), timings summed over the shards
(`rls_tf.evaluation.shards`).

    for i in 0 1 2 3; do  # one per machine
      python attack_eval.py --model_dir=runs/rls ... --num_shards=4 --shard_index=$i \
          --output_dir=results/mnist
    done
    python attack_eval.py --merge=results/mnist

This file is a shim: the command is `rls_tf.cli.attack_eval` (also installed
as ``rls-attack-eval``), flag parsing over `rls_tf.evaluation.api.evaluate_dirs`.

The models are the ``model.keras`` files that ``train.py`` writes into its
--model_dir (with ``config.json``, from which --dataset and --data_dir are
taken when not given). Presets hold the paper's per-dataset parameters
(Tables 1-2); eps are applied to the model's [-1, 1] pixels as given
(``--eps_units=unit`` reads them as [0, 1] fractions and doubles them).
"""


from rls_tf.cli.attack_eval import command_line  # noqa: F401  (re-exported)
from rls_tf.cli.attack_eval import evaluate_from_flags  # noqa: F401
from rls_tf.cli.attack_eval import main  # noqa: F401
from rls_tf.cli.attack_eval import run

if __name__ == "__main__":
    run()
