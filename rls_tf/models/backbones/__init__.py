"""Backbone networks built from RLS layers, by name."""

from rls_tf.models.backbones.registry import BACKBONES
from rls_tf.models.backbones.registry import build_network
