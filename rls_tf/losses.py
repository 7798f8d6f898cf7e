"""Group losses on the mean prediction of K sampled models."""

import keras

from rls_tf.validation import check_float

__all__ = ["GroupCrossEntropy", "GroupMSE"]


@keras.saving.register_keras_serializable(package="rls_tf")
class GroupMSE(keras.losses.Loss):
    """Squared error between one-hot labels and the mean prediction (eq. 7).

    The paper minimises ``MSE(F | x) = (y - F(x))^2`` with ``F`` the mean of
    the K sampled models' softmax outputs; by eq. 7 this is the samples'
    mean MSE minus their diversity. Labels are class indices (sparse), as
    with ``sparse_categorical_crossentropy``; the squared error is summed
    over classes.

    Example:

    >>> import numpy as np
    >>> round(float(GroupMSE()(np.array([1]), np.array([[0.2, 0.8]]))), 4)
    0.08
    """

    def __init__(self, name="group_mse", reduction="sum_over_batch_size",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        y_true = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
        one_hot = keras.ops.one_hot(y_true, keras.ops.shape(y_pred)[-1],
                                    dtype=y_pred.dtype)
        return keras.ops.sum(keras.ops.square(one_hot - y_pred), axis=-1)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="rls_tf")
class GroupCrossEntropy(keras.losses.Loss):
    """Cross-entropy of the mean prediction with label smoothing.

    Labels are class indices (sparse); the target is ``(1 - s) *
    one_hot(y) + s / K`` for ``label_smoothing`` s, exactly as
    `keras.losses.CategoricalCrossentropy(label_smoothing=s)` on one-hot
    labels (Keras' sparse cross-entropy has no smoothing). With s = 0 it is
    ``sparse_categorical_crossentropy``.

    Args:
        label_smoothing: s in ``[0, 1)``.

    Example:

    >>> import numpy as np
    >>> loss = GroupCrossEntropy(label_smoothing=0.1)
    >>> round(float(loss(np.array([1]), np.array([[0.2, 0.8]]))), 4)
    0.2925
    """

    def __init__(self, label_smoothing=0.0, name="group_crossentropy",
                 reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = check_float("label_smoothing", label_smoothing, minimum=0.0,
                                           maximum=1.0, max_open=True)

    def call(self, y_true, y_pred):
        y_true = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
        one_hot = keras.ops.one_hot(y_true, keras.ops.shape(y_pred)[-1],
                                    dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {"label_smoothing": self.label_smoothing, "name": self.name,
                "reduction": self.reduction, "dtype": self.dtype}
