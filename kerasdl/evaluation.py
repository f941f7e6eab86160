"""Honest evaluation: metrics and pictures of a classifier's predictions.

Metrics are computed with NumPy from the model's probabilities on a held-out
split (a test compares each with scikit-learn's); pictures are drawn with
matplotlib's Agg backend, so they render without a display. The run report
that gathers them is written by `kerasdl.report`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from kerasdl.errors import RunFolderError

_EPSILON = 1e-7
TOP_K = 5
MISCLASSIFIED_IMAGES = 16


def collect_predictions(
    predict_batch: Callable[[np.ndarray], np.ndarray], dataset: Iterable
) -> tuple[np.ndarray, np.ndarray]:
    """Runs `predict_batch` over `(images, labels)` batches.

    Args:
        predict_batch: Maps a batch of [0, 255] images to probabilities.
        dataset: Batches of `(images, labels)`.

    Returns:
        `(labels, probabilities)` as NumPy arrays.
    """
    labels, probabilities = [], []
    for images, batch_labels in dataset:
        probabilities.append(np.asarray(predict_batch(np.asarray(images)), dtype=np.float64))
        labels.append(np.asarray(batch_labels))
    return np.concatenate(labels).astype(int), np.concatenate(probabilities)


def batch_predictor(model) -> Callable[[np.ndarray], np.ndarray]:
    """The fastest correct batch prediction function of a Keras model.

    `predict_on_batch` reuses one compiled function (`predict` per batch costs
    about 5x more), but under a tf.distribute strategy it returns every
    replica's copy of the batch, so `predict` is used there.
    """
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if tf.distribute.has_strategy():
            return lambda images: model.predict(images, verbose=0)
    return model.predict_on_batch


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts `[true class, predicted class]` pairs."""
    matrix = np.zeros((num_classes, num_classes), dtype=int)
    np.add.at(matrix, (np.asarray(labels, dtype=int), np.asarray(predicted, dtype=int)), 1)
    return matrix


def top_k_accuracy(labels: np.ndarray, probabilities: np.ndarray, k: int = TOP_K) -> float:
    """Fraction of samples whose true class is among the `k` most probable."""
    labels = np.asarray(labels, dtype=int)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if not len(labels):
        return 0.0
    true_probability = probabilities[np.arange(len(labels)), labels]
    # Rank of the true class = how many classes score strictly higher.
    rank = (probabilities > true_probability[:, None]).sum(axis=1)
    return float((rank < k).mean())


# ------------------------------------------------------- two-class metrics


def binary_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts true and false positives at every distinct score threshold.

    Args:
        labels: Binary labels (true = positive).
        scores: Scores of the positive class; a sample is called positive
            when its score is at least the threshold.

    Returns:
        `(thresholds, true_positives, false_positives)`, thresholds from the
        highest score down.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    last_of_each_score = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]
    true_positives = np.cumsum(sorted_labels)[last_of_each_score]
    false_positives = (last_of_each_score + 1) - true_positives
    return sorted_scores[last_of_each_score], true_positives, false_positives


def roc_curve_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns `(false positive rates, true positive rates, thresholds)`.

    The curve starts at `(0, 0)` with threshold `inf`, like scikit-learn's
    `roc_curve` without dropping intermediate points.
    """
    labels = np.asarray(labels).astype(bool)
    thresholds, true_positives, false_positives = binary_curve(labels, scores)
    tpr = np.r_[0.0, true_positives / max(labels.sum(), 1)]
    fpr = np.r_[0.0, false_positives / max((~labels).sum(), 1)]
    return fpr, tpr, np.r_[np.inf, thresholds]


def _both_classes_present(labels: np.ndarray) -> bool:
    labels = np.asarray(labels).astype(bool)
    return bool(labels.any() and (~labels).any())


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (ties count half); `None` if a class is absent."""
    if not _both_classes_present(labels):
        return None
    fpr, tpr, _ = roc_curve_points(labels, scores)
    return float(np.trapezoid(tpr, fpr))


