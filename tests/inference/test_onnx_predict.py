"""`kerasdl predict` and `kerasdl evaluate` on an exported `.onnx` file: the
same loading path as `.tflite` (runner from `kerasdl.inference.runners`, class names
from the labels.txt beside it), predictions equal to the Keras model's."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kerasdl.cli.commands import main
from kerasdl.data.load import load_data
from kerasdl.errors import ModelFileError
from kerasdl.inference.predict import load_model_file
from kerasdl.models.classifier import build_classifier
from kerasdl.recipe import get_recipe
from tests.support import TINY_RECIPE_FILE as TINY_RECIPE_PATH
from tests.support import write_class_folder

TINY_RECIPE_FILE = str(TINY_RECIPE_PATH)
IMAGE_SIZE = 24


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return write_class_folder(tmp_path_factory.mktemp("onnx") / "images", per_class=8, size=IMAGE_SIZE)


@pytest.fixture(scope="module")
def exported(images, tmp_path_factory) -> Path:
    """A trained tiny classifier as model.keras, and `kerasdl export` of it as export/model.onnx."""
    pytest.importorskip("tf2onnx", reason="the onnx extra is not installed")
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    get_recipe(TINY_RECIPE_FILE)  # registers its tiny_cnn backbone
    keras.utils.set_random_seed(0)
    model = build_classifier("tiny_cnn", 2, weights=None, image_size=IMAGE_SIZE, trainable="all",
                             dropout=0.0)
    data = load_data(images, image_size=IMAGE_SIZE, batch_size=4, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(data.train, epochs=5, verbose=0)
    folder = tmp_path_factory.mktemp("onnx_model")
    model.save(folder / "model.keras")
    (folder / "export").mkdir()
    result = invoke("export", folder / "model.keras", "--format", "onnx", "--data", images,
                    "--output", folder / "export" / "model.onnx")
    assert result.exit_code == 0, result.output
    return folder


def read_predictions(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    return header, [row[1] for row in body], np.array([[float(v) for v in row[2:]] for row in body])


def test_predict_onnx_gives_the_keras_model_predictions(exported, images, tmp_path):
    outputs = {}
    for name in ("model.keras", "export/model.onnx"):
        outputs[name] = tmp_path / f"{Path(name).stem}_{Path(name).suffix[1:]}.csv"
        result = invoke("predict", exported / name, images, "--output", outputs[name])
        assert result.exit_code == 0, result.output
    keras_header, keras_classes, keras_probabilities = read_predictions(outputs["model.keras"])
    header, classes, probabilities = read_predictions(outputs["export/model.onnx"])
    assert header == keras_header == ["path", "predicted", "cat", "dog"]  # names from labels.txt
    assert classes == keras_classes and len(classes) == 16
    np.testing.assert_allclose(probabilities, keras_probabilities, atol=1e-5)
    assert len(set(classes)) == 2  # a trained model, so the agreement means something


def test_evaluate_onnx_writes_the_keras_model_metrics(exported, images, tmp_path):
    metrics = {}
    for name in ("model.keras", "export/model.onnx"):
        out = tmp_path / Path(name).suffix[1:]
        result = invoke("evaluate", exported / name, "--data", images, "--output", out)
        assert result.exit_code == 0, result.output
        metrics[name] = json.loads((out / "metrics.json").read_text())
    onnx, reference = metrics["export/model.onnx"], metrics["model.keras"]
    assert onnx["model_kind"] == "onnx" and reference["model_kind"] == "keras"
    assert onnx["class_names"] == ["cat", "dog"] and onnx["num_samples"] == 16
    assert onnx["confusion_matrix"] == reference["confusion_matrix"]
    for key in ("accuracy", "loss", "auc"):
        assert onnx[key] == pytest.approx(reference[key], abs=1e-5), key


def test_onnx_loads_through_the_tflite_path_with_names_from_beside_it(exported, tmp_path):
    loaded = load_model_file(exported / "export" / "model.onnx")
    assert (loaded.kind, loaded.image_size, loaded.class_names) == ("onnx", IMAGE_SIZE, ["cat", "dog"])
    # Without labels.txt the names come from metadata.json, as kerasdl export writes it.
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(exported / "export" / "model.onnx", alone)
    shutil.copy(exported / "export" / "metadata.json", alone)
    assert load_model_file(alone / "model.onnx").class_names == ["cat", "dog"]
    images = np.random.default_rng(0).uniform(0, 255, (3, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)
    expected = keras.saving.load_model(exported / "model.keras").predict(images, verbose=0)
    np.testing.assert_allclose(loaded.predict_batch(images), expected, atol=1e-5)


def test_onnx_without_onnxruntime_names_the_extra_in_one_line(images, tmp_path, monkeypatch):
    model_file = tmp_path / "model.onnx"
    model_file.write_bytes(b"not checked: the runtime is missing first")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real_find_spec(name, *a))
    line = one_line_error(invoke("predict", model_file, images, "--output", tmp_path / "p.csv"))
    assert "onnxruntime" in line and "pip install 'kerasdl[onnx]'" in line
    line = one_line_error(invoke("evaluate", model_file, "--data", images, "--output", tmp_path / "e"))
    assert "pip install 'kerasdl[onnx]'" in line
    assert not (tmp_path / "p.csv").exists()


def test_a_file_that_is_not_onnx_is_one_clear_line(images, tmp_path):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    model_file = tmp_path / "model.onnx"
    model_file.write_bytes(b"this is not an onnx model")
    line = one_line_error(invoke("predict", model_file, images, "--output", tmp_path / "p.csv"))
    assert "Expected an ONNX model file" in line and "model.onnx" in line
    with pytest.raises(ModelFileError, match="Expected an ONNX model file"):
        load_model_file(model_file)
