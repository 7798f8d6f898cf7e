"""Deprecated: the former home of the interface and its helpers; import from their modules.

* `StochasticClassifier`: `rls_tf.interface`.
* `draw_categorical`, `draw_seeds`, `is_key`, `SeedStream`,
  `training_seeds`: `rls_tf.randomness`.
* `optimizer_step`, `tile_batch`, `track_loss`: `rls_tf.train_steps`.

Kept so that code written against ``rls_tf.defense`` keeps importing.
"""

from rls_tf.interface import StochasticClassifier
from rls_tf.randomness import SeedStream
from rls_tf.randomness import draw_categorical
from rls_tf.randomness import draw_seeds
from rls_tf.randomness import is_key
from rls_tf.randomness import training_seeds
from rls_tf.train_steps import optimizer_step
from rls_tf.train_steps import tile_batch
from rls_tf.train_steps import track_loss

__all__ = ["StochasticClassifier", "draw_categorical", "draw_seeds", "is_key", "SeedStream",
           "optimizer_step", "tile_batch", "track_loss", "training_seeds"]
