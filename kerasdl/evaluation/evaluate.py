"""Evaluate a model on a split and write metrics.json and its pictures."""


from __future__ import annotations

import os
from typing import Any

import numpy as np

from kerasdl._util.files import write_json
from kerasdl._util.paths import check_output_folder
from kerasdl.evaluation.metrics import compute_metrics
from kerasdl.evaluation.plots import (
    plot_confusion_matrix,
    plot_misclassified,
    plot_precision_recall,
    plot_roc,
)


def write_evaluation(
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names: list[str],
    output_dir: str | os.PathLike,
    *,
    paths: list[str] | None = None,
    threshold: float | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Computes metrics and writes `metrics.json` and the pictures to a folder.

    Pictures: `confusion_matrix.png`; for two classes `roc.png` and
    `precision_recall.png`; with `paths`, `misclassified.png`.

    Args:
        labels: True class indices.
        probabilities: Predicted probabilities.
        class_names: Class names by index.
        output_dir: The folder to write into (created if needed).
        paths: The image files behind `labels`, for the grid of wrongly
            predicted images. Defaults to `None` (no grid).
        threshold: Two-class decision threshold (see `compute_metrics`).
            Defaults to `None`.
        extra: More keys for metrics.json (e.g. `skipped_files`).
            Defaults to `None`.

    Returns:
        The metrics dict as written.

    Example:
    ```python
    labels, probabilities = collect_predictions(model.predict, data.val)
    write_evaluation(labels, probabilities, data.class_names, "evaluation/")
    ```
    """
    output_dir = check_output_folder(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    metrics = compute_metrics(labels, probabilities, class_names, threshold=threshold)
    metrics.update(extra or {})
    plot_confusion_matrix(metrics["confusion_matrix"], class_names, output_dir / "confusion_matrix.png")
    if len(class_names) == 2 and metrics.get("auc") is not None:
        positives, scores = np.asarray(labels) == 1, np.asarray(probabilities)[:, 1]
        chosen = metrics["threshold"]["threshold"] if metrics.get("threshold") else None
        plot_roc(positives, scores, output_dir / "roc.png", positive_class=class_names[1], threshold=chosen)
        plot_precision_recall(positives, scores, output_dir / "precision_recall.png",
                              positive_class=class_names[1])
    if paths is not None:
        metrics["misclassified_shown"] = plot_misclassified(
            list(paths), np.asarray(labels), probabilities, class_names, output_dir / "misclassified.png"
        )
    write_json(metrics, output_dir / "metrics.json")
    return metrics