def precision_recall_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns `(precision, recall)` at every distinct threshold, high to low."""
    labels = np.asarray(labels).astype(bool)
    _, true_positives, false_positives = binary_curve(labels, scores)
    precision = true_positives / np.maximum(true_positives + false_positives, 1)
    recall = true_positives / max(labels.sum(), 1)
    return precision, recall


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Average precision: precision summed over recall steps (no interpolation).

    This is scikit-learn's `average_precision_score`; `None` when there is no
    positive sample.
    """
    if not np.asarray(labels).astype(bool).any():
        return None
    precision, recall = precision_recall_points(labels, scores)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def equal_error_rate(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float] | None:
    """The error rate where false positives and false negatives are equally likely.

    Interpolates linearly along the ROC curve between the two points where
    `false negative rate - false positive rate` changes sign.

    Returns:
        `(equal error rate, threshold)` (the threshold interpolated between
        the two points' scores), or `None` if a class is absent.
    """
    if not _both_classes_present(labels):
        return None
    fpr, tpr, thresholds = roc_curve_points(labels, scores)
    gap = (1.0 - tpr) - fpr  # falls from 1 at (0, 0) to -1 at (1, 1)
    after = int(np.flatnonzero(gap <= 0)[0])
    if gap[after] == 0:
        return float(fpr[after]), float(thresholds[after])
    before = after - 1
    share = gap[before] / (gap[before] - gap[after])
    rate = fpr[before] + share * (fpr[after] - fpr[before])
    upper = thresholds[before] if np.isfinite(thresholds[before]) else thresholds[after]
    return float(rate), float(upper + share * (thresholds[after] - upper))


