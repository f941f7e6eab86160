"""Honest evaluation: metrics and pictures of a classifier's predictions.

Metrics are computed with NumPy from the model's probabilities on a held-out
split (a test compares each with scikit-learn's); pictures are drawn with
matplotlib's Agg backend, so they render without a display. The run report
that gathers them is written by `kerasdl.evaluation.report`.
"""


from __future__ import annotations

from typing import Any

import numpy as np

_EPSILON = 1e-7
TOP_K = 5
# Stratified bootstrap of metrics.json's `accuracy_ci95` and `auc_ci95`.
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0


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


# ------------------------------------------------------- confidence intervals


def stratified_resamples(labels: np.ndarray, *, resamples: int = BOOTSTRAP_RESAMPLES,
                         seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """Index arrays of a stratified bootstrap: each class resampled with replacement within itself.

    Keeping each class's count fixed keeps every resample's class balance that
    of the evaluated split, so a resample always has both classes for ROC-AUC.

    Args:
        labels: Class indices, shape `(n,)`.
        resamples: Number of resamples. Defaults to `1000`.
        seed: Seed of the draw, so a run's intervals repeat. Defaults to `0`.

    Returns:
        An int array of shape `(resamples, n)`.
    """
    labels = np.asarray(labels, dtype=int)
    generator = np.random.default_rng(seed)
    indices = np.empty((resamples, len(labels)), dtype=int)
    start = 0
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        indices[:, start:start + len(members)] = generator.choice(members, size=(resamples, len(members)))
        start += len(members)
    return indices


def bootstrap_ci95(labels: np.ndarray, probabilities: np.ndarray, *, resamples: int = BOOTSTRAP_RESAMPLES,
                   seed: int = BOOTSTRAP_SEED) -> dict[str, list[float] | None]:
    """95% confidence intervals of accuracy and (two classes) ROC-AUC by a stratified bootstrap.

    The intervals are the 2.5th and 97.5th percentiles of the metric over
    `resamples` stratified resamples of the evaluated images: how much the
    number would move on another draw of a split this size. Two models whose
    intervals overlap widely are not told apart by this split.

    Args:
        labels: True class indices, shape `(n,)`.
        probabilities: Predicted probabilities, shape `(n, num_classes)`.
        resamples: Number of resamples. Defaults to `1000`.
        seed: Seed of the resampling. Defaults to `0`.

    Returns:
        `{"accuracy_ci95": [low, high]}`, plus `"auc_ci95"` for two classes
        (`None` when a class is absent); an empty split gives `None`s.

    Example:
    ```python
    bootstrap_ci95(np.array([0, 1, 1, 0]), np.array([[.8, .2], [.3, .7], [.6, .4], [.9, .1]]))
    ```
    """
    labels = np.asarray(labels, dtype=int)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    two_classes = probabilities.ndim == 2 and probabilities.shape[1] == 2
    result: dict[str, list[float] | None] = {"accuracy_ci95": None}
    if two_classes:
        result["auc_ci95"] = None
    if not len(labels):
        return result
    indices = stratified_resamples(labels, resamples=resamples, seed=seed)
    correct = probabilities.argmax(axis=1) == labels
    result["accuracy_ci95"] = _percentile_interval(correct[indices].mean(axis=1))
    if two_classes and _both_classes_present(labels == 1):
        scores = probabilities[:, 1]
        result["auc_ci95"] = _percentile_interval(
            np.array([roc_auc(labels[sample] == 1, scores[sample]) for sample in indices]))
    return result


def _percentile_interval(values: np.ndarray) -> list[float]:
    low, high = np.percentile(values, [2.5, 97.5])
    return [float(low), float(high)]


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
        `top5_accuracy` for more than five classes, `accuracy_ci95`, and for
        two classes (class index 1 is the positive class) `auc`, `auc_ci95`,
        `average_precision`, `equal_error_rate`, `equal_error_threshold` and
        `threshold`. The `*_ci95` are `[low, high]` 95% intervals of a seeded
        stratified bootstrap (`bootstrap_ci95`), described under `ci95`.

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
    metrics.update(bootstrap_ci95(labels, probabilities))
    metrics["ci95"] = {"method": "stratified bootstrap, percentile interval", "resamples": BOOTSTRAP_RESAMPLES,
                       "seed": BOOTSTRAP_SEED}
    return metrics

