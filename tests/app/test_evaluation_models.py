"""A real (tiny) run's evaluation, report and comparison, and `kerasdl evaluate`
on the .keras, SavedModel and .tflite files it wrote."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from kerasdl.cli.commands import main
from tests.support import write_class_folder

PICTURES = ("confusion_matrix.png", "roc.png", "precision_recall.png", "misclassified.png")


def make_run(base: Path) -> Path:
    """One run of a 2-phase MobileNetV2 (alpha 0.35, random weights, 32 px, 1+1 epochs),
    exported as SavedModel and TFLite; the same settings as conftest's tiny_recipe."""
    from kerasdl.app.run import run_recipe
    from kerasdl.recipe import transfer_recipe

    data = write_class_folder(base / "images", per_class=8, size=24)
    recipe = transfer_recipe("tiny", "mobilenetv2", description="test", image_size=32, head_epochs=1,
                             fine_tune_epochs=1, batch_size=4, augment="none")
    recipe.backbone.weights = None
    recipe.backbone.options = {"alpha": 0.35}
    result = run_recipe(recipe, str(data), output_dir=base / "run", verbose=0,
                        export=[("saved_model", "none"), ("tflite", "none")],
                        command=f"kerasdl run tiny --data {data}")
    return result.run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """The tiny run, made once per test session even with pytest-xdist (read-only for tests).

    Under xdist every worker would make its own; the first one makes it in the
    session's shared temporary folder while holding a lock, the others wait
    and reuse it (pytest-xdist's recipe for a fixture that must run once).
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return make_run(tmp_path_factory.mktemp("evaluation"))
    shared = tmp_path_factory.getbasetemp().parent / "evaluation_run"
    with open(f"{shared}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "run" / "report.md").is_file():
            shutil.rmtree(shared, ignore_errors=True)
            make_run(shared)
        fcntl.flock(lock, fcntl.LOCK_UN)
    return shared / "run"


def data_of(run_dir: Path) -> Path:
    return run_dir.parent / "images"


def test_run_writes_metrics_and_every_picture(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("accuracy", "loss", "per_class", "macro_avg", "weighted_avg", "confusion_matrix", "auc",
                "average_precision", "equal_error_rate", "threshold"):
        assert key in metrics
    assert metrics["threshold"]["chosen_by"] == "max balanced accuracy"
    for picture in ("curves.png", *PICTURES):
        assert (run_dir / picture).stat().st_size > 1000, picture


def test_report_has_every_section(run_dir):
    report = (run_dir / "report.md").read_text()
    for text in ("## Data", "| train | 6 | 6 | 12 |", "skipped files: 0", "## Model", "mobilenetv2 (alpha=0.35)",
                 "trainable parameters per phase: head", "## Training", "| fine_tune |", "images/s",
                 "## Metrics (val split, 4 images)", "| ROC-AUC |", "| equal-error rate |",
                 "![Most confidently wrong images](misclassified.png)", "![ROC curve](roc.png)",
                 "| export/model.tflite |", "| export/saved_model/ |", "| model.keras |",
                 f"kerasdl run tiny --data {data_of(run_dir)}"):
        assert text in report, text


def test_report_command_rebuilds_the_report(run_dir, tmp_path):
    copy = Path(shutil.copytree(run_dir, tmp_path / "run", ignore=shutil.ignore_patterns("*.keras", "export")))
    (copy / "report.md").unlink()
    result = CliRunner().invoke(main, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    rebuilt = (copy / "report.md").read_text()
    # The same report, apart from the folder's name and the files left out of the copy.
    before = (run_dir / "report.md").read_text().replace(str(run_dir), str(copy))
    assert rebuilt.split("## Files")[0] == before.split("## Files")[0]
    assert "## Metrics" in rebuilt and "| model.keras |" not in rebuilt


def test_compare_prints_runs_side_by_side(run_dir, tmp_path):
    evaluation = tmp_path / "evaluation"
    evaluation.mkdir()
    (evaluation / "metrics.json").write_text((run_dir / "metrics.json").read_text())
    result = CliRunner().invoke(main, ["compare", str(run_dir), str(evaluation)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"[1] {run_dir}" in lines and f"[2] {evaluation}" in lines
    accuracy = next(line for line in lines if line.startswith("accuracy"))
    assert accuracy.split()[1:] == [f"{json.loads((run_dir / 'metrics.json').read_text())['accuracy']:.4f}"] * 2
    assert next(line for line in lines if line.startswith("recipe")).split()[1:] == ["tiny", "(evaluation)"]

    result = CliRunner().invoke(main, ["compare", str(run_dir), str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "metrics.json" in result.output


def evaluate(run_dir: Path, model_name: str, output: Path, *options: str):
    result = CliRunner().invoke(main, ["evaluate", str(run_dir / model_name), "--data", str(data_of(run_dir)),
                                       "--output", str(output), "--batch-size", "4", *options])
    assert result.exit_code == 0, result.output
    return json.loads((output / "metrics.json").read_text())


@pytest.fixture(scope="module")
def keras_evaluation(run_dir, tmp_path_factory) -> Path:
    """The folder `kerasdl evaluate` wrote for the run's model.keras on the whole image folder."""
    output = tmp_path_factory.mktemp("keras_evaluation")
    evaluate(run_dir, "model.keras", output)
    return output


