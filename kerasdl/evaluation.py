"""Honest evaluation: metrics, pictures and the run report.

Metrics are computed with NumPy from the model's probabilities on a held-out
split; pictures are drawn with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

_EPSILON = 1e-7


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


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts `[true class, predicted class]` pairs."""
    matrix = np.zeros((num_classes, num_classes), dtype=int)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve of binary `labels` ranked by `scores`.

    It is the probability that a random positive outranks a random negative
    (ties count half), computed from average ranks. `None` if one class is
    absent.
    """
    labels = np.asarray(labels).astype(bool)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = np.asarray(scores)[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    start = 0
    while start < len(sorted_scores):
        end = start
        while end + 1 < len(sorted_scores) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return float((ranks[labels].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def compute_metrics(
    labels: np.ndarray, probabilities: np.ndarray, class_names: list[str]
) -> dict[str, Any]:
    """Computes the metrics of `metrics.json` from predictions.

    Args:
        labels: True class indices, shape `(n,)`.
        probabilities: Predicted probabilities, shape `(n, num_classes)`.
        class_names: Names of the classes, by index.

    Returns:
        A dict with `accuracy`, `loss`, `num_samples`, `class_names`,
        `per_class` (precision, recall, f1, support), `macro_avg`,
        `weighted_avg`, `confusion_matrix`, and for two classes `auc`
        (class index 1 is the positive class).

    Example:
    ```python
    metrics = compute_metrics(np.array([0, 1]), np.array([[.9, .1], [.2, .8]]), ["a", "b"])
    ```
    """
    labels = np.asarray(labels, dtype=int)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    num_classes = len(class_names)
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
    if num_classes == 2:
        metrics["auc"] = roc_auc(labels == 1, probabilities[:, 1])
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


def plot_learning_curves(history: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """Draws loss and accuracy per epoch for all phases, boundaries marked."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    epochs = [row["epoch"] for row in history]
    for axis, metric in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = [row.get(prefix + metric) for row in history]
            if any(v is not None for v in values):
                axis.plot(epochs, values, style, marker="o", label=(prefix or "train_") + metric)
        for previous, row in zip(history, history[1:]):
            if row["phase"] != previous["phase"]:
                boundary = previous["epoch"] + 0.5
                axis.axvline(boundary, color="gray", linestyle=":")
                axis.text(boundary, axis.get_ylim()[1], f" {row['phase']}", va="top", fontsize=8)
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


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
    figure.savefig(path, dpi=100)
    plt.close(figure)


