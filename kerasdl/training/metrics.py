"""Training metrics: ROC-AUC of a two-class softmax model during `fit`."""


from __future__ import annotations

import keras

__all__ = ["PositiveClassAUC"]


@keras.saving.register_keras_serializable(package="kerasdl")
class PositiveClassAUC(keras.metrics.AUC):
    """ROC-AUC of a two-class softmax model: the second class's probability
    scored against the labels (class indices or one-hot), as `metrics.json`'s
    `auc` is computed, approximated over `num_thresholds` thresholds.

    Args:
        name: The metric's name; validation logs prefix it with `val_`.
            Defaults to `"auc"`.
        **kwargs: `keras.metrics.AUC`'s other arguments.

    Example:
    ```python
    model.compile("adam", "sparse_categorical_crossentropy", metrics=[PositiveClassAUC()])
    ```
    """

    def __init__(self, name: str = "auc", **kwargs):
        kwargs.setdefault("num_thresholds", 500)
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if len(y_true.shape) == 2 and y_true.shape[-1] == 2:  # one-hot
            y_true = y_true[:, 1]
        y_true = keras.ops.reshape(y_true, (-1,))
        return super().update_state(y_true, y_pred[:, 1], sample_weight=sample_weight)
