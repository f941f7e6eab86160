"""`kerasdl explain` end to end: pictures written, bad input in one line naming the flag."""

import keras
from click.testing import CliRunner

import tests.support.training_tiny_recipe  # noqa: F401 - registers the tiny_cnn backbone
from kerasdl.cli.commands import main
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
    assert sorted(p.name for p in (tmp_path / "cams").glob("*.png")) == [
        "cat_0_gradcam.png", "cat_1_gradcam.png", "dog_0_gradcam.png"]

    result = invoke("explain", tmp_path, images, "--output", tmp_path / "cams", "--class", "cow")
    assert result.exit_code == 1 and "--class: " in result.output and "Received: --class cow" in result.output

    result = invoke("explain", tmp_path / "export" / "model.tflite", images)
    assert result.exit_code == 1
    assert f"Pass {tmp_path / 'model.keras'}, the run's Keras model, instead." in result.output
    assert len(result.output.strip().splitlines()) == 1
