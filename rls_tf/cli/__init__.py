"""The command lines of rls-tf: thin absl front ends over the library.

* `rls_tf.cli.train`: ``rls-train`` / ``python train.py`` -> `rls_tf.training.train`.
* `rls_tf.cli.export`: ``rls-export`` / ``python -m export`` ->
  `rls_tf.export.export_model_dir`.
* ``rls_tf.cli.attack_eval``: ``rls-attack-eval`` / ``python attack_eval.py``.
* `rls_tf.cli.flags`: the flags they share (defined once, so that every
  command can be imported into one process), per-command defaults, and the
  one-line error reporting they all use.

Each command module defines its flags, a ``main(argv)`` for `absl.app.run`
and a ``run()`` console entry point; the work itself lives in the library.
Nothing is imported here, so importing one command does not define the flags
of the others.
"""
