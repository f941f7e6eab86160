"""`kerasdl predict` and `predict_files`: CSV formats, TTA, streaming and bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from kerasdl.cli.commands import main
from kerasdl.errors import DataError, ModelFileError
from kerasdl.inference.predict import LoadedModel, load_model_file, predict_files, with_tta
from tests.support import write_class_folder, write_tiny_classifier


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A tiny untrained two-class Keras model (32 px) saved as .keras with labels.txt.

    Prediction only needs a saved Keras classifier; a small one keeps each
    CLI call's model loading quick (models of real runs: test_evaluation_models.py).
    """
    folder = tmp_path_factory.mktemp("model")
    write_tiny_classifier(folder)
    return folder / "model.keras"


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Five cat and five dog images in one folder tree, plus a file that is not an image."""
    root = write_class_folder(tmp_path_factory.mktemp("predict") / "images", per_class=5, size=24)
    (root / "notes.txt").write_text("not an image")
    return root


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def assert_one_line_error(result, *fragments: str) -> None:
    """Exit 1, no traceback, and the error is one line naming each fragment."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0]


def test_predict_writes_one_row_per_image_with_class_probabilities(model_file, images, tmp_path):
    output = tmp_path / "predictions.csv"
    result = CliRunner().invoke(main, ["predict", str(model_file), str(images), "--output", str(output),
                                       "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    assert "Predicted 10 images (1 skipped)" in result.output
    assert "notes.txt" in result.output  # the skipped file is named
    rows = read_csv(output)
    assert list(rows[0]) == ["path", "predicted", "cat", "dog"]
    assert sorted(Path(row["path"]).name for row in rows) == sorted(
        p.name for p in images.rglob("*.png"))
    for row in rows:
        probabilities = [float(row["cat"]), float(row["dog"])]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
        assert row["predicted"] == ["cat", "dog"][int(np.argmax(probabilities))]
    assert not list(tmp_path.glob(".*.tmp"))


def test_submission_format_gives_file_name_and_positive_probability(model_file, images, tmp_path):
    table, submission = tmp_path / "table.csv", tmp_path / "submission.csv"
    runner = CliRunner()
    runner.invoke(main, ["predict", str(model_file), str(images), "--output", str(table)])
    result = runner.invoke(main, ["predict", str(model_file), str(images), "--output", str(submission),
                                  "--format", "submission"])
    assert result.exit_code == 0, result.output
    rows = read_csv(submission)
    assert list(rows[0]) == ["img_name", "y_pred"]
    expected = {Path(row["path"]).name: row["dog"] for row in read_csv(table)}
    assert {row["img_name"]: row["y_pred"] for row in rows} == expected


def test_flip_tta_averages_image_and_mirror():
    def predict_batch(images):  # "probability" of class 1 = mean of the left half
        left = images[:, :, : images.shape[2] // 2].mean(axis=(1, 2, 3)) / 255.0
        return np.stack([1 - left, left], axis=1)

    images = np.zeros((2, 4, 4, 3), dtype=np.float32)
    images[0, :, :2] = 255  # left half white: the mirror has it on the right
    plain = predict_batch(images)
    averaged = with_tta(predict_batch, "flip")(images)
    np.testing.assert_allclose(averaged[0], [0.5, 0.5])
    np.testing.assert_allclose(averaged[1], plain[1])
    assert with_tta(predict_batch, "none") is predict_batch
    with pytest.raises(ValueError, match="tta"):
        with_tta(predict_batch, "rotate")


def test_predict_with_flip_tta_on_a_saved_model(model_file, images, tmp_path):
    output = tmp_path / "tta.csv"
    result = CliRunner().invoke(main, ["predict", str(model_file), str(images / "cat"), "--output",
                                       str(output), "--tta", "flip"])
    assert result.exit_code == 0, result.output
    model = load_model_file(model_file)
    first = read_csv(output)[0]
    image = np.asarray(Image.open(first["path"]).convert("RGB").resize((32, 32), Image.BILINEAR),
                       dtype=np.float32)[None]
    expected = (model.predict_batch(image) + model.predict_batch(image[:, :, ::-1].copy())) / 2
    # TF and Pillow resize slightly differently, so allow a little.
    assert float(first["dog"]) == pytest.approx(float(expected[0, 1]), abs=0.02)
    assert float(first["dog"]) != pytest.approx(float(model.predict_batch(image)[0, 1]), abs=1e-6)


def test_predict_reads_a_list_file(model_file, images, tmp_path):
    listing = images / "list.txt"
    listing.write_text("cat/cat_0.png\ndog/dog_1.png\n")
    output = tmp_path / "listed.csv"
    result = CliRunner().invoke(main, ["predict", str(model_file), f"@{listing}", "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert [Path(row["path"]).name for row in read_csv(output)] == ["cat_0.png", "dog_1.png"]


def test_model_file_that_is_not_a_model(images, tmp_path):
    output = tmp_path / "out.csv"
    for name, content in (("model.keras", b"hello"), ("model.tflite", b"\x00" * 64)):
        fake = tmp_path / name
        fake.write_bytes(content)
        result = CliRunner().invoke(main, ["predict", str(fake), str(images), "--output", str(output)])
        assert_one_line_error(result, "Expected", name)
    not_saved_model = tmp_path / "folder"
    not_saved_model.mkdir()
    (not_saved_model / "saved_model.pb").write_bytes(b"garbage")
    result = CliRunner().invoke(main, ["predict", str(not_saved_model), str(images), "--output", str(output)])
    assert_one_line_error(result, "SavedModel")
    assert not output.exists()


def test_a_truncated_keras_file_does_not_load_as_one_and_is_not_called_missing(model_file, images, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(model_file.read_bytes()[:1000])  # a copy cut short
    for command in (["predict", str(run / "model.keras"), str(images), "--output", str(tmp_path / "p.csv")],
                    ["demo", str(run)]):
        result = CliRunner().invoke(main, command)
        assert_one_line_error(result, f"Received: {run / 'model.keras'}, which does not load as a Keras file",
                              "not a complete .keras zip archive (1,000 bytes; truncated")
        assert "not found" not in result.output.lower()


def test_empty_folder_to_predict(model_file, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    output = tmp_path / "out.csv"
    result = CliRunner().invoke(main, ["predict", str(model_file), str(empty), "--output", str(output)])
    assert_one_line_error(result, "Expected images to predict", str(empty))
    (empty / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    result = CliRunner().invoke(main, ["predict", str(model_file), str(empty), "--output", str(output)])
    assert_one_line_error(result, "Expected images to predict", f"{empty}, a folder with no images",
                          "broken.jpg: not an image")
    assert not output.exists() and not list(tmp_path.glob(".*.tmp"))


def test_a_folder_without_images_says_so_and_which_files_count(model_file, tmp_path):
    folder = tmp_path / "in" / "noimgs"
    folder.mkdir(parents=True)
    (folder / "readme.txt").write_text("no pictures here")
    result = CliRunner().invoke(main, ["predict", str(model_file), str(folder), "--output", str(tmp_path / "p.csv")])
    assert_one_line_error(result, f"Received: {folder}, a folder with no images (1 file",
                          "readme.txt: not an image", ".jpg, .jpeg, .png")
    assert "['" not in result.output  # not a Python list of the files


def test_unwritable_output(model_file, images, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for output in (blocker / "out.csv", tmp_path / "missing" / "out.csv", tmp_path):
        result = CliRunner().invoke(main, ["predict", str(model_file), str(images), "--output", str(output)])
        assert_one_line_error(result, "Expected")
    assert not (tmp_path / "missing").exists()


def test_submission_needs_two_classes(tmp_path, images):
    three = LoadedModel(tmp_path / "m.keras", "keras", lambda x: np.full((len(x), 3), 1 / 3), 24, ["a", "b", "c"])
    with pytest.raises(ModelFileError, match="two-class"):
        predict_files(three, images, tmp_path / "out.csv", csv_format="submission", progress=False)
    assert not (tmp_path / "out.csv").exists()


def test_failure_midway_leaves_no_partial_csv(tmp_path, images):
    calls = []

    def failing_predictor(batch):
        calls.append(len(batch))
        if len(calls) > 1:
            raise RuntimeError("device lost")
        return np.full((len(batch), 2), 0.5)

    model = LoadedModel(tmp_path / "m.keras", "keras", failing_predictor, 24, ["cat", "dog"])
    output = tmp_path / "out.csv"
    with pytest.raises(RuntimeError, match="device lost"):
        predict_files(model, images, output, batch_size=3, progress=False)
    assert len(calls) == 2
    assert not output.exists() and not list(tmp_path.glob(".*"))


def test_existing_csv_is_kept_when_prediction_fails(tmp_path, images):
    output = tmp_path / "out.csv"
    output.write_text("old results\n")
    model = LoadedModel(tmp_path / "m.keras", "keras", lambda x: np.full((len(x), 2), 0.5), 24, ["cat", "dog"])
    with pytest.raises(DataError):
        predict_files(model, tmp_path / "nowhere", output, progress=False)
    assert output.read_text() == "old results\n"


def test_a_keras_load_error_is_reported_by_its_first_line_as_the_runners_report_theirs(tmp_path, monkeypatch):
    import zipfile

    import keras

    from kerasdl.inference.runners import first_line

    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:  # a whole zip: the archive check passes, Keras is asked
        archive.writestr("config.json", "{}")
    for error, shown in ((ValueError("x" * 300 + "\nsecond line"), "x" * 200), (ValueError(""), "ValueError")):
        def failing(*args, error=error, **kwargs):
            raise error

        monkeypatch.setattr(keras.saving, "load_model", failing)
        with pytest.raises(ModelFileError) as caught:
            load_model_file(path)
        assert f"does not load as a Keras file ({shown}). Pass a model.keras" in str(caught.value)
        assert first_line(error) in str(caught.value) and "second line" not in str(caught.value)
