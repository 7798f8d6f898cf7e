"""Robustness evaluation: threat models, attacks runner, diversity, reports.

The harness behind ``attack_eval.py``:

* `threat_models`: what the attacker sees of a randomised model (``paper``,
  ``multi_sample``, ``eot``, ``apgd_rand``); every number is labelled with it.
* `runner`: attacks x parameters x threat models on a baseline and an RLS
  model; robust accuracy as mean +- std over R repeats of the defender's draw.
* `interrater`: Kuncheva & Whitaker's interrater agreement (paper Table 5).
* `presets`: the paper's per-dataset attack parameters (Tables 1 and 2).
* `report`: ``results.json``, ``results.md`` and ``robustness.png``.
* `shards`: batch-aligned shards of an evaluation and their exact merge.
"""

from rls_tf.evaluation.interrater import correctness_from_outputs
from rls_tf.evaluation.interrater import interrater_agreement
from rls_tf.evaluation.interrater import repeated_interrater_agreement
from rls_tf.evaluation.presets import PRESETS
from rls_tf.evaluation.presets import Preset
from rls_tf.evaluation.presets import get_preset
from rls_tf.evaluation.report import write_reports
from rls_tf.evaluation.runner import ATTACKS
from rls_tf.evaluation.runner import Defender
from rls_tf.evaluation.runner import EvalConfig
from rls_tf.evaluation.runner import run_evaluation
from rls_tf.evaluation.threat_models import THREAT_MODELS
from rls_tf.evaluation.threat_models import ThreatModel
from rls_tf.evaluation.threat_models import make_attacker

__all__ = [
    "ATTACKS",
    "Defender",
    "EvalConfig",
    "PRESETS",
    "Preset",
    "THREAT_MODELS",
    "ThreatModel",
    "correctness_from_outputs",
    "get_preset",
    "interrater_agreement",
    "make_attacker",
    "repeated_interrater_agreement",
    "run_evaluation",
    "write_reports",
]