def roc_curve_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns (false positive rates, true positive rates) over all thresholds."""
    labels = np.asarray(labels).astype(bool)
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    sorted_scores, sorted_labels = np.asarray(scores)[order], labels[order]
    distinct = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]
    true_positives = np.cumsum(sorted_labels)[distinct]
    false_positives = (distinct + 1) - true_positives
    tpr = np.r_[0, true_positives / max(labels.sum(), 1)]
    fpr = np.r_[0, false_positives / max((~labels).sum(), 1)]
    return fpr, tpr


def plot_roc(labels, scores, path: str | os.PathLike, *, positive_class: str = "") -> None:
    """Draws the ROC curve of a two-class problem."""
    plt = _pyplot()
    fpr, tpr = roc_curve_points(labels, scores)
    auc = roc_auc(labels, scores)
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot(fpr, tpr, label=f"AUC = {auc:.3f}" if auc is not None else "ROC")
    axis.plot([0, 1], [0, 1], ":", color="gray")
    axis.set_xlabel("false positive rate")
    axis.set_ylabel("true positive rate")
    axis.set_title(f"ROC ({positive_class} positive)" if positive_class else "ROC")
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_evaluation(
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names: list[str],
    output_dir: str | os.PathLike,
    *,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Computes metrics and writes `metrics.json` and the pictures to a folder.

    Args:
        labels: True class indices.
        probabilities: Predicted probabilities.
        class_names: Class names by index.
        output_dir: The folder to write into (created if needed).
        extra: More keys for metrics.json (e.g. `skipped_files`).
            Defaults to `None`.

    Returns:
        The metrics dict as written.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    metrics = compute_metrics(labels, probabilities, class_names)
    metrics.update(extra or {})
    plot_confusion_matrix(metrics["confusion_matrix"], class_names, output_dir / "confusion_matrix.png")
    if len(class_names) == 2 and metrics.get("auc") is not None:
        plot_roc(labels == 1, probabilities[:, 1], output_dir / "roc.png", positive_class=class_names[1])
    write_json(metrics, output_dir / "metrics.json")
    return metrics


# ------------------------------------------------------------------ report


def write_report(run_dir: str | os.PathLike) -> Path:
    """Writes `report.md` from the files of a run folder.

    Args:
        run_dir: A run folder with config.json and metrics.json.

    Returns:
        The report's path.
    """
    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    recipe = config["recipe"]
    lines = [
        f"# {recipe['name']}",
        "",
        f"Reproduce: `{config.get('command', '')}`",
        "",
        "## Data",
        f"- source: `{config['data']['source']}`",
        f"- classes: {', '.join(metrics['class_names'])}",
    ]
    for split, counts in config["data"]["class_counts"].items():
        lines.append(f"- {split}: " + ", ".join(f"{name} {count}" for name, count in counts.items()))
    lines += [
        f"- skipped files: {metrics.get('skipped_files', 0)}"
        + (" (see skipped.csv)" if metrics.get("skipped_files") else ""),
        "",
        "## Model",
        f"- backbone: {recipe['backbone']['name']} {recipe['backbone']['options'] or ''}".rstrip(),
        f"- weights: {recipe['backbone']['weights']}",
        f"- image size: {config['image_size']} px, batch {recipe['batch_size']}, augment {recipe['augment']}",
        "",
        "## Training",
        "| phase | trainable | epochs | seconds | images/s | trainable params | best " + config["training"]["monitor"] + " |",
        "|---|---|---|---|---|---|---|",
    ]
    trainable_by_phase = {phase["name"]: phase["trainable"] for phase in recipe["phases"]}
    for phase in config["training"]["phases"]:
        best = phase["best_metric"]
        lines.append(
            f"| {phase['name']} | {trainable_by_phase.get(phase['name'], '')} | {phase['epochs']} | "
            f"{phase['seconds']} | {phase['images_per_second']} | {phase['trainable_parameters']:,} | "
            f"{'' if best is None else f'{best:.4f}'} |"
        )
    lines += [
        "",
        f"## Metrics ({metrics.get('split', 'val')} split, {metrics['num_samples']} images)",
        f"- accuracy: {metrics['accuracy']:.4f}",
        f"- loss: {metrics['loss']:.4f}",
    ]
    if metrics.get("auc") is not None:
        lines.append(f"- ROC-AUC: {metrics['auc']:.4f}")
    lines += ["", "| class | precision | recall | f1 | support |", "|---|---|---|---|---|"]
    for name, values in metrics["per_class"].items():
        lines.append(
            f"| {name} | {values['precision']:.3f} | {values['recall']:.3f} | "
            f"{values['f1']:.3f} | {values['support']} |"
        )
    lines.append("")
    for picture, title in (("curves.png", "Learning curves"), ("confusion_matrix.png", "Confusion matrix"),
                           ("roc.png", "ROC curve")):
        if (run_dir / picture).exists():
            lines += [f"### {title}", f"![{title}]({picture})", ""]
    export_dir = run_dir / "export"
    if export_dir.is_dir():
        lines += ["## Exported files", "| file | size |", "|---|---|"]
        for item in sorted(export_dir.rglob("*")):
            if item.is_file() and "saved_model" not in item.parts:
                lines.append(f"| export/{item.relative_to(export_dir)} | {item.stat().st_size / 1e6:.2f} MB |")
        if (export_dir / "saved_model").is_dir():
            size = sum(f.stat().st_size for f in (export_dir / "saved_model").rglob("*") if f.is_file())
            lines.append(f"| export/saved_model/ | {size / 1e6:.2f} MB |")
        parity = export_dir / "parity.json"
        if parity.exists():
            lines += ["", "Parity of exported files with the Keras model (validation split):", ""]
            for name, check in json.loads(parity.read_text()).items():
                lines.append(
                    f"- {name}: top-1 agreement {check['top1_agreement']:.4f}, accuracy "
                    f"{check['accuracy']:.4f} (Keras {check['keras_accuracy']:.4f}), max |Δp| "
                    f"{check['max_abs_probability_difference']:.4f}"
                    + (f" — REJECTED, kept as export/{check.get('file', name)}" if check.get("rejected") else "")
                )
        lines.append("")
    path = run_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
