"""k-fold cross-validation (`kerasdl run --folds K`): the fold split, the layout of the run
folder, out-of-fold metrics, the fold ensemble, predicting over folds, and resuming a fold."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import urllib.request

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kerasdl.cli import main
from kerasdl.data import load
from kerasdl.data.folds import FoldPlan, plan_folds
from kerasdl.data.splits import fold_numbers, kfold_pool
from kerasdl.data.types import ImageFiles
from kerasdl.errors import DataError
from tests.support import TINY_RECIPE_FILE, write_class_folder
from tests.training.test_training import Interrupted


def files_of(labels):
    return ImageFiles([f"{i}.png" for i in range(len(labels))], list(labels), [False] * len(labels))


def test_folds_are_stratified_seeded_and_cover_every_image_once():
    files = files_of([0] * 10 + [1] * 7)
    numbers = fold_numbers(files, 3, seed=4, num_classes=2)
    assert sorted(set(numbers)) == [1, 2, 3]
    labels = np.asarray(files.labels)
    for fold in (1, 2, 3):  # each class dealt evenly: 10 -> 4/3/3, 7 -> 3/2/2
        assert sorted(np.bincount(labels[numbers == fold], minlength=2)) in ([2, 3], [2, 4], [3, 3], [3, 4])
    assert (fold_numbers(files, 3, seed=4, num_classes=2) == numbers).all()
    assert (fold_numbers(files, 3, seed=5, num_classes=2) != numbers).any()


def test_more_folds_than_the_smallest_class_is_refused():
    with pytest.raises(DataError, match="at most 7 folds") as caught:
        fold_numbers(files_of([0] * 10 + [1] * 7), 8, seed=0, num_classes=2)
    assert caught.value.argument == "folds"


def test_the_test_split_is_a_single_runs_and_stays_out_of_the_pool():
    from kerasdl.data.splits import split_files

    files = files_of([0] * 20 + [1] * 20)
    single = split_files({"all": files}, val_split=0.2, test_split=0.25, seed=3, num_classes=2)
    parts = kfold_pool({"all": files}, val_split=0.2, test_split=0.25, seed=3, num_classes=2)
    assert parts["test"].paths == single["test"].paths
    assert sorted(parts["pool"].paths) == sorted(single["train"].paths + single["val"].paths)
    plan = FoldPlan(class_names=["a", "b"], pool=parts["pool"], test=parts["test"], skipped=[],
                    numbers=fold_numbers(parts["pool"], 5, seed=3, num_classes=2))
    fold_2 = plan.split(2).files
    assert plan.split(2).fold == 2 and plan.folds == 5
    assert fold_2["test"].paths == single["test"].paths
    assert len(fold_2["val"]) == 6 and not set(fold_2["val"].paths) & set(fold_2["train"].paths)


SCANNED = []  # each scan of the source's images in kfold_run, as the number of files checked


@pytest.fixture(scope="module")
def kfold_run(tmp_path_factory):
    """A 3-fold run of the tiny CNN recipe with a test split, and its images."""
    root = tmp_path_factory.mktemp("kfold")
    images = write_class_folder(root / "stripes", per_class=10, size=24)
    out = root / "run"
    scan_images = load.scan_images

    def counting_scan(entries, **kwargs):
        SCANNED.append(len(entries))
        return scan_images(entries, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(load, "scan_images", counting_scan)
        result = CliRunner().invoke(main, [
            "run", str(TINY_RECIPE_FILE), "--data", str(images), "--output", str(out), "--quiet",
            "--folds", "3", "--set", "data.test_split=0.2"])
    assert result.exit_code == 0, result.output
    return out, images, result.output


def test_the_folds_are_dealt_once_from_one_scan_of_the_source(kfold_run):
    """The plan scans the 20 images once; each fold and the export's parity check load its split
    (before, every fold scanned and dealt the folds again, and the export a third time)."""
    assert SCANNED == [20]


def test_a_fold_split_loads_the_plans_files_without_a_scan(tmp_path, monkeypatch):
    images = write_class_folder(tmp_path / "stripes", per_class=6, size=24)
    plan = plan_folds(images, folds=3, seed=1)
    monkeypatch.setattr(load, "scan_images", None)  # load_data(split=...) must not scan again
    data = load.load_data(images, image_size=16, batch_size=2, split=plan.split(2))
    assert data.files["val"].paths == [path for path, fold in zip(plan.pool.paths, plan.numbers) if fold == 2]
    assert sorted(data.files["train"].paths + data.files["val"].paths) == sorted(plan.pool.paths)
    assert data.class_names == plan.class_names and data.test is None


def test_data_fold_is_no_recipe_field():
    """The fold a run validates on is a split given to it, not a recipe setting (issue 28)."""
    from kerasdl.errors import RecipeError
    from kerasdl.recipe import DataConfig, apply_overrides, get_recipe

    assert "fold" not in {field.name for field in dataclasses.fields(DataConfig)}
    with pytest.raises(RecipeError, match="Received: 'data.fold'"):
        apply_overrides(get_recipe("mobilenetv2-transfer"), ["data.fold=1"])


def test_a_kfold_run_writes_one_run_per_fold_and_out_of_fold_metrics(kfold_run):
    out, images, output = kfold_run
    for fold in (1, 2, 3):
        config = json.loads((out / "folds" / f"fold_{fold}" / "config.json").read_text())
        assert config["status"] == "complete" and config["fold"] == fold and "fold" not in config["recipe"]["data"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "out-of-fold" and metrics["folds"] == 3 and metrics["num_samples"] == 16
    assert metrics["auc_ci95"][0] <= metrics["auc"] <= metrics["auc_ci95"][1]
    assert [fold["fold"] for fold in metrics["fold_metrics"]] == [1, 2, 3]
    assert sum(fold["num_val"] for fold in metrics["fold_metrics"]) == 16
    assert all("auc" in fold["test"] and "auc_ci95" in fold["val"] for fold in metrics["fold_metrics"])
    assert metrics["ensemble_test"]["num_models"] == 3 and metrics["ensemble_test"]["num_samples"] == 4
    with open(out / "oof_predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    tested = {row["path"] for row in csv.DictReader(open(out / "split.csv")) if row["split"] == "test"}
    assert len(rows) == 16 and not tested & {row["path"] for row in rows}
    assert sorted({row["fold"] for row in rows}) == ["1", "2", "3"]
    report = (out / "report.md").read_text()
    assert "## Folds" in report and "(folds/fold_2/report.md)" in report and "averaged, on the test split" in report
    assert "ensemble of 3 on the test split" in output and "3 times one model's size" in output
    manifest = json.loads((out / "manifest.json").read_text())
    assert "folds/fold_3/model.keras" in manifest["files"] and "oof_predictions.csv" in manifest["files"]


def test_out_of_fold_predictions_are_each_fold_models_own(kfold_run):
    out, images, _ = kfold_run
    with open(out / "oof_predictions.csv", newline="") as handle:
        row = next(row for row in csv.DictReader(handle) if row["fold"] == "2")
    fold_model = keras.saving.load_model(out / "folds" / "fold_2" / "model.keras")
    image = np.asarray(keras.utils.load_img(row["path"]), dtype="float32")[None]
    assert float(fold_model.predict_on_batch(image)[0, 1]) == pytest.approx(float(row["dog"]), abs=1e-5)


def test_the_run_model_averages_the_folds_and_predict_takes_the_run_folder(kfold_run, tmp_path):
    out, images, _ = kfold_run
    ensemble = keras.saving.load_model(out / "model.keras")
    members = [keras.saving.load_model(out / "folds" / f"fold_{k}" / "model.keras") for k in (1, 2, 3)]
    batch = np.random.default_rng(0).uniform(0, 255, (4, 24, 24, 3)).astype("float32")
    expected = np.mean([member.predict_on_batch(batch) for member in members], axis=0)
    np.testing.assert_allclose(ensemble.predict_on_batch(batch), expected, atol=1e-5)

    result = CliRunner().invoke(main, ["predict", str(out), str(images), "--output", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "p.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 20 and {"cat", "dog"} <= set(rows[0])
    submission = CliRunner().invoke(main, ["predict", str(out), str(images), "--format", "submission",
                                           "--output", str(tmp_path / "s.csv")])
    assert submission.exit_code == 0, submission.output
    assert (tmp_path / "s.csv").read_text().splitlines()[0].startswith("img_name")


def test_grad_cam_explains_a_kfold_run_everywhere(kfold_run, tmp_path):
    """explain (run folder, model.keras, --class), evaluate's grids, the report's grids and the demo's
    heatmaps of a k-fold run: its ensemble explained as the mean of its fold models' heatmaps."""
    from tests.app.test_demo import post, serve

    out, images, _ = kfold_run
    report = (out / "report.md").read_text()
    for grid in ("cam_wrong.png", "cam_right.png"):  # out of fold, each image by its own fold's model
        assert (out / grid).is_file() and f"]({grid})" in report
    image = sorted((images / "dog").glob("*.png"))[0]
    for model, flags in ((out, []), (out / "model.keras", ["--class", "cat"])):
        result = CliRunner().invoke(main, ["explain", str(model), str(image), "--output", str(tmp_path / "x"),
                                           *flags])
        assert result.exit_code == 0, result.output
        assert "fold_1..fold_3/backbone" in result.output and (tmp_path / "x" / f"{image.stem}_gradcam.png").is_file()
    result = CliRunner().invoke(main, ["evaluate", str(out / "model.keras"), "--data", str(images),
                                       "--output", str(tmp_path / "evaluation")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "evaluation" / "cam_wrong.png").is_file() and (tmp_path / "evaluation" / "cam_right.png").is_file()
    server = serve(out)
    try:
        with urllib.request.urlopen(server.url + "info", timeout=30) as response:
            assert json.loads(response.read())["heatmaps"] is True
        status, answer = post(server.url, image.read_bytes(), route="explain")
        assert status == 200 and answer["heatmap"].startswith("data:image/png;base64,"), answer
    finally:
        server.shutdown()
        server.server_close()


def test_export_folds_best_ships_one_fold_with_its_parity_check(tmp_path):
    images = write_class_folder(tmp_path / "stripes", per_class=6, size=24)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "run", str(TINY_RECIPE_FILE), "--data", str(images), "--output", str(out), "--quiet",
        "--folds", "2", "--set", "export.folds=best", "--export", "tflite"])
    assert result.exit_code == 0, result.output
    shipped = keras.saving.load_model(out / "model.keras")
    assert not any(layer.name.startswith("fold_") for layer in shipped.layers)
    metrics = json.loads((out / "metrics.json").read_text())
    best = max(metrics["fold_metrics"], key=lambda fold: fold["best_monitored"])
    chosen = keras.saving.load_model(out / best["folder"] / "model.keras")
    batch = np.random.default_rng(1).uniform(0, 255, (3, 24, 24, 3)).astype("float32")
    np.testing.assert_allclose(shipped.predict_on_batch(batch), chosen.predict_on_batch(batch), atol=1e-6)
    parity = json.loads((out / "export" / "parity.json").read_text())
    assert parity["model.tflite"]["top1_agreement"] >= 0.99
    assert not list((out / "folds").glob("fold_*/export"))  # the folds themselves export nothing


