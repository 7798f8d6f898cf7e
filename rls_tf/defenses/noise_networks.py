"""The noise defenses on the backbones: RSE networks and SAP wraps of plain models.

`rls_tf.defenses.rse` / `rls_tf.defenses.sap` own the layers and the
models; this module only composes them with the backbones, through
`build_network`'s hooks (the registry, `rls_tf.defenses.registry`, imports
it lazily: the backbones import the layers, not the defenses):

* `rse_network` / `build_rse`: a backbone with `RSENoise` before every
  convolution (``pre_conv`` hook), M=1 layers, an `RSEModel`.
* `sap_network`: a backbone with `SAP` after every ReLU (``post_relu``
  hook); `wrap_sap`: the same network made from a TRAINED plain model (an
  `RLSModel` with M=1), its weights copied, no fine-tuning (Dhillon et al.).

Example:

>>> from rls_tf.defenses.noise_networks import build_rse, wrap_sap
>>> rse = build_rse("small_cnn", input_shape=(28, 28, 1))
>>> rse.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
>>> # rse.fit(train_ds, epochs=3)
>>> # sap = wrap_sap(trained_plain_model)      # eval_samples=100
"""

import keras

from rls_tf.defenses.rse import RSEModel
from rls_tf.defenses.rse import RSENoise
from rls_tf.defenses.rse import check_std
from rls_tf.defenses.sap import SAP
from rls_tf.defenses.sap import SAPModel
from rls_tf.defenses.sap import check_frac
from rls_tf.models.backbones import build_network
from rls_tf.models.rls_model import RLSModel
from rls_tf.validation import check_int

__all__ = ["PIXEL_SCALE", "RSE_INIT_STD", "RSE_INNER_STD", "build_rse", "is_relu",
           "rse_network", "sap_network", "wrap_sap"]

# This project's pixels are x / 127.5 - 1, in [-1, 1]: twice the [0, 1] range of
# the RSE authors' ToTensor() pixels, so a pixel-noise std doubles.
PIXEL_SCALE = 2.0

# RSE's noise stds in the authors' units ([0, 1] pixels for the input noise):
# xuanqing94/BayesianDefense @ c4c0be9b train_rse.sh l.4-5 / README l.44-45
# (0.2 / 0.1, also the value its acc_under_attack.py hard-codes for VGG16);
# RobustNet dev's train_rse.sh uses 0.4 / 0.1.
RSE_INIT_STD = 0.2
RSE_INNER_STD = 0.1


def _noise_name(name):
    return None if name is None else f"{name}_noise"


def rse_network(backbone, num_classes=10, input_shape=(32, 32, 3), init_std=RSE_INIT_STD,
                inner_std=RSE_INNER_STD, weight_decay=0.0, seed=None, **backbone_options):
    """The functional backbone with `RSENoise` before every convolution.

    Noise before the first convolution (on the input image) has std
    ``PIXEL_SCALE * init_std``: `init_std` is in the authors' [0, 1] pixel
    units and these pixels span [-1, 1]. Noise before every other
    convolution, projection shortcuts included, has std `inner_std`
    unchanged: it is added to activations that follow a batch normalization
    (conv-BN-ReLU, or a residual sum of such), whose scale does not depend on
    the pixel range (a [0, 1] network and its [-1, 1] twin, first kernel
    halved, have the same activations), so the authors' value applies as is.

    Args:
        backbone: one of `rls_tf.models.BACKBONES`.
        num_classes, input_shape, weight_decay: see `build_network`.
        init_std: input noise std in [0, 1] pixel units (>= 0; default 0.2,
            BayesianDefense's; RobustNet dev used 0.4).
        inner_std: std of the noise before the other convolutions (>= 0;
            default 0.1, both repos).
        seed: `build_network`'s seed (its M=1 layers draw nothing; the
            noise itself is never seeded: a seeded noise defense would be
            predictable).
        **backbone_options: further options of the backbone's builder
            (e.g. ``width`` of ``small_cnn``).

    Returns:
        A functional `keras.Model` with one `RSENoise` per convolution.
    """
    init = PIXEL_SCALE * check_std("init_std", init_std)
    inner = check_std("inner_std", inner_std)

    def pre_conv(index, name):
        return RSENoise(init if index == 0 else inner, name=_noise_name(name))

    return build_network(backbone, num_submodels=1, num_classes=num_classes,
                         input_shape=input_shape, seed=seed, weight_decay=weight_decay,
                         pre_conv=pre_conv, **backbone_options)