def best_balanced_threshold(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """The score threshold that maximises balanced accuracy, `(TPR + TNR) / 2`.

    Candidate thresholds are the distinct scores (a sample is positive when
    its score is at least the threshold); among equal maxima the highest
    threshold wins. `None` if a class is absent.
    """
    if not _both_classes_present(labels):
        return None
    fpr, tpr, thresholds = roc_curve_points(labels, scores)
    best = int(np.argmax((tpr - fpr)[1:])) + 1  # skip the `inf` start point
    return float(thresholds[best])


def threshold_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """Two-class metrics when `score >= threshold` means positive.

    Returns:
        `threshold`, `accuracy`, `balanced_accuracy`, `precision`, `recall`
        (true positive rate), `specificity`, `f1`, `false_positive_rate`
        and the 2x2 `confusion_matrix` (`[[TN, FP], [FN, TP]]`).
    """
    labels = np.asarray(labels).astype(bool)
    called = np.asarray(scores) >= threshold
    tp, fp = int((called & labels).sum()), int((called & ~labels).sum())
    fn, tn = int((~called & labels).sum()), int((~called & ~labels).sum())

    def ratio(a, b):
        return a / b if b else 0.0

    precision, recall, specificity = ratio(tp, tp + fp), ratio(tp, tp + fn), ratio(tn, tn + fp)
    return {
        "threshold": float(threshold),
        "accuracy": ratio(tp + tn, len(labels)),
        "balanced_accuracy": (recall + specificity) / 2,
        "precision": precision,
        "recall": recall,
        "specificity": specificity,
        "f1": ratio(2 * precision * recall, precision + recall),
        "false_positive_rate": ratio(fp, fp + tn),
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }


def binary_metrics(
    labels: np.ndarray, scores: np.ndarray, *, threshold: float | None = None
) -> dict[str, Any]:
    """ROC-AUC, average precision, equal-error rate and the decision threshold.

    Args:
        labels: Binary labels (true = positive class, index 1).
        scores: Probabilities of the positive class.
        threshold: The decision threshold to report metrics at. Defaults to
            `None` (the one maximising balanced accuracy).

    Returns:
        `auc`, `average_precision`, `equal_error_rate`,
        `equal_error_threshold` and `threshold` (a `threshold_metrics` dict
        with `chosen_by`, or `None` when it cannot be chosen).
    """
    eer = equal_error_rate(labels, scores)
    chosen_by = "given" if threshold is not None else "max balanced accuracy"
    if threshold is None:
        threshold = best_balanced_threshold(labels, scores)
    at_threshold = None
    if threshold is not None:
        at_threshold = {"chosen_by": chosen_by, **threshold_metrics(labels, scores, threshold)}
    return {
        "auc": roc_auc(labels, scores),
        "average_precision": average_precision(labels, scores),
        "equal_error_rate": eer[0] if eer else None,
        "equal_error_threshold": eer[1] if eer else None,
        "threshold": at_threshold,
    }


def compute_metrics(
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names: list[str],
    *,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Computes the metrics of `metrics.json` from predictions.

    Args:
        labels: True class indices, shape `(n,)`.
        probabilities: Predicted probabilities, shape `(n, num_classes)`.
        class_names: Names of the classes, by index.
        threshold: For two classes, the decision threshold on the positive
            class's probability to report metrics at. Defaults to `None`
            (the threshold that maximises balanced accuracy).

    Returns:
        A dict with `accuracy`, `loss`, `num_samples`, `class_names`,
        `per_class` (precision, recall, f1, support), `macro_avg`,
        `weighted_avg`, `confusion_matrix` (all at the most probable class),
        `top5_accuracy` for more than five classes, and for two classes (class
        index 1 is the positive class) `auc`, `average_precision`,
        `equal_error_rate`, `equal_error_threshold` and `threshold`.

    Raises:
        ValueError: if `threshold` is given for more than two classes.

    Example:
    ```python
    metrics = compute_metrics(np.array([0, 1]), np.array([[.9, .1], [.2, .8]]), ["a", "b"])
    ```
    """
    labels = np.asarray(labels, dtype=int)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    num_classes = len(class_names)
    if threshold is not None and num_classes != 2:
        raise ValueError(f"A decision threshold needs two classes; received {num_classes}.")
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted, num_classes)
    true_positive = np.diag(matrix).astype(float)
    support = matrix.sum(axis=1)
    predicted_count = matrix.sum(axis=0)
    precision = np.divide(true_positive, predicted_count, out=np.zeros(num_classes), where=predicted_count > 0)
    recall = np.divide(true_positive, support, out=np.zeros(num_classes), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros(num_classes), where=denominator > 0)
    picked = probabilities[np.arange(len(labels)), labels] if len(labels) else np.zeros(0)
    metrics: dict[str, Any] = {
        "accuracy": float((predicted == labels).mean()) if len(labels) else 0.0,
        "loss": float(-np.log(np.clip(picked, _EPSILON, 1.0)).mean()) if len(labels) else 0.0,
        "num_samples": int(len(labels)),
        "class_names": list(class_names),
        "per_class": {
            name: {
                "precision": float(precision[i]), "recall": float(recall[i]),
                "f1": float(f1[i]), "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "macro_avg": {
            "precision": float(precision.mean()), "recall": float(recall.mean()), "f1": float(f1.mean()),
        },
        "weighted_avg": {
            key: float(np.average(values, weights=support)) if support.sum() else 0.0
            for key, values in (("precision", precision), ("recall", recall), ("f1", f1))
        },
        "confusion_matrix": matrix.tolist(),
    }
    if num_classes > TOP_K:
        metrics[f"top{TOP_K}_accuracy"] = top_k_accuracy(labels, probabilities, TOP_K)
    if num_classes == 2:
        metrics.update(binary_metrics(labels == 1, probabilities[:, 1], threshold=threshold))
    return metrics


def write_json(data: dict[str, Any], path: str | os.PathLike) -> None:
    """Writes JSON atomically (temporary file, then rename)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    os.replace(temporary, path)


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Not JSON serializable: {type(value).__name__}")


# ---------------------------------------------------------------- pictures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(figure, path: str | os.PathLike) -> None:
    """Saves a PNG under a temporary name, then renames it into place."""
    plt = _pyplot()
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        figure.savefig(temporary, dpi=100, format="png")
        os.replace(temporary, path)
    finally:
        plt.close(figure)
        temporary.unlink(missing_ok=True)


def plot_learning_curves(history: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """Draws loss and accuracy per epoch for all phases, boundaries marked."""
    plt = _pyplot()
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
    _save_figure(figure, path)


def plot_confusion_matrix(matrix, class_names: list[str], path: str | os.PathLike) -> None:
    """Draws the confusion matrix as counts and as row-normalised fractions."""
    plt = _pyplot()
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
    _save_figure(figure, path)


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
    plt = _pyplot()
    fpr, tpr, _ = roc_curve_points(labels, scores)
    auc = roc_auc(labels, scores)
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot(fpr, tpr, label=f"ROC, AUC = {auc:.3f}" if auc is not None else "ROC")
    axis.plot([0, 1], [0, 1], ":", color="gray", label="chance")
    eer = equal_error_rate(labels, scores)
    if eer is not None:
        axis.plot([eer[0]], [1 - eer[0]], "o", color="tab:red", label=f"equal error rate {eer[0]:.3f}")
    if threshold is not None:
        at = threshold_metrics(labels, scores, threshold)
        axis.plot([at["false_positive_rate"]], [at["recall"]], "s", color="tab:green",
                  label=f"threshold {threshold:.3f}")
    _finish_curve(figure, axis, path, x="false positive rate", y="true positive rate",
                  title="ROC", positive_class=positive_class, legend="lower right")


def _finish_curve(figure, axis, path, *, x: str, y: str, title: str, positive_class: str, legend: str):
    axis.set_xlabel(x)
    axis.set_ylabel(y)
    axis.set_title(f"{title} ({positive_class} positive)" if positive_class else title)
    axis.legend(loc=legend, fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    _save_figure(figure, path)


def plot_precision_recall(labels, scores, path: str | os.PathLike, *, positive_class: str = "") -> None:
    """Draws the precision-recall curve of a two-class problem.

    Args:
        labels: Binary labels (true = positive).
        scores: Probabilities of the positive class.
        path: The PNG to write.
        positive_class: The positive class's name, for the title.
            Defaults to `""`.
    """
    plt = _pyplot()
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
    plt = _pyplot()
    chosen = most_confidently_wrong(labels, probabilities, limit=limit)
    if not len(chosen):
        figure, axis = plt.subplots(figsize=(5, 1.5))
        axis.axis("off")
        axis.text(0.5, 0.5, f"No misclassified images among {len(paths)}.", ha="center", va="center")
        _save_figure(figure, path)
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
            f"{Path(paths[index]).name[:24]}\ntrue: {class_names[labels[index]]}\n"
            f"predicted: {class_names[predicted]} ({probabilities[index, predicted]:.2f})",
            fontsize=8,
        )
    figure.suptitle("Most confidently wrong images", fontsize=11)
    figure.tight_layout()
    _save_figure(figure, path)
    return len(chosen)


# -------------------------------------------------------------- evaluation


def check_output_folder(path: str | os.PathLike) -> Path:
    """Checks that a folder can be created or written, before costly work.

    Raises:
        RunFolderError: if it is a file or cannot be written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"Expected an output folder. Received: {path}, a file. Pick another --output.")
    existing = next((p for p in [path, *path.parents] if p.exists()), Path("."))
    if not existing.is_dir():
        raise RunFolderError(
            f"Expected a writable output folder. Received: {path}, inside {existing}, a file. "
            "Pick another --output."
        )
    if not os.access(existing, os.W_OK):
        raise RunFolderError(
            f"Expected a writable output folder. Received: {path} ({existing} is not writable). "
            "Pick another --output."
        )
    return path


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
