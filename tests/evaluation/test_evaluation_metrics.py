"""Every metric of metrics.json against scikit-learn on the same predictions."""

from __future__ import annotations

import numpy as np
import pytest

from kerasdl.evaluation.metrics import (
    average_precision,
    best_balanced_threshold,
    bootstrap_ci95,
    compute_metrics,
    equal_error_rate,
    roc_auc,
    stratified_resamples,
    threshold_metrics,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is a test dependency")


def random_predictions(num_samples: int, num_classes: int, seed: int, *, skill: float = 1.5):
    """Labels and softmax probabilities that are right more often than chance."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, num_samples)
    logits = rng.normal(size=(num_samples, num_classes))
    logits[np.arange(num_samples), labels] += skill
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probabilities


def eer_from_sklearn(labels, scores) -> float:
    """Equal-error rate from scikit-learn's ROC, where FNR - FPR changes sign."""
    fpr, tpr, _ = sklearn_metrics.roc_curve(labels, scores, drop_intermediate=False)
    gap = (1 - tpr) - fpr
    after = np.flatnonzero(gap <= 0)[0]
    if gap[after] == 0:
        return fpr[after]
    share = gap[after - 1] / (gap[after - 1] - gap[after])
    return fpr[after - 1] + share * (fpr[after] - fpr[after - 1])


@pytest.mark.parametrize("num_classes, seed", [(2, 0), (3, 1), (7, 2)])
def test_multiclass_metrics_match_sklearn(num_classes, seed):
    labels, probabilities = random_predictions(300, num_classes, seed)
    names = [f"c{i}" for i in range(num_classes)]
    metrics = compute_metrics(labels, probabilities, names)
    predicted = probabilities.argmax(1)
    every_class = list(range(num_classes))

    assert metrics["num_samples"] == 300
    assert metrics["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(labels, predicted))
    assert metrics["loss"] == pytest.approx(sklearn_metrics.log_loss(labels, probabilities, labels=every_class))
    assert metrics["confusion_matrix"] == sklearn_metrics.confusion_matrix(
        labels, predicted, labels=every_class).tolist()
    precision, recall, f1, support = sklearn_metrics.precision_recall_fscore_support(
        labels, predicted, labels=every_class, zero_division=0)
    for i, name in enumerate(names):
        assert metrics["per_class"][name] == pytest.approx(
            {"precision": precision[i], "recall": recall[i], "f1": f1[i], "support": support[i]})
    for average in ("macro", "weighted"):
        expected = sklearn_metrics.precision_recall_fscore_support(
            labels, predicted, labels=every_class, average=average, zero_division=0)[:3]
        assert metrics[f"{average}_avg"] == pytest.approx(dict(zip(("precision", "recall", "f1"), expected,
                                                                   strict=True)))
    if num_classes > 5:
        assert metrics["top5_accuracy"] == pytest.approx(
            sklearn_metrics.top_k_accuracy_score(labels, probabilities, k=5, labels=every_class))
    else:
        assert "top5_accuracy" not in metrics
    assert ("auc" in metrics) == (num_classes == 2)


def test_zero_division_matches_sklearn_when_a_class_is_never_predicted():
    labels = np.array([0, 0, 1, 1, 2, 2])
    probabilities = np.eye(3)[[0, 0, 0, 1, 1, 1]]
    metrics = compute_metrics(labels, probabilities, ["a", "b", "c"])
    precision, recall, f1, _ = sklearn_metrics.precision_recall_fscore_support(
        labels, probabilities.argmax(1), zero_division=0)
    assert [metrics["per_class"][n]["precision"] for n in "abc"] == pytest.approx(precision)
    assert [metrics["per_class"][n]["recall"] for n in "abc"] == pytest.approx(recall)
    assert [metrics["per_class"][n]["f1"] for n in "abc"] == pytest.approx(f1)


@pytest.mark.parametrize("seed, rounding", [(3, None), (4, 1), (5, 2)])
def test_two_class_metrics_match_sklearn(seed, rounding):
    labels, probabilities = random_predictions(400, 2, seed, skill=1.0)
    if rounding is not None:  # coarse scores: many ties, as a quantized model gives
        probabilities = np.round(probabilities, rounding)
        probabilities[:, 0] = 1 - probabilities[:, 1]
    scores = probabilities[:, 1]
    metrics = compute_metrics(labels, probabilities, ["real", "fake"])

    assert metrics["auc"] == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores))
    assert metrics["average_precision"] == pytest.approx(sklearn_metrics.average_precision_score(labels, scores))
    assert metrics["equal_error_rate"] == pytest.approx(eer_from_sklearn(labels, scores))

    at = metrics["threshold"]
    assert at["chosen_by"] == "max balanced accuracy"
    fpr, tpr, thresholds = sklearn_metrics.roc_curve(labels, scores, drop_intermediate=False)
    best_j = np.max(tpr - fpr)
    assert at["balanced_accuracy"] == pytest.approx((1 + best_j) / 2)
    assert at["threshold"] in thresholds
    called = (scores >= at["threshold"]).astype(int)
    assert at["balanced_accuracy"] == pytest.approx(sklearn_metrics.balanced_accuracy_score(labels, called))
    assert at["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(labels, called))
    assert at["precision"] == pytest.approx(sklearn_metrics.precision_score(labels, called, zero_division=0))
    assert at["recall"] == pytest.approx(sklearn_metrics.recall_score(labels, called))
    assert at["f1"] == pytest.approx(sklearn_metrics.f1_score(labels, called))
    assert at["confusion_matrix"] == sklearn_metrics.confusion_matrix(labels, called).tolist()


def test_given_threshold_is_used_and_reported():
    labels, probabilities = random_predictions(200, 2, 6)
    metrics = compute_metrics(labels, probabilities, ["a", "b"], threshold=0.8)
    called = (probabilities[:, 1] >= 0.8).astype(int)
    assert metrics["threshold"]["chosen_by"] == "given"
    assert metrics["threshold"]["threshold"] == 0.8
    assert metrics["threshold"]["specificity"] == pytest.approx(
        sklearn_metrics.recall_score(labels, called, pos_label=0))
    with pytest.raises(ValueError, match="two classes"):
        compute_metrics(labels, np.c_[probabilities, probabilities[:, :1]] / 1.5, ["a", "b", "c"], threshold=0.5)


def test_hand_checked_two_class_values():
    labels = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    assert roc_auc(labels, scores) == pytest.approx(0.75)
    # Ranked 0.8(+) 0.4(-) 0.35(+) 0.1(-): precision 1 at recall 0.5, 2/3 at recall 1.
    assert average_precision(labels, scores) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert equal_error_rate(labels, scores)[0] == pytest.approx(0.5)
    assert best_balanced_threshold(labels, scores) == pytest.approx(0.8)
    assert threshold_metrics(labels, scores, 0.35)["confusion_matrix"] == [[1, 1], [0, 2]]


def test_perfect_and_one_sided_predictions():
    labels = np.array([0, 0, 1, 1])
    perfect = compute_metrics(labels, np.eye(2)[labels] * 0.9 + 0.05, ["a", "b"])
    assert perfect["auc"] == 1.0 and perfect["equal_error_rate"] == 0.0
    assert perfect["threshold"]["balanced_accuracy"] == 1.0
    one_class = compute_metrics(np.zeros(3, int), np.full((3, 2), 0.5), ["a", "b"])
    assert one_class["auc"] is None and one_class["equal_error_rate"] is None
    assert one_class["average_precision"] is None and one_class["threshold"] is None


def _noisy_two_class(n_per_class: int, separation: float, seed: int = 0):
    generator = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n_per_class)
    scores = 1 / (1 + np.exp(-(generator.normal(size=2 * n_per_class) + separation * (2 * labels - 1))))
    return labels, np.c_[1 - scores, scores]


