"""Check that an exported file gives the same answers as the Keras model."""


from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from kerasdl.inference.batches import collect_predictions


def compare_predictions(
    labels: np.ndarray, reference: np.ndarray, candidate: np.ndarray
) -> dict[str, Any]:
    """Top-1 agreement, both accuracies and the largest probability change.

    Args:
        labels: True class indices.
        reference: The Keras model's probabilities.
        candidate: The exported model's probabilities.

    Returns:
        `num_samples`, `top1_agreement`, `keras_accuracy`, `accuracy`,
        `accuracy_change` (exported minus Keras) and
        `max_abs_probability_difference`.
    """
    labels = np.asarray(labels).astype(int)
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    total = max(len(labels), 1)
    expected, received = reference.argmax(1), candidate.argmax(1)
    correct_reference = int((expected == labels).sum())
    correct_candidate = int((received == labels).sum())
    return {
        "num_samples": len(labels),
        "top1_agreement": float((expected == received).sum()) / total,
        "keras_accuracy": correct_reference / total,
        "accuracy": correct_candidate / total,
        "accuracy_change": (correct_candidate - correct_reference) / total,
        "max_abs_probability_difference": float(np.abs(reference - candidate).max()) if len(labels) else 0.0,
    }


def check_parity(
    reference: Callable[[np.ndarray], np.ndarray],
    candidate: Callable[[np.ndarray], np.ndarray],
    dataset: Iterable,
) -> dict[str, Any]:
    """Compares an exported model with the Keras model on labelled batches.

    Args:
        reference: The Keras model's batch prediction function.
        candidate: The exported model's batch prediction function.
        dataset: Re-iterable batches of `(images, labels)`.

    Returns:
        The dict of `compare_predictions`.

    Example:
    ```python
    check_parity(model.predict_on_batch, TFLiteModel("model.tflite").predict_batch, data.val)
    ```
    """
    labels, expected = collect_predictions(reference, dataset)
    _, received = collect_predictions(candidate, dataset)
    return compare_predictions(labels, expected, received)


def is_rejected(parity: dict[str, Any], max_accuracy_drop: float) -> bool:
    """Whether accuracy fell by more than `max_accuracy_drop` (a fraction)."""
    return parity["keras_accuracy"] - parity["accuracy"] > max_accuracy_drop + 1e-9

