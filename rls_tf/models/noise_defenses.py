"""Deprecated location of the noise-defense builders: see `rls_tf.defenses.noise_networks`."""

from rls_tf.defenses.noise_networks import PIXEL_SCALE
from rls_tf.defenses.noise_networks import RSE_INIT_STD
from rls_tf.defenses.noise_networks import RSE_INNER_STD
from rls_tf.defenses.noise_networks import build_rse
from rls_tf.defenses.noise_networks import is_relu
from rls_tf.defenses.noise_networks import rse_network
from rls_tf.defenses.noise_networks import sap_network
from rls_tf.defenses.noise_networks import wrap_sap

__all__ = ["PIXEL_SCALE", "RSE_INIT_STD", "RSE_INNER_STD", "build_rse", "is_relu",
           "rse_network", "sap_network", "wrap_sap"]