@pytest.mark.parametrize("flags, message", [
    (["--folds", "1"], "folds of 2 or more"),
    (["--folds", "7"], "at most 6 folds"),
    (["--folds", "3", "--set", "export.folds=worst"], "export.folds from: all, best"),
    (["--folds", "3", "--set", "data.test_split=0.99"],  # issue 27: it held out 75% silently
     "Received: data.test_split=0.99, which holds out 8 of the 12 images (67%) and leaves cat 2."),
])
def test_bad_fold_options_are_one_line_before_any_folder(tmp_path, flags, message):
    images = write_class_folder(tmp_path / "stripes", per_class=6, size=24)
    result = CliRunner().invoke(main, ["--quiet", "run", str(TINY_RECIPE_FILE), "--data", str(images),
                                       "--output", str(tmp_path / "run"), *flags])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "run").exists()


def _interrupted_kfold_run(monkeypatch, arguments, fold: str, *, at: tuple[int, int]):
    """Invokes `kerasdl ARGUMENTS`, interrupted in `fold` once the checkpoint of (phase, epoch) `at` is written."""
    from kerasdl.training import callbacks, checkpoints, engine

    write_checkpoint = checkpoints.write_checkpoint

    def stop(folder, state, **kwargs):
        path = write_checkpoint(folder, state, **kwargs)
        if fold in str(folder) and (state.phase_index, state.epochs_done_in_phase) == at:
            raise Interrupted()
        return path

    with monkeypatch.context() as patch:
        for module in (engine, callbacks):  # both writers: each epoch's callback and the phase end
            patch.setattr(module, "write_checkpoint", stop)
        return CliRunner().invoke(main, arguments)


