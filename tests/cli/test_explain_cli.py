"""`kerasdl explain` end to end: pictures written, bad input in one line naming the flag."""

import re

import keras
import pytest
from click.testing import CliRunner

import tests.support.training_tiny_recipe  # noqa: F401 - registers the tiny_cnn backbone
from kerasdl.cli.commands import main
from kerasdl.errors import ModelFileError
from kerasdl.models.classifier import build_classifier
from tests.support import write_class_folder


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_explain_writes_pictures_and_names_flags_in_errors(tmp_path):
    keras.utils.set_random_seed(0)
    build_classifier("tiny_cnn", 2, weights=None, image_size=24).save(tmp_path / "model.keras")
    images = write_class_folder(tmp_path / "images", per_class=2)
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "model.tflite").write_bytes(b"TFL3")

    result = invoke("explain", tmp_path / "model.keras", images / "cat", images / "dog" / "dog_0.png",
                    "--output", tmp_path / "cams")
    assert result.exit_code == 0, result.output
    assert "Wrote 3 Grad-CAM pictures (feature map backbone)" in result.output and "an image" in result.output
    # one line per image: the image, its predicted class and probability, the picture written
    lines = [line for line in result.output.splitlines() if " -> " in line]
    assert [line.split(":")[0] for line in lines] == [
        str(images / "cat" / "cat_0.png"), str(images / "cat" / "cat_1.png"), str(images / "dog" / "dog_0.png")]
    assert all(re.fullmatch(r".*: class_[01] [01]\.\d{4} -> .*_gradcam\.png", line) for line in lines), lines
    assert lines[-1].endswith(f" -> {tmp_path / 'cams' / 'dog_0_gradcam.png'}")
    assert sorted(p.name for p in (tmp_path / "cams").glob("*.png")) == [
        "cat_0_gradcam.png", "cat_1_gradcam.png", "dog_0_gradcam.png"]

    result = invoke("explain", tmp_path, images, "--output", tmp_path / "cams", "--class", "cow")
    assert result.exit_code == 1 and "--class: " in result.output and "Received: --class cow" in result.output

    result = invoke("explain", tmp_path / "export" / "model.tflite", images)
    assert result.exit_code == 1
    assert f"Pass {tmp_path / 'model.keras'}, the run's Keras model, instead." in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.fixture
def model_and_images(tmp_path):
    keras.utils.set_random_seed(0)
    build_classifier("tiny_cnn", 2, weights=None, image_size=24).save(tmp_path / "model.keras")
    return tmp_path / "model.keras", write_class_folder(tmp_path / "images", per_class=2)


def test_explain_says_what_it_expected_of_its_images(model_and_images, tmp_path, monkeypatch):
    model, images = model_and_images
    result = invoke("explain", model, tmp_path / "nothere.png", "--output", tmp_path / "cams")
    assert result.exit_code == 1 and "Expected images to explain. Received: " in result.output

    # @list.txt: paths relative to the list file's folder, wherever the command runs from
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "some.txt").write_text("../images/cat/cat_0.png\n../images/missing.png\n")
    monkeypatch.chdir(images / "dog")
    result = invoke("explain", model, f"@{tmp_path / 'lists' / 'some.txt'}", "--output", tmp_path / "cams")
    assert result.exit_code == 0, result.output
    skipped = [line for line in result.output.splitlines() if line.startswith("Skipping")]
    assert skipped == [f"Skipping {tmp_path / 'lists' / '..' / 'images' / 'missing.png'}: file not found"]
    assert sorted(p.name for p in (tmp_path / "cams").glob("*.png")) == ["cat_0_gradcam.png"]
    assert "relative to the list file's folder" in " ".join(invoke("explain", "--help").output.split())


def test_a_failed_explain_leaves_nothing(model_and_images, tmp_path, monkeypatch):
    model, images = model_and_images
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("not an image")
    result = invoke("explain", model, tmp_path / "junk", "--output", tmp_path / "out" / "cams")
    assert result.exit_code == 1 and "Expected images to explain" in result.output
    assert not (tmp_path / "out").exists()

    from kerasdl.evaluation import gradcam

    def fail(self, *args, **kwargs):
        raise ModelFileError("Expected gradients. Received: none. Try another model.")

    monkeypatch.setattr(gradcam.GradCam, "__call__", fail)  # fails once the folder is started
    result = invoke("explain", model, images / "cat", "--output", tmp_path / "out" / "cams")
    assert result.exit_code == 1 and "Expected gradients" in result.output
    assert not (tmp_path / "out").exists()
