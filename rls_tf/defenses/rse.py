"""RSE: Random Self-Ensemble (Liu et al., ECCV 2018).

"Towards Robust Neural Networks via Random Self-ensemble": Gaussian noise
layers before the convolutions of a network, on in training AND at test
time; the prediction is the mean softmax of n noisy passes. Transcribed from
the authors' code, ``xuanqing94/RobustNet``, branch ``dev`` @
91130dd775e5ce24f5b98825f250d9bdbb0ad5b8 (code last changed in
223c833c2d04e9d52bac8e402d8a3d31301c8f5a), and their later re-implementation
``xuanqing94/BayesianDefense`` @ c4c0be9b258f40130b40d6a6e009c459666f2722
("BD"):

* Noise layer (dev ``models/layer.py`` l.5-18; BD
  ``models/layers/feat_noise.py`` l.4-17): ``x + n``, ``n ~ N(0, std^2)``
  i.i.d. per element of the whole batch tensor, redrawn at every forward
  pass, no training-mode check (on during attacks and inference), gradient
  straight through. `RSENoise`.
* Placement (dev ``models/vgg_rse.py`` l.31-49, ``models/resnext_rse.py``
  l.30-46, 69, 82; BD ``models/vgg_rse.py`` l.39): noise before EVERY
  convolution, projection-shortcut convolutions included; ``init_std`` on
  the input (before the first convolution), ``inner_std`` before every
  other; none before the classifier. (dev's VGG tests ``i == 1`` and so
  swaps the two for its first two convolutions; BD's ``i == 0`` is the
  intended placement, used here.) The backbones place it with their
  ``pre_conv`` hook (`rls_tf.defenses.noise_networks.rse_network`).
* Training (dev ``main_rse.py`` l.59-144): plain cross-entropy on the noisy
  network: Keras' own ``fit`` of `RSEModel`.
* Inference (dev ``cw.py`` ``ensemble_infer`` l.72-80; ``run_gallery.sh``;
  BD ``acc_under_attack.sh``): the softmax summed over n = 50 noisy passes:
  ``eval_samples=50``.

Noise scales: dev's ``train_rse.sh`` uses init 0.4 / inner 0.1, BD's
``train_rse.sh`` l.4-5 and README 0.2 / 0.1 (the values recommended for a
VGG-like CIFAR-10 network); both on ``ToTensor()`` pixels in [0, 1]. See
`rls_tf.defenses.noise_networks.build_rse` for the defaults and how they map
onto this project's [-1, 1] pixels.
"""

import keras
import tensorflow as tf

from rls_tf.defenses.seeded import SeededNoiseLayer
from rls_tf.defenses.seeded import SeededNoiseModel
from rls_tf.validation import check_float

__all__ = ["RSEModel", "RSENoise", "check_std"]


def check_std(name, value):
    """A noise standard deviation: a finite float >= 0."""
    return check_float(name, value, minimum=0.0)


@keras.saving.register_keras_serializable(package="rls_tf")
class RSENoise(SeededNoiseLayer):
    """Additive Gaussian noise ``x + N(0, std^2)``, i.i.d. per element, always on.

    Args:
        std: standard deviation (>= 0; 0 is the identity), in the units of
            the tensor it is applied to (the network's pixels, [-1, 1], for
            the input; activations for the others).
        **kwargs: base layer arguments (e.g. `name`).
    """

    def __init__(self, std, **kwargs):
        super().__init__(**kwargs)
        self.std = check_std("std", std)

    @property
    def is_random(self):
        return self.std > 0.0

    def apply_block(self, inputs, seed):
        noise = tf.random.stateless_normal(tf.shape(inputs), seed, dtype=inputs.dtype)
        return inputs + tf.cast(self.std, inputs.dtype) * noise

    def get_config(self):
        return {**super().get_config(), "std": self.std}


@keras.saving.register_keras_serializable(package="rls_tf")
class RSEModel(SeededNoiseModel):
    """A network with `RSENoise` before its convolutions (RSE), N-pass inference.

    See `SeededNoiseModel` (draws are stateless seeds) and the module
    docstring (the algorithm and its source). Build one from a backbone with
    `rls_tf.defenses.noise_networks.build_rse`.

    Args:
        network: functional `keras.Model` (images -> probabilities) with at
            least one `RSENoise` layer.
        eval_samples: N, noisy passes averaged at inference (default 50, the
            authors' ``ensemble=50``).
        eval_forward: "loop" or "tiled" (see `SeededNoiseModel`).
        **kwargs: `keras.Model` arguments.
    """

    defense_name = "rse"
    _noise_layer_class = RSENoise

    def __init__(self, network, eval_samples=50, eval_forward="loop", **kwargs):
        super().__init__(network, eval_samples=eval_samples, eval_forward=eval_forward,
                         **kwargs)

    def describe(self):
        return {**super().describe(),
                "noise_std": [float(layer.std) for layer in self.noise_layers]}
