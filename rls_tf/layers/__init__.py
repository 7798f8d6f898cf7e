"""Random Layer Sampling layers: M weight copies, one sampled per forward."""

from rls_tf.layers.base import RLSLayer
from rls_tf.layers.batch_normalization import RLSBatchNormalization
from rls_tf.layers.conv2d import RLSConv2D
from rls_tf.layers.conv2d_batch_norm import RLSConv2DBatchNorm
from rls_tf.layers.dense import RLSDense
from rls_tf.layers.sampling import SamplingScope
from rls_tf.layers.sampling import current_scope
from rls_tf.layers.sampling import sampling_scope

__all__ = [
    "RLSLayer",
    "RLSBatchNormalization",
    "RLSConv2D",
    "RLSConv2DBatchNorm",
    "RLSDense",
    "SamplingScope",
    "current_scope",
    "sampling_scope",
]