def test_an_interrupted_fold_resumes_and_the_finished_ones_are_kept(tmp_path, monkeypatch):

    images = write_class_folder(tmp_path / "stripes", per_class=6, size=24)
    out = tmp_path / "run"
    flags = ["run", str(TINY_RECIPE_FILE), "--data", str(images), "--quiet", "--folds", "3"]
    interrupted = _interrupted_kfold_run(monkeypatch, [*flags, "--output", str(out)], "fold_2", at=(1, 1))
    assert isinstance(interrupted.exception, Interrupted), interrupted.output
    first = (out / "folds" / "fold_1" / "model.keras").stat().st_mtime_ns
    assert not (out / "folds" / "fold_3").exists()

    resumed = CliRunner().invoke(main, [*flags, "--resume", str(out)])
    assert resumed.exit_code == 0, resumed.output
    assert "Fold 1 of 3: finished before" in resumed.output and "Fold 2 of 3: resuming" in resumed.output
    assert "resuming at epoch" in resumed.output
    assert (out / "folds" / "fold_1" / "model.keras").stat().st_mtime_ns == first
    config = json.loads((out / "config.json").read_text())
    assert config["status"] == "complete" and len(config["resumed"]) == 1
    assert json.loads((out / "metrics.json").read_text())["num_samples"] == 12


