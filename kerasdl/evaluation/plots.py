"""The evaluation's pictures: curves, confusion matrix, ROC, PR and wrong images."""


from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from kerasdl._util.plotting import pyplot, save_figure, shortened
from kerasdl.evaluation.metrics import (
    average_precision,
    equal_error_rate,
    precision_recall_points,
    roc_auc,
    roc_curve_points,
    threshold_metrics,
)

MISCLASSIFIED_IMAGES = 16


def plot_learning_curves(history: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """Draws loss and accuracy per epoch for all phases, boundaries marked."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    epochs = [row["epoch"] for row in history]
    for axis, metric in zip(axes, ("loss", "accuracy"), strict=False):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = [row.get(prefix + metric) for row in history]
            if any(v is not None for v in values):
                axis.plot(epochs, values, style, marker="o", label=(prefix or "train_") + metric)
        top = axis.get_ylim()[1]
        if history:
            axis.text(epochs[0], top, f"{history[0]['phase']}", va="top", fontsize=8, color="gray")
        for previous, row in zip(history, history[1:], strict=False):
            if row["phase"] != previous["phase"]:
                boundary = previous["epoch"] + 0.5
                axis.axvline(boundary, color="gray", linestyle=":")
                axis.text(boundary, top, f" {row['phase']}", va="top", fontsize=8, color="gray")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    save_figure(figure, path)


def plot_confusion_matrix(matrix, class_names: list[str], path: str | os.PathLike) -> None:
    """Draws the confusion matrix as counts and as row-normalised fractions."""
    plt = pyplot()
    matrix = np.asarray(matrix)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    size = max(4.0, 0.6 * len(class_names) + 2.5)
    figure, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    for axis, values, title, fmt in (
        (axes[0], matrix, "counts", "d"), (axes[1], normalised, "fraction of true class", ".2f")
    ):
        image = axis.imshow(values, cmap="Blues")
        figure.colorbar(image, ax=axis, fraction=0.046)
        ticks = range(len(class_names))
        axis.set_xticks(ticks, class_names, rotation=45, ha="right")
        axis.set_yticks(ticks, class_names)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        axis.set_title(title)
        threshold = values.max() / 2 if values.size else 0
        for i in ticks:
            for j in ticks:
                axis.text(j, i, format(values[i, j], fmt), ha="center", va="center",
                          color="white" if values[i, j] > threshold else "black")
    figure.tight_layout()
    save_figure(figure, path)


def plot_roc(
    labels, scores, path: str | os.PathLike, *, positive_class: str = "", threshold: float | None = None
) -> None:
    """Draws the ROC curve of a two-class problem, with the equal-error point.

    Args:
        labels: Binary labels (true = positive).
        scores: Probabilities of the positive class.
        path: The PNG to write.
        positive_class: The positive class's name, for the title.
            Defaults to `""`.
        threshold: A decision threshold to mark on the curve. Defaults to
            `None`.
    """
    plt = pyplot()
    fpr, tpr, _ = roc_curve_points(labels, scores)
    auc = roc_auc(labels, scores)
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot(fpr, tpr, label=f"ROC, AUC = {auc:.3f}" if auc is not None else "ROC")
    axis.plot([0, 1], [0, 1], ":", color="gray", label="chance")
    eer = equal_error_rate(labels, scores)
    if threshold is not None:  # a hollow square, so the equal-error dot shows inside it when they meet
        at = threshold_metrics(labels, scores, threshold)
        axis.plot([at["false_positive_rate"]], [at["recall"]], "s", color="tab:green", markerfacecolor="none",
                  markersize=11, markeredgewidth=2, label=f"threshold {threshold:.3f}", zorder=3)
    if eer is not None:
        axis.plot([eer[0]], [1 - eer[0]], "o", color="tab:red", label=f"equal error rate {eer[0]:.3f}",
                  zorder=4)
    _finish_curve(figure, axis, path, x="false positive rate", y="true positive rate",
                  title="ROC", positive_class=positive_class, legend="lower right")


def _finish_curve(figure, axis, path, *, x: str, y: str, title: str, positive_class: str, legend: str):
    axis.set_xlabel(x)
    axis.set_ylabel(y)
    axis.set_title(f"{title} ({positive_class} positive)" if positive_class else title)
    axis.legend(loc=legend, fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    save_figure(figure, path)


def plot_precision_recall(labels, scores, path: str | os.PathLike, *, positive_class: str = "") -> None:
    """Draws the precision-recall curve of a two-class problem.

    Args:
        labels: Binary labels (true = positive).
        scores: Probabilities of the positive class.
        path: The PNG to write.
        positive_class: The positive class's name, for the title.
            Defaults to `""`.
    """
    plt = pyplot()
    precision, recall = precision_recall_points(labels, scores)
    ap = average_precision(labels, scores)
    prevalence = float(np.mean(np.asarray(labels).astype(bool)))
    figure, axis = plt.subplots(figsize=(5, 5))
    # Drawn as steps: average precision is the area under exactly this curve.
    axis.step(np.r_[0.0, recall], np.r_[precision[:1], precision], where="pre",
              label=f"AP = {ap:.3f}" if ap is not None else "precision-recall")
    axis.axhline(prevalence, linestyle=":", color="gray", label=f"chance ({prevalence:.2f})")
    axis.set_xlim(0, 1.02)
    axis.set_ylim(0, 1.05)
    _finish_curve(figure, axis, path, x="recall", y="precision", title="Precision-recall",
                  positive_class=positive_class, legend="lower left")


def most_confidently_wrong(labels, probabilities, *, limit: int = MISCLASSIFIED_IMAGES) -> np.ndarray:
    """Indices of wrongly predicted samples, most confident first, at most `limit`."""
    probabilities = np.asarray(probabilities)
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != np.asarray(labels))
    confidence = probabilities[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="mergesort")][:limit]


def _thumbnail(path: str, size: int = 160) -> np.ndarray | None:
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
            image.thumbnail((size, size))
            return np.asarray(image)
    except (OSError, ValueError):
        return None


def plot_misclassified(
    paths: list[str],
    labels,
    probabilities,
    class_names: list[str],
    path: str | os.PathLike,
    *,
    limit: int = MISCLASSIFIED_IMAGES,
    columns: int = 4,
) -> int:
    """Draws a grid of the most confidently wrong images with their labels.

    Args:
        paths: Image files, parallel to `labels`.
        labels: True class indices.
        probabilities: Predicted probabilities.
        class_names: Class names by index.
        path: The PNG to write.
        limit: Most images to show. Defaults to `16`.
        columns: Images per row. Defaults to `4`.

    Returns:
        How many images the grid shows (0 draws a note that none was wrong).
    """
    plt = pyplot()
    chosen = most_confidently_wrong(labels, probabilities, limit=limit)
    if not len(chosen):
        figure, axis = plt.subplots(figsize=(5, 1.5))
        axis.axis("off")
        axis.text(0.5, 0.5, f"No misclassified images among {len(paths)}.", ha="center", va="center")
        save_figure(figure, path)
        return 0
    columns = min(columns, len(chosen))
    rows = -(-len(chosen) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.9 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    probabilities = np.asarray(probabilities)
    for axis, index in zip(axes.flat, chosen, strict=False):
        thumbnail = _thumbnail(paths[index])
        if thumbnail is not None:
            axis.imshow(thumbnail)
        predicted = int(probabilities[index].argmax())
        axis.set_title(
            f"{shortened(Path(paths[index]).name, 24)}\ntrue: {class_names[labels[index]]}\n"
            f"predicted: {class_names[predicted]} ({probabilities[index, predicted]:.2f})",
            fontsize=8,
        )
    figure.suptitle("Most confidently wrong images", fontsize=11)
    figure.tight_layout()
    save_figure(figure, path)
    return len(chosen)

