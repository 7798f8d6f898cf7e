"""ADP: Adaptive Diversity Promoting regularisation of an ensemble (Pang et al. 2019).

Pang, Xu, Du, Chen, Zhu, "Improving Adversarial Robustness via Promoting
Ensemble Diversity", ICML 2019. Transcribed from the authors' code,
`P2333/Adaptive-Diversity-Promoting` at commit
6e4dfe0b700f275ed6882fd30ba2f8425939bec7, ``utils.py`` (``Entropy``,
``Ensemble_Entropy``, ``log_det``, ``Loss_withEE_DPP``, lines 42-107): per
example,

    loss = sum_i CE(y, p_i) - alpha * H(mean_i p_i) - beta * log det(G + 1e-6 I)

* ``CE`` on each member's softmax (Keras' clipping to [1e-7, 1 - 1e-7]);
* ``H(p) = -sum_c p_c log(p_c + 1e-20)``, natural log, of the members' MEAN
  prediction (the ensemble entropy);
* ``G`` the ``M x M`` Gram matrix of the members' *non-maximal predictions*:
  each member's softmax with the TRUE-label entry removed (not the argmax),
  L2-normalised (no epsilon, as upstream); ``log det`` through a Cholesky
  factorisation.

The batch loss is the mean over examples; the members' weight decay is added
once. ``alpha = beta = 0`` is exactly the base ensemble's loss (upstream
special-cases it; so do we, which also avoids computing the log-det).
Defaults ``alpha=2, beta=0.5`` and 3 members are the README's CIFAR-10
command of the authors' code (their flag defaults are 1.0 / 0.5 / 2
members). Inference: the mean of the members' softmax (deterministic), as
upstream (``keras.layers.Average`` of the members).
"""

import keras
import tensorflow as tf

from rls_tf.defenses.ensemble import EnsembleModel
from rls_tf.defenses.ensemble import member_cross_entropy
from rls_tf.validation import check_float

__all__ = ["DEFAULT_ALPHA", "DEFAULT_BETA", "ADPModel", "adp_loss_terms", "DET_OFFSET", "LOG_OFFSET"]

DET_OFFSET = 1e-6
LOG_OFFSET = 1e-20
# Pang et al.'s defaults (upstream README); the registry's adp_alpha / adp_beta read them.
DEFAULT_ALPHA = 2.0
DEFAULT_BETA = 0.5


def adp_loss_terms(y, probs, alpha, beta, label_smoothing=0.0):
    """Per-example ADP loss ``[B]`` from the members' softmax ``probs [M, B, K]``.

    ``label_smoothing`` smooths the members' cross-entropy targets only.
    """
    loss = tf.reduce_sum(member_cross_entropy(y, probs, label_smoothing), axis=0)
    if alpha == 0 and beta == 0:
        return loss
    if alpha:
        mean = tf.reduce_mean(probs, axis=0)
        entropy = -tf.reduce_sum(mean * tf.math.log(mean + LOG_OFFSET), axis=-1)
        loss = loss - alpha * entropy
    if beta:
        num_members = probs.shape[0]
        num_classes = probs.shape[-1]
        y = tf.cast(tf.reshape(y, [-1]), tf.int32)
        keep = tf.logical_not(tf.cast(tf.one_hot(y, num_classes), tf.bool))  # [B, K]
        per_example = tf.transpose(probs, [1, 0, 2])  # [B, M, K]
        keep = tf.broadcast_to(keep[:, None, :], tf.shape(per_example))
        non_max = tf.reshape(tf.boolean_mask(per_example, keep),
                             [-1, num_members, num_classes - 1])
        non_max = non_max / tf.norm(non_max, axis=-1, keepdims=True)
        gram = tf.matmul(non_max, non_max, transpose_b=True)
        eye = tf.eye(num_members, dtype=gram.dtype)[None]
        loss = loss - beta * tf.linalg.logdet(gram + DET_OFFSET * eye)
    return loss


@keras.saving.register_keras_serializable(package="rls_tf")
class ADPModel(EnsembleModel):
    """An ensemble trained with the ADP regulariser (see the module docstring).

    Args:
        members: at least 2 member networks (images -> softmax).
        alpha: weight of the ensemble entropy (>= 0; None: `DEFAULT_ALPHA`, upstream
            README's 2).
        beta: weight of the log-det diversity term (>= 0; None: `DEFAULT_BETA`, upstream
            0.5).
        **kwargs: `keras.Model` arguments.
    """

    defense_name = "adp"

    def __init__(self, members, alpha=None, beta=None, **kwargs):
        super().__init__(members, **kwargs)
        self.alpha = check_float("alpha", DEFAULT_ALPHA if alpha is None else alpha, minimum=0.0)
        self.beta = check_float("beta", DEFAULT_BETA if beta is None else beta, minimum=0.0)

    def member_loss_terms(self, y, probs):
        return adp_loss_terms(y, probs, self.alpha, self.beta, self.label_smoothing)

    def describe(self):
        return {**super().describe(), "alpha": self.alpha, "beta": self.beta}

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta}