def test_a_time_budget_is_shared_by_the_folds(tmp_path):
    images = write_class_folder(tmp_path / "stripes", per_class=6, size=24)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", str(TINY_RECIPE_FILE), "--data", str(images), "--output", str(out),
                                       "--quiet", "--folds", "2", "--time-budget", "10m"])
    assert result.exit_code == 0, result.output
    first, second = (json.loads((out / "folds" / f"fold_{k}" / "config.json").read_text())["time_budget"]
                     for k in (1, 2))
    assert 240 < first["budget_s"] <= 300  # half of the ten minutes, less the time spent before fold 1
    assert first["budget_s"] < second["budget_s"] < 600  # fold 1 took less than its half


def test_too_small_a_budget_for_the_folds_is_refused_and_leaves_no_folder(tmp_path):
    images = write_class_folder(tmp_path / "stripes", per_class=6, size=24)
    result = CliRunner().invoke(main, ["--quiet", "run", str(TINY_RECIPE_FILE), "--data", str(images),
                                       "--output", str(tmp_path / "run"), "--folds", "3", "--time-budget", "1s"])
    assert result.exit_code == 1 and "for 3 folds" in result.output, result.output
    assert "Received: --time-budget 1s. Pass --time-budget " in result.output  # issue 27: not "less"
    assert re.search(r"at least [\d.]+ (s|min) for 3 folds", result.output), result.output
    assert not (tmp_path / "run").exists()


def _folder_snapshot(folder):
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_a_kfold_resume_refuses_other_data_or_no_folds_and_rewrites_nothing(tmp_path, monkeypatch):
    """Issue 27: other images of the same class counts, and --resume without --folds."""
    import shutil


    images = write_class_folder(tmp_path / "stripes", per_class=6, size=24)
    out = tmp_path / "run"
    flags = ["run", str(TINY_RECIPE_FILE), "--data", str(images), "--quiet", "--folds", "3"]
    interrupted = _interrupted_kfold_run(monkeypatch, [*flags, "--output", str(out)], "fold_1", at=(0, 1))
    assert isinstance(interrupted.exception, Interrupted), interrupted.output
    started = json.loads((out / "config.json").read_text())["data"]["files"]
    assert started["count"] == 12 and len(started["digest"]) == 64
    before = _folder_snapshot(out)

    other = tmp_path / "other"  # the same class counts: one image renamed, one replaced by a larger one
    shutil.copytree(images, other)
    (other / "cat" / "cat_0.png").rename(other / "cat" / "cat_new.png")
    write_class_folder(tmp_path / "big", per_class=1, size=48)
    shutil.copy(tmp_path / "big" / "dog" / "dog_0.png", other / "dog" / "dog_3.png")
    refused = CliRunner().invoke(main, ["--quiet", *flags, "--data", str(other), "--resume", str(out)])
    lines = refused.output.strip().splitlines()
    assert refused.exit_code == 1 and len(lines) == 1, refused.output
    assert lines[0].startswith("Error: --data: Expected the images the run in")
    assert "1 file added, 1 removed, 1 changed size (first: cat/cat_new.png)" in lines[0]

    no_folds = CliRunner().invoke(main, ["--quiet", *flags[:-2], "--resume", str(out)])
    assert no_folds.exit_code == 1, no_folds.output
    assert "this run is a 3-fold run: add --folds 3." in no_folds.output
    assert _folder_snapshot(out) == before  # nothing of the run folder rewritten
