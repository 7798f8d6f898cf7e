"""RLS models: the group-training wrapper and the backbones."""

from rls_tf.models.rls_model import RLSModel
from rls_tf.models.rls_model import TRAIN_FORWARDS
