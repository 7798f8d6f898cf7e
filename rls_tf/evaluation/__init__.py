"""Robustness evaluation: threat models, the attack runner, diversity, reports.

The harness behind ``attack_eval.py``; `evaluate` (also named
`evaluate_dirs`) is its entry point: trained run directories, or models from
elsewhere (a ``.keras`` file, a SavedModel, a `keras.Model`; see
`rls_tf.models.external`), in; ``results.json`` / ``results.md`` out.

* `api`: `evaluate`, `merge_dir` (shards) and `combine_dirs` (runs).
* `threat_models`: the registry of threat models (`ThreatModelSpec`: what
  the attacker sees of a randomised classifier, which attacks it runs and
  how; ``paper``, ``multi_sample``, ``eot``, ``apgd_rand``, ``transfer``,
  ``arc``); every number is labelled with one. `attackers` builds the
  attacker's ``model_fn``s.
* `runner`: attacks x parameters x threat models on any number of models
  (defenses seen as `rls_tf.interface.StochasticClassifier`); robust accuracy
  as mean +- std over R repeats of the defender's draw. `config`,
  `defender`, `crafting` and `records` are its parts; the attacks come from
  `rls_tf.attacks.registry`.
* `interrater`: Kuncheva & Whitaker's interrater agreement (paper Table 5).
* `presets`: the paper's per-dataset attack parameters (Tables 1 and 2).
* `masking`: gradient-masking checks computed from the results.
* `report`: ``results.json``, ``results.md`` and ``robustness.png``.
* `shards` and `combine`: batch-aligned shards of an evaluation and their
  exact merge; evaluations of other models on the same protocol combined.
"""

from rls_tf.evaluation.api import combine_dirs
from rls_tf.evaluation.api import evaluate
from rls_tf.evaluation.api import evaluate_dirs
from rls_tf.evaluation.api import merge_dir
from rls_tf.evaluation.interrater import correctness_from_outputs
from rls_tf.evaluation.interrater import interrater_agreement
from rls_tf.evaluation.interrater import repeated_interrater_agreement
from rls_tf.evaluation.presets import PRESETS
from rls_tf.evaluation.presets import Preset
from rls_tf.evaluation.presets import get_preset
from rls_tf.evaluation.report import write_reports
from rls_tf.evaluation.runner import ATTACK_NAMES
from rls_tf.evaluation.runner import Defender
from rls_tf.evaluation.runner import EvalConfig
from rls_tf.evaluation.runner import run_evaluation
from rls_tf.evaluation.threat_models import THREAT_MODEL_REGISTRY
from rls_tf.evaluation.threat_models import THREAT_MODELS
from rls_tf.evaluation.threat_models import ThreatModel
from rls_tf.evaluation.threat_models import ThreatModelSpec
from rls_tf.evaluation.threat_models import get_threat_model
from rls_tf.evaluation.threat_models import make_attacker

__all__ = [
    "ATTACK_NAMES",
    "Defender",
    "EvalConfig",
    "PRESETS",
    "Preset",
    "THREAT_MODELS",
    "THREAT_MODEL_REGISTRY",
    "ThreatModel",
    "ThreatModelSpec",
    "combine_dirs",
    "correctness_from_outputs",
    "evaluate",
    "evaluate_dirs",
    "get_preset",
    "get_threat_model",
    "interrater_agreement",
    "make_attacker",
    "merge_dir",
    "repeated_interrater_agreement",
    "run_evaluation",
    "write_reports",
]
