"""``python -m rls_tf.reproduce``: the reproduction command (`rls_tf.cli.reproduce`)."""

from rls_tf.cli.reproduce import run

if __name__ == "__main__":
    run()
