"""Training callbacks and run files (re-exports): see `rls_tf.checkpoints` and `rls_tf.atomic`.

The one callback of a run, `AtomicCheckpoint`, and the checkpoint reading
live in `rls_tf.checkpoints`; the atomic file writers in `rls_tf.atomic`.
This module keeps their former import path.
"""

from rls_tf.atomic import current_umask
from rls_tf.atomic import save_model_atomic
from rls_tf.atomic import write_bytes_atomic
from rls_tf.atomic import write_json_atomic
from rls_tf.checkpoints import CHECKPOINT_NAME
from rls_tf.checkpoints import PREVIOUS_NAME
from rls_tf.checkpoints import STATE_NAME
from rls_tf.checkpoints import AtomicCheckpoint
from rls_tf.checkpoints import Checkpoint
from rls_tf.checkpoints import CheckpointError
from rls_tf.checkpoints import find_checkpoints
from rls_tf.checkpoints import keras_file_problem
from rls_tf.checkpoints import latest_checkpoint
from rls_tf.checkpoints import restore_checkpoint

__all__ = ["AtomicCheckpoint", "CHECKPOINT_NAME", "Checkpoint", "CheckpointError",
           "PREVIOUS_NAME", "STATE_NAME", "current_umask", "find_checkpoints",
           "keras_file_problem", "latest_checkpoint", "restore_checkpoint",
           "save_model_atomic", "write_bytes_atomic", "write_json_atomic"]
