"""The defenses and their registry; every model implements `rls_tf.interface.StochasticClassifier`.

* `registry`: every defense ``train.py --defense`` builds, RLS included
  (its model is `rls_tf.models.RLSModel`), each one entry with its
  parameters (`specs.Param`) and builder; `DEFENSES`, `build_defense`,
  `register_defense`.
* The comparison defenses, one small module each: `ensemble` (the paper's
  base ensemble / a deep ensemble), `adp` (Pang et al. 2019), and the
  seeded-noise defenses: `seeded` (their base: every draw one stateless
  seed), `rse` (Liu et al. 2018) and `sap` (Dhillon et al. 2018); they build
  on the layers, the interface and `rls_tf.randomness` only.
* `noise_networks`: RSE and SAP composed with the backbones.
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
from rls_tf.defenses.registry import DEFENSES
from rls_tf.defenses.registry import build_defense
from rls_tf.defenses.registry import get_defense
from rls_tf.defenses.registry import register_defense
from rls_tf.defenses.registry import unregister_defense
from rls_tf.defenses.specs import DefenseSpec
from rls_tf.defenses.specs import Param

__all__ = ["ADPModel", "DEFENSES", "DefenseSpec", "EnsembleModel", "Param", "RSEModel",
           "RSENoise", "SAP", "SAPModel", "SeededNoiseLayer", "SeededNoiseModel",
           "build_defense", "get_defense", "noise_scope", "register_defense",
           "unregister_defense"]