def build_rse(backbone, num_classes=10, input_shape=(32, 32, 3), init_std=RSE_INIT_STD,
              inner_std=RSE_INNER_STD, eval_samples=50, weight_decay=0.0, seed=None,
              **backbone_options):
    """An uncompiled `RSEModel` on `backbone` (see `rse_network`).

    Args:
        eval_samples: N, noisy passes averaged at inference (default 50,
            the authors' ``ensemble=50``).
        Others: see `rse_network`.

    Returns:
        `RSEModel` named ``rse_<backbone>``; train it with ``compile(optimizer,
        loss="sparse_categorical_crossentropy")`` and `fit` (cross-entropy of
        the noisy network, the authors' training).
    """
    eval_samples = check_int("eval_samples", eval_samples)
    network = rse_network(backbone, num_classes=num_classes, input_shape=input_shape,
                          init_std=init_std, inner_std=inner_std, weight_decay=weight_decay,
                          seed=seed, **backbone_options)
    return RSEModel(network, eval_samples=eval_samples, name=f"rse_{backbone}")


def _sap_name(name):
    return None if name is None else f"{name}_sap"


def sap_network(backbone, num_classes=10, input_shape=(32, 32, 3), frac=1.0,
                weight_decay=0.0, seed=None, **backbone_options):
    """The functional backbone (M=1) with `SAP` after every ReLU.

    The same network `wrap_sap` makes of a trained plain model of this
    backbone (same layers, names and weight order). Arguments as in
    `rse_network`; `frac` in (0, 1], see `rls_tf.defenses.sap.SAP`.
    """
    frac = check_frac(frac)

    def post_relu(index, name):  # pylint: disable=unused-argument
        return SAP(frac, name=_sap_name(name))

    return build_network(backbone, num_submodels=1, num_classes=num_classes,
                         input_shape=input_shape, seed=seed, weight_decay=weight_decay,
                         post_relu=post_relu, **backbone_options)


def is_relu(layer):
    """Whether `layer`'s output is a plain ReLU (where SAP goes).

    A `keras.layers.ReLU` without cap, slope or threshold, or any layer
    whose ``activation`` is ``relu`` (`RLSConv2DBatchNorm`, `RLSDense`,
    ``Activation("relu")``, ``Dense(..., activation="relu")``).
    """
    if isinstance(layer, keras.layers.ReLU):
        return (layer.max_value is None and float(layer.negative_slope) == 0.0
                and float(layer.threshold) == 0.0)
    return getattr(layer, "activation", None) is keras.activations.relu


def wrap_sap(base, frac=1.0, eval_samples=100):
    """SAP on a trained plain model: its network with `SAP` after every ReLU.

    The base network is cloned (`keras.models.clone_model`, the same layers
    and names), an `SAP` layer (named ``<layer>_sap``) is inserted after
    every layer whose output is a ReLU (`is_relu`), and the base weights are
    copied (``set_weights``; SAP has none). No fine-tuning (Dhillon et al.
    apply SAP to a trained network); the base model is not changed.

    Args:
        base: a trained plain `rls_tf.models.RLSModel`: every RLS layer with
            M=1 (``build_defense("plain", ...)``, ``build_model(...,
            num_submodels=1)``), with a functional network.
        frac: SAP's fraction in (0, 1] (default 1.0, the official operator's).
        eval_samples: N, stochastic passes averaged at inference (default
            100, the paper's evaluation).

    Returns:
        A `SAPModel` named ``sap_<network name>``.

    Raises:
        ValueError: `base` is not a plain RLSModel, has no ReLU, or a bad
            `frac` / `eval_samples` (each message says what was received).
    """
    frac = check_frac(frac)
    eval_samples = check_int("eval_samples", eval_samples)
    if not isinstance(base, RLSModel):
        raise ValueError(
            "`base` must be a trained plain model: an RLSModel whose RLS layers all have "
            "M=1 (e.g. build_defense('plain', ...)). "
            f"Received: base of type {type(base).__name__}")
    multi = {layer.name: layer.num_submodels for layer in base.rls_layers
             if layer.num_submodels != 1}
    if multi:
        raise ValueError(
            "`base` must be a plain model (every RLS layer with M=1); SAP wraps one "
            f"network, not an ensemble. Received: base with num_submodels="
            f"{base.num_submodels} (layers {multi})")
    network = base.network
    if not any(is_relu(layer) for layer in network._flatten_layers(include_self=False)):
        raise ValueError("`base` has no ReLU to prune after. Received: network "
                         f"{network.name!r} with layers {[layer.name for layer in network.layers]}")

    def call_function(layer, *args, **kwargs):
        outputs = layer(*args, **kwargs)
        if is_relu(layer):
            outputs = SAP(frac, name=_sap_name(layer.name))(outputs)
        return outputs

    clone = keras.models.clone_model(network, call_function=call_function)
    clone.set_weights(network.get_weights())
    return SAPModel(clone, eval_samples=eval_samples, name=f"sap_{network.name}")
