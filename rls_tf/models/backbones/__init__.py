"""Backbone networks built from RLS layers, by name: one `BackboneSpec` each in the registry."""

from rls_tf.models.backbones.registry import BACKBONE_SPECS
from rls_tf.models.backbones.registry import BACKBONES
from rls_tf.models.backbones.registry import backbones_with_option
from rls_tf.models.backbones.registry import build_network
from rls_tf.models.backbones.registry import check_backbone_options
from rls_tf.models.backbones.registry import get_backbone_spec
from rls_tf.models.backbones.registry import register_backbone
from rls_tf.models.backbones.registry import unregister_backbone
from rls_tf.models.backbones.specs import BackboneSpec
