"""Adversarial attacks for evaluating (randomised) classifiers.

Every attack takes ``model_fn(x) -> logits``: x float32 ``[B, H, W, C]`` in
``[clip_min, clip_max]`` (default [-1, 1], the project's pixel range), logits
``[B, K]``, or ``[E, B, K]`` for E stochastic draws of a randomised model
(Expectation over Transformation, Athalye et al. 2018), and the true labels
``y`` (int ``[B]``, required). They return the adversarial batch as a float32
``tf.Tensor``; success is measured by the caller against the model.

| attack | threat model | implementation |
|---|---|---|
| ``fgsm`` | L-inf, one step | CleverHans 4.0 TF2 ``fast_gradient_method`` |
| ``pgd`` | L-inf, iterative | CleverHans 4.0 TF2 (FGM steps + ``clip_eta``) |
| ``apgd`` | L-inf, Auto-PGD, CE or DLR | own TensorFlow code |
| ``deepfool`` | L2, minimum norm | Foolbox 3.3 ``L2DeepFoolAttack`` |
| ``cw_l2`` | L2, minimum norm | Foolbox 3.3 ``L2CarliniWagnerAttack`` |
| ``ead`` | L1 (elastic net), minimum norm | Foolbox 3.3 ``EADAttack`` |
| ``mi_fgsm`` | L-inf, momentum (transfer) | own TensorFlow code |
| ``square`` | L-inf, score-based (gradient-free) | own TensorFlow code |
| ``spsa`` | L-inf, gradient-free (finite differences) | own TensorFlow code |
| ``arc`` | L-inf, randomised ensembles (fixed members) | own TensorFlow code |

EOT: FGSM, PGD and APGD average the per-draw loss over the E axis (one call,
E samples per gradient). DeepFool, C&W and EAD use the single decision
function ``log(mean_e softmax(logits_e))``. `REGISTRY` (``registry.py``) lists
every attack once with what the evaluation needs (title, kind, seeding,
its own parameters as `Param`s (``params.py``), budgets, access, loss stages, how its table rows are built);
`register` adds one from outside the package. The registry knows no threat
model: `rls_tf.evaluation.threat_models` decides which attacks run where. Randomness in ``model_fn`` must
come from TF ops, since gradients are taken inside ``tf.function``.

This package depends on no other part of ``rls_tf``.
"""

from rls_tf.attacks._common import decision_logits
from rls_tf.attacks.arc import arc
from rls_tf.attacks.auto_pgd import apgd
from rls_tf.attacks.auto_pgd import apgd_checkpoints
from rls_tf.attacks.carlini_wagner import cw_l2
from rls_tf.attacks.deep_fool import deepfool
from rls_tf.attacks.elastic_net import ead
from rls_tf.attacks.fast_gradient import fgsm
from rls_tf.attacks.momentum import mi_fgsm
from rls_tf.attacks.norms import l1_distance
from rls_tf.attacks.norms import l2_distance
from rls_tf.attacks.norms import linf_distance
from rls_tf.attacks.projected_gradient import pgd
from rls_tf.attacks.spsa import spsa
from rls_tf.attacks.square import square

from rls_tf.attacks.params import Param
from rls_tf.attacks.registry import ATTACK_NAMES
from rls_tf.attacks.registry import BUDGETS
from rls_tf.attacks.registry import REGISTRY
from rls_tf.attacks.registry import AttackSetting
from rls_tf.attacks.registry import AttackSpec
from rls_tf.attacks.registry import attack_titles
from rls_tf.attacks.registry import get_attack
from rls_tf.attacks.registry import register
from rls_tf.attacks.registry import unregister

# The attack functions by their Python names (``cw_l2``), for direct use;
# the harness uses `REGISTRY` (names as on the command line: ``cw``).
ATTACKS = {spec.function.__name__: spec.function for spec in REGISTRY.values()}

__all__ = [
    "ATTACKS",
    "ATTACK_NAMES",
    "AttackSetting",
    "AttackSpec",
    "BUDGETS",
    "Param",
    "REGISTRY",
    "attack_titles",
    "get_attack",
    "register",
    "unregister",
    "apgd",
    "apgd_checkpoints",
    "arc",
    "cw_l2",
    "decision_logits",
    "deepfool",
    "ead",
    "fgsm",
    "l1_distance",
    "l2_distance",
    "linf_distance",
    "mi_fgsm",
    "pgd",
    "spsa",
    "square",
]
