"""Deprecated location of the defense registry: see `rls_tf.defenses.registry`.

Kept so that ``from rls_tf.models.defenses import build_defense`` (and
``DEFENSES``, ``DefenseSpec``, ``get_defense``) keep working.
"""

from rls_tf.defenses.registry import DEFENSES
from rls_tf.defenses.registry import DefenseSpec
from rls_tf.defenses.registry import build_defense
from rls_tf.defenses.registry import get_defense

__all__ = ["DEFENSES", "DefenseSpec", "build_defense", "get_defense"]