def test_evaluate_keras_model(keras_evaluation):
    metrics = json.loads((keras_evaluation / "metrics.json").read_text())
    assert metrics["num_samples"] == 16 and metrics["class_names"] == ["cat", "dog"]
    assert metrics["model_kind"] == "keras" and metrics["split"] == "all"
    for picture in PICTURES:
        assert (keras_evaluation / picture).stat().st_size > 1000, picture
    wrong = metrics["confusion_matrix"][0][1] + metrics["confusion_matrix"][1][0]
    assert metrics["misclassified_shown"] == min(16, wrong)


@pytest.mark.parametrize("model_name, kind", [("export/saved_model", "saved_model"),
                                              ("export/model.tflite", "tflite")])
def test_evaluate_exported_models_like_the_keras_one(run_dir, keras_evaluation, tmp_path, model_name, kind):
    metrics = evaluate(run_dir, model_name, tmp_path / "evaluation")
    expected = json.loads((keras_evaluation / "metrics.json").read_text())
    assert metrics["model_kind"] == kind
    for picture in PICTURES:
        assert (tmp_path / "evaluation" / picture).is_file(), picture
    assert metrics["confusion_matrix"] == expected["confusion_matrix"]
    assert metrics["loss"] == pytest.approx(expected["loss"], abs=1e-4)
    assert metrics["auc"] == pytest.approx(expected["auc"], abs=1e-3)


def test_evaluate_with_tta_and_a_given_threshold(run_dir, tmp_path):
    output = tmp_path / "tta"
    result = CliRunner().invoke(main, ["evaluate", str(run_dir / "export/model.tflite"), "--data",
                                       str(data_of(run_dir)), "--output", str(output), "--tta", "flip",
                                       "--threshold", "0.3"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["tta"] == "flip"
    assert metrics["threshold"]["chosen_by"] == "given" and metrics["threshold"]["threshold"] == 0.3


def test_evaluate_rejects_data_with_other_classes(run_dir, tmp_path):
    other = write_class_folder(tmp_path / "other", classes=("a", "b", "c"), per_class=2)
    result = CliRunner().invoke(main, ["evaluate", str(run_dir / "model.keras"), "--data", str(other),
                                       "--output", str(tmp_path / "out")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "cat, dog" in errors[0] and "a, b, c" in errors[0]
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(main, ["evaluate", str(run_dir / "model.keras"), "--data", str(other),
                                       "--threshold", "0.5"])
    assert result.exit_code == 1 and "Error: --threshold: " in result.output
    assert "Expected two classes for a decision threshold" in result.output


def test_evaluate_rejects_a_file_that_is_not_a_model_and_an_unwritable_output(run_dir, tmp_path):
    fake = tmp_path / "model.tflite"
    fake.write_bytes(b"not a flatbuffer")
    result = CliRunner().invoke(main, ["evaluate", str(fake), "--data", str(data_of(run_dir))])
    assert result.exit_code == 1 and result.output.startswith("Error: Expected a TFLite model file")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    result = CliRunner().invoke(main, ["evaluate", str(run_dir / "export/model.tflite"), "--data",
                                       str(data_of(run_dir)), "--output", str(blocker / "evaluation")])
    assert result.exit_code == 1 and "Expected a writable output folder" in result.output
    result = CliRunner().invoke(main, ["evaluate", str(run_dir / "export/model.tflite"), "--data",
                                       str(data_of(run_dir)), "--threshold", "1.5"])
    assert result.exit_code == 2


def test_evaluate_model_file_is_the_python_side_of_kerasdl_evaluate(run_dir, tmp_path):
    from kerasdl.errors import DataError
    from kerasdl.evaluation.evaluate import evaluate_model_file

    cli = CliRunner().invoke(main, ["evaluate", str(run_dir / "model.keras"), "--data",
                                    str(run_dir.parent / "images"), "--output", str(tmp_path / "cli")])
    assert cli.exit_code == 0, cli.output
    result = evaluate_model_file(run_dir / "model.keras", str(run_dir.parent / "images"),
                                 output_dir=tmp_path / "api")
    assert result.output_dir == tmp_path / "api" and (tmp_path / "api" / "metrics.json").exists()
    assert result.metrics["accuracy"] == json.loads((tmp_path / "cli" / "metrics.json").read_text())["accuracy"]
    assert result.split == result.metrics["split"]
    three = write_class_folder(tmp_path / "three", classes=("a", "b", "c"), per_class=2)
    with pytest.raises(DataError, match="threshold=0.5") as raised:
        evaluate_model_file(run_dir / "model.keras", str(three), threshold=0.5)
    assert raised.value.argument == "threshold"
