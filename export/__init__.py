"""`python -m export`: writes a trained RLS model as SavedModel and TFLite.

The command-line front end of `rls_tf.export`; see `export/__main__.py`.
"""
