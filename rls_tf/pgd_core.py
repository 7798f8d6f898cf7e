"""The L-inf PGD update of adversarial training, written once.

Madry et al. 2018's step, the same update `rls_tf.attacks.projected_gradient.pgd`
takes through CleverHans (``fast_gradient_method`` then ``clip_eta``; the
attacks package imports nothing of ``rls_tf``, so it does not call this
module), here as `rls_tf.adversarial.pgd_examples` takes it in a training
step's graph:

* `linf_step`: ``x_adv + step_size * sign(grad)`` (non-finite gradient
  entries count as 0);
* `linf_project`: back onto the eps-ball around the clean `x` and into the
  pixel range, ``clip(clip(x_adv, x - eps, x + eps), lo, hi)``;
* `linf_random_start`: a uniform point of the eps-ball, projected.

Pure TensorFlow ops: eps and step size may be tensors (read at every call
of a traced step). This module imports nothing of ``rls_tf``.

Example:

>>> import tensorflow as tf
>>> x = tf.zeros([1, 2]); grad = tf.constant([[1.0, -2.0]])
>>> linf_project(linf_step(x, grad, 0.5), x, eps=0.3).numpy()
array([[ 0.3, -0.3]], dtype=float32)
"""

import tensorflow as tf

__all__ = ["linf_project", "linf_random_start", "linf_step"]


def linf_step(x_adv, grad, step_size):
    """One signed-gradient ascent step: ``x_adv + step_size * sign(grad)``."""
    grad = tf.where(tf.math.is_finite(grad), grad, tf.zeros_like(grad))
    return x_adv + tf.cast(step_size, x_adv.dtype) * tf.sign(grad)


def linf_project(x_adv, x, eps, clip_min=-1.0, clip_max=1.0):
    """`x_adv` projected onto ``{|v - x|_inf <= eps}`` and ``[clip_min, clip_max]``."""
    eps = tf.cast(eps, x.dtype)
    lower = tf.maximum(x - eps, clip_min)
    upper = tf.minimum(x + eps, clip_max)
    return tf.clip_by_value(x_adv, lower, upper)


def linf_random_start(x, eps, clip_min=-1.0, clip_max=1.0, uniform=None):
    """A uniform start in the eps-ball around `x`, projected into the pixel range.

    Args:
        x: the clean batch.
        eps: the radius.
        clip_min, clip_max: the pixel range.
        uniform: ``shape -> U(-1, 1)`` samples (e.g. a seeded generator's);
            None: ``tf.random.uniform`` (follows the global seed).
    """
    eps = tf.cast(eps, x.dtype)
    if uniform is None:
        noise = tf.random.uniform(tf.shape(x), -1.0, 1.0, dtype=x.dtype)
    else:
        noise = tf.cast(uniform(tf.shape(x)), x.dtype)
    return linf_project(x + eps * noise, x, eps, clip_min, clip_max)
