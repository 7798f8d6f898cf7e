"""The comparison defenses, each implementing `rls_tf.defense.StochasticClassifier`.

One small module each: `ensemble` (the paper's base ensemble / a deep
ensemble), `adp` (Pang et al. 2019), and the seeded-noise defenses:
`seeded` (their base: every draw one stateless seed), `rse` (Liu et al.
2018) and `sap` (Dhillon et al. 2018). They
build on the layers and the interface only; `rls_tf.models.defenses` (the
registry behind ``train.py --defense``) composes them with the backbones.
"""

from rls_tf.defenses.adp import ADPModel
from rls_tf.defenses.ensemble import EnsembleModel
from rls_tf.defenses.rse import RSEModel
from rls_tf.defenses.rse import RSENoise
from rls_tf.defenses.sap import SAP
from rls_tf.defenses.sap import SAPModel
from rls_tf.defenses.seeded import SeededNoiseLayer
from rls_tf.defenses.seeded import SeededNoiseModel
from rls_tf.defenses.seeded import noise_scope

__all__ = ["ADPModel", "EnsembleModel", "RSEModel", "RSENoise", "SAP", "SAPModel",
           "SeededNoiseLayer", "SeededNoiseModel", "noise_scope"]
