"""report.md and the pictures say what ran, in words (issue 27): the head's pooling and its
choice, the k-fold seconds, the environment, captions that show they were cut, and an
equal-error point that is not hidden by the threshold's marker."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kerasdl._util.plotting import shortened
from kerasdl.evaluation import plots
from kerasdl.evaluation.evaluate import write_evaluation
from kerasdl.evaluation.metrics import equal_error_rate
from kerasdl.evaluation.report import write_report
from tests.support import write_class_folder

ENVIRONMENT = {"python": "3.11.9", "keras": "3.15.1", "backend": "tensorflow",
               "packages": {"keras": "3.15.1", "numpy": "2.1.0"}, "devices": ["/device:CPU:0"]}


def run_folder(tmp_path, **config):
    labels = np.array([0, 1] * 10)
    probabilities = np.stack([1 - labels * 0.6 - 0.2, labels * 0.6 + 0.2], axis=1)
    write_evaluation(labels, probabilities, ["real", "fake"], tmp_path, extra={"split": "test"})
    recipe = {"name": "r", "backbone": {"name": "efficientnet_lite0"}, "head": {"dropout": 0.2, "pooling": "top"}}
    (tmp_path / "config.json").write_text(json.dumps({"recipe": recipe, "environment": ENVIRONMENT, **config}))
    return tmp_path


@pytest.mark.parametrize("chosen", ["top", "blocks"])
def test_the_report_names_the_pooling_that_ran_and_the_probes_scores(tmp_path, chosen):
    record = {"chosen": chosen, "monitor": "val_auc", "best": {"top": 0.8123, "blocks": 0.9345}, "margin": 0.025}
    folder = run_folder(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["recipe"]["head"]["pooling"] = chosen
    config["head_pooling"] = record
    (folder / "config.json").write_text(json.dumps(config))
    report = write_report(folder).read_text()
    head = next(line for line in report.splitlines() if line.startswith("- head:"))
    assert ("each block output" in head) == (chosen == "blocks")
    assert ("last feature map" in head.split("(head.pooling")[0]) == (chosen == "top")
    assert f"head.pooling auto chose {chosen}" in head and "0.8123" in head and "0.9345" in head
    assert "0.0250" in head


def test_the_environment_is_words_not_a_python_dict(tmp_path):
    report = write_report(run_folder(tmp_path)).read_text()
    section = report.split("## Environment")[1].strip().splitlines()
    assert section[0] == "- python 3.11.9, keras 3.15.1, backend tensorflow"
    assert section[1:] == ["- packages: keras 3.15.1, numpy 2.1.0", "- devices: /device:CPU:0"]
    assert "{" not in report.split("## Environment")[1]


def test_kfold_seconds_are_tenths(tmp_path):
    folder = run_folder(tmp_path, folds=2, seconds=30.5)
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["fold_metrics"] = [{"fold": k, "folder": f"folds/fold_{k}", "num_val": 10, "best_epoch": 2,
                                "val": {"auc": 0.9, "auc_ci95": [0.8, 1.0]}, "seconds": 15.11} for k in (1, 2)]
    (folder / "metrics.json").write_text(json.dumps(metrics))
    report = write_report(folder).read_text()
    assert "| 15.1 |" in report and "15.1100" not in report
    assert "each image's Grad-CAM heatmap is that fold model's" in report  # the grids are out of fold too


def test_kfold_total_time_reads_as_a_duration(tmp_path):
    folder = run_folder(tmp_path, folds=2, seconds=30.5)
    config = json.loads((folder / "config.json").read_text())
    config["seconds"] = 4012.87
    (folder / "config.json").write_text(json.dumps(config))
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["fold_metrics"] = []
    (folder / "metrics.json").write_text(json.dumps(metrics))
    assert "- total time: 67 min (all folds" in write_report(folder).read_text()


def test_cut_captions_end_with_an_ellipsis(tmp_path, monkeypatch):
    name = "a_very_long_file_name_from_a_camera_0001.png"
    assert shortened(name, 24) == "a_very_long_fil\u20260001.png" and len(shortened(name, 24)) == 24
    assert shortened("short.png", 24) == "short.png"
    root = write_class_folder(tmp_path / "images", per_class=1)
    paths = []
    for index, path in enumerate(sorted(root.rglob("*.png"))):
        paths.append(str(path.rename(path.with_name(f"{name[:-4]}{index}.png"))))
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: figures.append(figure))
    plots.plot_misclassified(paths, np.array([0, 1]), np.array([[0.1, 0.9], [0.8, 0.2]]), ["cat", "dog"],
                             tmp_path / "grid.png")
    titles = [axis.get_title().splitlines()[0] for axis in figures[0].axes if axis.get_title()]
    assert titles and all(title.endswith(".png") and "\u2026" in title for title in titles)


def test_the_equal_error_point_shows_beside_the_threshold_marker(monkeypatch, tmp_path):
    labels, scores = np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9])
    assert equal_error_rate(labels, scores)[0] == pytest.approx(0.5)  # at (0.5, 0.5), where threshold 0.5 is
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: figures.append(figure))
    plots.plot_roc(labels, scores, tmp_path / "roc.png", threshold=0.5)
    figure = figures[0]
    figure.axes[0].get_legend().remove()  # its red marker is not the point on the curve
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3].astype(int)
    red = np.abs(pixels - np.array([214, 39, 40])).sum(axis=-1) < 40  # matplotlib's tab:red
    assert red.sum() > 10
