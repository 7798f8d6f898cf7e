"""RLS models: `RLSModel` (group training, N-sample inference), the backbones, run loading.

* `RLSModel` / `build_model`: K sampled models per training step, the mean
  of N at inference (`rls_model`), with `prefix_sharing` for the loop form.
* `backbones`: the networks of RLS layers (`BACKBONES`, `build_network`).
* `load_model_dir`: a ``train.py`` run directory's model and config.

The defense registry lives in `rls_tf.defenses` (RLS is one entry there);
`DEFENSES` / `build_defense` here, `rls_tf.models.defenses` and
`rls_tf.models.noise_defenses` are kept as re-exports of it.
"""

from rls_tf.models.backbones import BACKBONES
from rls_tf.models.backbones import build_network
from rls_tf.models.loading import load_model_dir
from rls_tf.models.rls_model import TRAIN_FORWARDS
from rls_tf.models.rls_model import RLSModel
from rls_tf.models.defenses import DEFENSES
from rls_tf.models.defenses import build_defense

__all__ = ["BACKBONES", "DEFENSES", "RLSModel", "build_defense", "TRAIN_FORWARDS", "build_model",
           "build_network", "load_model_dir"]


def build_model(backbone, num_submodels=2, num_classes=10,
                input_shape=(32, 32, 3), num_samples=3, eval_samples=10,
                train_forward="loop", mu=None, seed=None,
                per_example_sampling=False, weight_decay=0.0):
    """Builds an `RLSModel` around the backbone network called `backbone`.

    Args:
        backbone: one of `BACKBONES` ("small_cnn", "resnet9", "resnet20", "resnet50",
            "vgg16").
        num_submodels: M (1 gives the plain, undefended network).
        num_classes: number of classes.
        input_shape: ``(H, W, C)`` of the images (pixels in [-1, 1]).
        num_samples: K, sampled models per training step.
        eval_samples: N, sampled models averaged at inference.
        train_forward: "loop" or "tiled" (see `RLSModel`).
        mu, seed, per_example_sampling, weight_decay: see `build_network`.

    Returns:
        An uncompiled `RLSModel`.

    Example:

    >>> import rls_tf
    >>> model = rls_tf.models.build_model("small_cnn", num_submodels=2,
    ...                                   input_shape=(28, 28, 1))
    >>> model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
    ...               metrics=["accuracy"], num_samples=3)
    """
    network = build_network(
        backbone, num_submodels=num_submodels, num_classes=num_classes,
        input_shape=input_shape, mu=mu, seed=seed,
        per_example_sampling=per_example_sampling, weight_decay=weight_decay,
    )
    return RLSModel(network, num_samples=num_samples, eval_samples=eval_samples,
                    train_forward=train_forward,
                    name=f"rls_{backbone}")