def test_bootstrap_intervals_contain_the_metric_and_repeat_with_the_seed():
    labels, probabilities = _noisy_two_class(80, 1.0)
    metrics = compute_metrics(labels, probabilities, ["real", "ai"])
    low, high = metrics["auc_ci95"]
    assert low < metrics["auc"] < high and 0.0 <= low and high <= 1.0
    low, high = metrics["accuracy_ci95"]
    assert low < metrics["accuracy"] < high
    assert metrics["ci95"] == {"method": "stratified bootstrap, percentile interval", "resamples": 1000, "seed": 0}
    assert compute_metrics(labels, probabilities, ["real", "ai"])["auc_ci95"] == metrics["auc_ci95"]
    assert bootstrap_ci95(labels, probabilities, seed=1)["auc_ci95"] != metrics["auc_ci95"]


def test_bootstrap_interval_narrows_with_more_images_and_covers_the_truth():
    # 160 images (faces-real-ai's validation split) against 16x as many from the same
    # distribution: the interval shrinks about 4x, and both contain the large set's AUC.
    small = bootstrap_ci95(*_noisy_two_class(80, 1.0))["auc_ci95"]
    labels, probabilities = _noisy_two_class(1280, 1.0, seed=1)
    large = bootstrap_ci95(labels, probabilities)["auc_ci95"]
    truth = roc_auc(labels, probabilities[:, 1])
    assert small[0] < truth < small[1] and large[0] < truth < large[1]
    assert 2.5 < (small[1] - small[0]) / (large[1] - large[0]) < 6


def test_bootstrap_is_stratified_and_matches_a_resample_by_hand():
    labels = np.array([0] * 5 + [1] * 3)
    indices = stratified_resamples(labels, resamples=50, seed=3)
    assert indices.shape == (50, 8)
    assert (labels[indices].sum(axis=1) == 3).all()  # every resample keeps 5 and 3
    probabilities = np.eye(2)[labels] * 0.6 + 0.2
    probabilities[0] = [0.3, 0.7]  # one mistake: accuracy 7/8
    intervals = bootstrap_ci95(labels, probabilities, resamples=50, seed=3)
    by_hand = [(probabilities[sample].argmax(axis=1) == labels[sample]).mean() for sample in indices]
    assert intervals["accuracy_ci95"] == pytest.approx(list(np.percentile(by_hand, [2.5, 97.5])))


def test_bootstrap_of_many_classes_has_no_auc_and_one_class_no_auc_interval():
    labels = np.array([0, 1, 2, 2])
    assert "auc_ci95" not in bootstrap_ci95(labels, np.eye(3)[labels])
    one_class = compute_metrics(np.zeros(3, int), np.full((3, 2), 0.5), ["a", "b"])
    assert one_class["auc_ci95"] is None and one_class["accuracy_ci95"] == [1.0, 1.0]
