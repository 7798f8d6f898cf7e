"""Reproduction of the paper's tables: suites, a resumable runner, the report.

`load_suite` reads a built-in suite (`SUITES`: smoke, cpu, paper) or a suite
JSON file, checked against the registries; `reproduce` trains (with
`rls_tf.training.train`, train.py's code path), evaluates (with
`rls_tf.evaluation.api.evaluate_dirs`, attack_eval.py's) and writes the report
(`report.write_report`), stage by stage, skipping finished stages.
`paper_numbers` holds the paper's printed numbers of Tables 1-6.

This package sits above training and evaluation; only the CLI
(`rls_tf.cli.reproduce`) imports it.
"""

from rls_tf.reproduction.runner import plan
from rls_tf.reproduction.runner import reproduce
from rls_tf.reproduction.suites import SUITES
from rls_tf.reproduction.suites import EvalStage
from rls_tf.reproduction.suites import Suite
from rls_tf.reproduction.suites import TrainStage
from rls_tf.reproduction.suites import load_suite

__all__ = ["EvalStage", "SUITES", "Suite", "TrainStage", "load_suite", "plan", "reproduce"]
