"""Pictures of an evaluation and the report of an evaluation folder, from synthetic predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from kerasdl.errors import RunFolderError
from kerasdl.evaluation.evaluate import write_evaluation
from kerasdl.evaluation.plots import most_confidently_wrong, plot_learning_curves, plot_misclassified
from kerasdl.evaluation.report import format_comparison, write_report
from tests.support import write_class_folder


def predictions(labels, seed=0, skill=1.0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(labels), labels.max() + 1))
    logits[np.arange(len(labels)), labels] += skill
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def assert_png(path, min_width=200):
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width >= min_width


def test_two_class_evaluation_writes_every_picture(tmp_path):
    root = write_class_folder(tmp_path / "images", per_class=10)
    paths = sorted(str(p) for p in root.rglob("*.png"))
    labels = np.array([0 if "/cat/" in p else 1 for p in paths])
    metrics = write_evaluation(labels, predictions(labels), ["cat", "dog"], tmp_path / "out", paths=paths,
                               extra={"split": "val"})
    for picture in ("confusion_matrix.png", "roc.png", "precision_recall.png", "misclassified.png"):
        assert_png(tmp_path / "out" / picture)
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left


def test_many_classes_no_roc_and_top5(tmp_path):
    labels = np.arange(70) % 7
    metrics = write_evaluation(labels, predictions(labels), list("abcdefg"), tmp_path)
    assert "top5_accuracy" in metrics and "auc" not in metrics
    assert not (tmp_path / "roc.png").exists() and not (tmp_path / "misclassified.png").exists()
    assert_png(tmp_path / "confusion_matrix.png")


def test_misclassified_grid_shows_the_most_confident_mistakes_first(tmp_path):
    labels = np.array([0, 0, 1, 1, 1])
    probabilities = np.array([[0.9, 0.1], [0.3, 0.7], [0.45, 0.55], [0.6, 0.4], [0.99, 0.01]])
    assert most_confidently_wrong(labels, probabilities).tolist() == [4, 1, 3]
    assert most_confidently_wrong(labels, probabilities, limit=2).tolist() == [4, 1]
    root = write_class_folder(tmp_path / "images", per_class=3)
    paths = sorted(str(p) for p in root.rglob("*.png"))[:5]
    assert plot_misclassified(paths, labels, probabilities, ["cat", "dog"], tmp_path / "grid.png") == 3
    assert_png(tmp_path / "grid.png")
    assert plot_misclassified(paths, labels, np.eye(2)[labels], ["cat", "dog"], tmp_path / "none.png") == 0
    assert_png(tmp_path / "none.png")


def test_learning_curves_over_two_phases(tmp_path):
    history = [{"epoch": e, "phase": "head" if e <= 3 else "fine_tune", "loss": 1 / e, "accuracy": e / 6,
                "val_loss": 1.2 / e, "val_accuracy": e / 7} for e in range(1, 7)]
    plot_learning_curves(history, tmp_path / "curves.png")
    assert_png(tmp_path / "curves.png")


def test_report_and_compare_of_evaluation_folders(tmp_path):
    labels = np.array([0, 1] * 10)
    for name, seed in (("first", 0), ("second", 1)):
        write_evaluation(labels, predictions(labels, seed), ["real", "fake"], tmp_path / name,
                         extra={"model": f"{name}.tflite", "data": "faces/", "tta": "flip"})
    report = write_report(tmp_path / "first").read_text()
    assert "# Evaluation of `first.tflite`" in report and "test-time augmentation: flip" in report
    assert "![ROC curve](roc.png)" in report and "| average precision |" in report
    metrics = json.loads((tmp_path / "first" / "metrics.json").read_text())
    low, high = metrics["auc_ci95"]
    assert f"| ROC-AUC | {metrics['auc']:.4f} | {low:.3f} to {high:.3f} |" in report
    assert "stratified bootstrap" in report
    table = format_comparison([tmp_path / "first", tmp_path / "second"])
    assert "equal-error rate" in table and f"[2] {tmp_path / 'second'}" in table
    with pytest.raises(RunFolderError, match="metrics.json"):
        write_report(tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.json").write_text("{oops")
    with pytest.raises(RunFolderError, match="JSON"):
        format_comparison([tmp_path / "bad"])
