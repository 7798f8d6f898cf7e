"""Backbone networks built from RLS layers, by name."""

from rls_tf.models.backbones.registry import BACKBONES
from rls_tf.models.backbones.registry import build_network
from rls_tf.models.backbones.registry import check_backbone_options
