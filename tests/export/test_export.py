"""Export: TFLite (float32/float16/dynamic/int8), SavedModel, ONNX, parity, side files.

Most tests use a tiny registered backbone of stock Keras layers, trained once
per module, so each conversion takes seconds; one slow test converts a tiny
MobileNetV2 (the real architecture) to float32 and int8 (about 3 minutes on
a busy 2-core machine).
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import kerasdl
from kerasdl.backbones.registry import BACKBONES, BackboneSpec
from kerasdl.cli.commands import main
from kerasdl.data.pipeline import make_dataset
from kerasdl.errors import ExportError, ExportRejectedError
from kerasdl.export.exporter import export_model
from kerasdl.export.model_file import find_custom_layers
from kerasdl.export.options import ExportOptions, parse_export_list, rejected_path
from kerasdl.export.parity import compare_predictions, is_rejected
from kerasdl.export.tflite import representative_files
from kerasdl.inference.batches import collect_predictions
from kerasdl.inference.runners import TFLiteModel
from kerasdl.recipe import transfer_recipe
from tests.support import write_class_folder

IMAGE_SIZE = 24


def tiny_conv_backbone(*, include_top, weights, input_shape):
    """A two-convolution feature extractor: converts to TFLite in seconds."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    return keras.Model(inputs, x)


@pytest.fixture(scope="module")
def tiny_backbone():
    """Registers `tinyconv` for this module only."""
    spec = BackboneSpec("tinyconv", tiny_conv_backbone, default_size=IMAGE_SIZE, preprocessing="tf",
                        min_size=16, family="test")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(BACKBONES, "tinyconv", spec)
        yield "tinyconv"


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory) -> Path:
    """Two classes (cat, dog), 12 PNG images each."""
    return write_class_folder(tmp_path_factory.mktemp("export_data") / "images", per_class=12,
                              size=IMAGE_SIZE)


def fit_on_folder(model, folder: Path, *, image_size: int, epochs: int) -> None:
    data = kerasdl.load_data(folder, image_size=image_size, batch_size=4, val_split=0.25, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(data.train, epochs=epochs, verbose=0)


@pytest.fixture(scope="module")
def tiny_model_file(tiny_backbone, data_folder, tmp_path_factory) -> Path:
    """A trained tinyconv classifier saved as model.keras."""
    keras.utils.set_random_seed(0)
    model = kerasdl.build_classifier(tiny_backbone, 2, weights=None, image_size=IMAGE_SIZE,
                                     trainable="all", dropout=0.0)
    fit_on_folder(model, data_folder, image_size=IMAGE_SIZE, epochs=15)
    path = tmp_path_factory.mktemp("tiny_model") / "model.keras"
    model.save(path)
    return path


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# ------------------------------------------------------------ pure logic


def test_parse_export_list_knows_formats_and_quantizations():
    assert parse_export_list("saved_model, tflite,tflite:int8,onnx") == [
        ("saved_model", "none"), ("tflite", "none"), ("tflite", "int8"), ("onnx", "none")]
    assert parse_export_list("none") == []
    for bad in ("tflite:int4", "coreml", "onnx:int8"):
        with pytest.raises(ExportError, match="Expected export formats"):
            parse_export_list(bad)


def test_export_targets_are_typed_and_still_pairs():
    from kerasdl.export.options import ExportTarget

    assert ExportTarget.tflite("int8") == ("tflite", "int8")
    assert ExportTarget.saved_model() == ExportTarget("saved_model", "none")
    assert [str(t) for t in parse_export_list("tflite:float16,onnx")] == ["tflite:float16", "onnx"]
    assert ExportTarget.tflite("dynamic").file_name == "model_dynamic.tflite"
    assert ExportTarget.onnx().file_name == "model.onnx"
    with pytest.raises(ExportError, match="Received: 'tflite:int4'"):
        ExportTarget.tflite("int4")


def test_rejection_rule_and_rejected_names():
    labels = np.array([0, 0, 1, 1])
    keras_probs = np.eye(2)[labels] * 0.9 + 0.05
    half_wrong = np.eye(2)[[0, 1, 1, 0]] * 0.9 + 0.05
    parity = compare_predictions(labels, keras_probs, half_wrong)
    assert parity["keras_accuracy"] == 1.0 and parity["accuracy"] == 0.5
    assert parity["top1_agreement"] == 0.5 and parity["accuracy_change"] == -0.5
    assert parity["max_abs_probability_difference"] == pytest.approx(0.9)
    assert is_rejected(parity, 0.01) and not is_rejected(parity, 0.5)
    assert not is_rejected(compare_predictions(labels, keras_probs, keras_probs), 0.0)
    assert rejected_path("export/model_int8.tflite") == Path("export/model_int8.rejected.tflite")
    assert rejected_path("out/saved_model") == Path("out/saved_model.rejected")
    with pytest.raises(ExportError, match="max_accuracy_drop=2") as raised:
        ExportOptions(max_accuracy_drop=2)
    assert raised.value.argument == "max_accuracy_drop"


def test_representative_sample_is_random_not_the_first_class(data_folder):
    data = kerasdl.load_data(data_folder, image_size=IMAGE_SIZE, val_split=0.25, seed=0)
    sample = representative_files(data.files["train"], size=6, seed=0)
    assert len(sample) == 6 and set(sample.labels) == {0, 1}
    assert len(representative_files(data.files["train"], size=1000)) == len(data.files["train"])


def test_int8_without_images_is_refused_before_writing(tmp_path):
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2, activation="softmax")])
    with pytest.raises(ExportError, match="Received: an empty set"):
        export_model(model, tmp_path / "out", formats=[("tflite", "int8")], class_names=["a", "b"],
                     representative_images=iter([]))
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------ CLI: good exports


def test_cli_export_tflite_writes_side_files_and_predict_runs_it(tiny_model_file, data_folder, tmp_path):
    out = tmp_path / "mobile"
    out.mkdir()
    result = invoke("export", tiny_model_file, "--format", "tflite", "--data", data_folder,
                    "--output", out / "model.tflite")
    assert result.exit_code == 0, result.output
    assert "top-1 agreement 1.0000" in result.output
    assert (out / "labels.txt").read_text().split() == ["cat", "dog"]
    parity = json.loads((out / "parity.json").read_text())["model.tflite"]
    assert parity["num_samples"] == 4 and parity["rejected"] is False
    assert parity["max_abs_probability_difference"] < 1e-4
    assert parity["accuracy"] == parity["keras_accuracy"] > 0.8
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["class_names"] == ["cat", "dog"]
    assert metadata["kerasdl_version"] == kerasdl.__version__
    assert metadata["input"]["value_range"] == [0, 255]
    assert "x * 0.00784314 + -1" in metadata["input"]["normalisation"]
    entry = metadata["files"]["model.tflite"]
    assert entry["input"]["dtype"] == "float32" and entry["input"]["shape"][1:] == [24, 24, 3]
    assert entry["quantization"] == "none" and entry["parity"]["top1_agreement"] == 1.0

    # The same file runs through `kerasdl predict` and `kerasdl evaluate` with LiteRT.
    csv_path = tmp_path / "predictions.csv"
    result = invoke("predict", out / "model.tflite", data_folder / "dog", "--output", csv_path)
    assert result.exit_code == 0, result.output
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "path,predicted,cat,dog" and len(rows) == 13
    assert sum(row.split(",")[1] == "dog" for row in rows[1:]) >= 10
    result = invoke("evaluate", out / "model.tflite", "--data", data_folder, "--output", tmp_path / "ev")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["accuracy"] > 0.8


def test_cli_export_int8_uses_uint8_input_and_float_io_option(tiny_model_file, data_folder, tmp_path):
    result = invoke("export", tiny_model_file, "--quantize", "int8", "--data", data_folder,
                    "--representative-size", 8, "--output", tmp_path / "model_int8.tflite")
    assert result.exit_code == 0, result.output
    runner = TFLiteModel(tmp_path / "model_int8.tflite")
    assert runner.input_dtype == np.uint8 and runner.output_dtype == np.uint8
    entry = json.loads((tmp_path / "metadata.json").read_text())["files"]["model_int8.tflite"]
    assert entry["input"]["dtype"] == "uint8" and "scale" in entry["input"]["quantization"]
    assert entry["int8_io"] == "uint8" and entry["output"]["how"].startswith("probability")
    assert entry["bias_correction"] is True

    result = invoke("export", tiny_model_file, "--quantize", "int8", "--int8-io", "float",
                    "--no-int8-bias-correction", "--data", data_folder, "--representative-size", 8,
                    "--max-accuracy-drop", 1, "--output", tmp_path / "model_int8_float.tflite")
    assert result.exit_code == 0, result.output
    runner = TFLiteModel(tmp_path / "model_int8_float.tflite")
    assert runner.input_dtype == np.float32 and runner.output_dtype == np.float32
    entry = json.loads((tmp_path / "metadata.json").read_text())["files"]["model_int8_float.tflite"]
    assert entry["bias_correction"] is False
    # Both files share one metadata.json and one parity.json.
    assert set(json.loads((tmp_path / "parity.json").read_text())) == {
        "model_int8.tflite", "model_int8_float.tflite"}


def test_cli_export_saved_model(tiny_model_file, data_folder, tmp_path):
    result = invoke("export", tiny_model_file, "--format", "saved_model", "--data", data_folder,
                    "--output", tmp_path / "served")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "served" / "saved_model.pb").is_file()
    parity = json.loads((tmp_path / "parity.json").read_text())["served"]
    assert parity["top1_agreement"] == 1.0 and parity["max_abs_probability_difference"] < 1e-5


# ------------------------------------------------- CLI: rejection, bad input


def test_cli_export_rejects_a_file_that_loses_accuracy(tiny_model_file, data_folder, tmp_path, monkeypatch):
    # A broken conversion: the file swaps the two classes' probabilities.
    real_predict = TFLiteModel.predict_batch
    monkeypatch.setattr(TFLiteModel, "predict_batch", lambda self, x: real_predict(self, x)[:, ::-1])
    output = tmp_path / "model.tflite"
    result = CliRunner().invoke(main, ["export", str(tiny_model_file), "--data", str(data_folder),
                                       "--output", str(output)])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert "model.tflite (accuracy" in result.output and "rejected" in result.output
    assert not output.exists() and (tmp_path / "model.rejected.tflite").is_file()
    parity = json.loads((tmp_path / "parity.json").read_text())["model.tflite"]
    assert parity["rejected"] is True and parity["file"] == "model.rejected.tflite"
    assert parity["accuracy_change"] < -0.01
    assert not (tmp_path / "metadata.json").exists()  # it lists usable files only


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def test_cli_export_refuses_custom_layers(data_folder, tmp_path):
    @keras.saving.register_keras_serializable(package="userpkg")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(Doubler()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    model.save(tmp_path / "custom.keras")
    assert find_custom_layers(tmp_path / "custom.keras") == ["userpkg>Doubler"]
    line = one_line_error(invoke_unchecked("export", tmp_path / "custom.keras", "--data", data_folder,
                                           "--output", tmp_path / "model.tflite"))
    assert "custom layers userpkg>Doubler" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["custom.keras"]


def invoke_unchecked(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_export_bad_paths_and_data(tiny_model_file, data_folder, tmp_path):
    line = one_line_error(invoke_unchecked("export", tiny_model_file, "--data", data_folder,
                                           "--output", tmp_path / "missing" / "model.tflite"))
    assert line.startswith("Error: --output: ") and "does not exist" in line and "Create it first" in line
    existing = tmp_path / "model.tflite"
    existing.write_bytes(b"old")
    line = one_line_error(invoke_unchecked("export", tiny_model_file, "--data", data_folder,
                                           "--output", existing))
    assert line.startswith("Error: --output: ") and "--overwrite" in line and existing.read_bytes() == b"old"
    empty = tmp_path / "empty"
    (empty / "cat").mkdir(parents=True)
    (empty / "dog").mkdir()
    line = one_line_error(invoke_unchecked("export", tiny_model_file, "--quantize", "int8", "--data", empty,
                                           "--output", tmp_path / "model_int8.tflite"))
    assert "Expected images" in line
    line = one_line_error(invoke_unchecked("export", tiny_model_file, "--output", tmp_path / "m.tflite"))
    assert line.startswith("Error: --data: Expected --data with the labelled images")
    line = one_line_error(invoke_unchecked("export", tiny_model_file, "--data", data_folder,
                                           "--output", tmp_path / "model.onnx"))
    assert line.startswith("Error: --output: ") and "ending in .tflite" in line
    result = invoke_unchecked("export", tiny_model_file, "--format", "saved_model", "--quantize", "int8",
                              "--data", data_folder, "--output", tmp_path / "sm")
    assert result.exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "model.tflite"]


def test_cli_export_onnx_without_packages_says_what_to_install(tiny_model_file, data_folder, tmp_path,
                                                                monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tf2onnx" else real_find_spec(name, *a))
    line = one_line_error(invoke_unchecked("export", tiny_model_file, "--format", "onnx", "--data",
                                           data_folder, "--output", tmp_path / "model.onnx"))
    assert "tf2onnx" in line and "not installed" in line and "kerasdl[onnx]" in line


def test_cli_export_onnx_checked_with_onnxruntime(tiny_model_file, data_folder, tmp_path):
    pytest.importorskip("tf2onnx", reason="the onnx extra is not installed")
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    result = invoke("export", tiny_model_file, "--format", "onnx", "--data", data_folder,
                    "--output", tmp_path / "model.onnx")
    assert result.exit_code == 0, result.output
    parity = json.loads((tmp_path / "parity.json").read_text())["model.onnx"]
    assert parity["top1_agreement"] == 1.0 and parity["max_abs_probability_difference"] < 1e-4
    entry = json.loads((tmp_path / "metadata.json").read_text())["files"]["model.onnx"]
    assert entry["format"] == "onnx" and entry["input"]["shape"] == [None, 24, 24, 3]


# ------------------------------------------------------------- in a run


RECIPE_FILE = """
from kerasdl.recipe import transfer_recipe

def recipe():
    made = transfer_recipe("tinyexport", "tinyconv", description="export test", image_size=24,
                           head_epochs=4, fine_tune_epochs=0, batch_size=4, augment="none",
                           head_learning_rate=0.01)
    made.backbone.weights = None
    made.head.dropout = 0.0
    made.phases[0].trainable = "all"
    return made
"""


def test_cli_run_exports_float_and_int8_with_parity(tiny_backbone, data_folder, tmp_path):
    recipe_file = tmp_path / "tiny_recipe.py"
    recipe_file.write_text(RECIPE_FILE)
    result = invoke("run", recipe_file, "--data", data_folder, "--output", tmp_path / "run", "--quiet",
                    "--export", "tflite,tflite:int8", "--representative-size", 6,
                    "--max-accuracy-drop", 1)
    assert result.exit_code == 0, result.output
    export_dir = tmp_path / "run" / "export"
    parity = json.loads((export_dir / "parity.json").read_text())
    assert set(parity) == {"model.tflite", "model_int8.tflite"}
    assert parity["model.tflite"]["top1_agreement"] == 1.0
    metadata = json.loads((export_dir / "metadata.json").read_text())
    assert metadata["files"]["model_int8.tflite"]["input"]["dtype"] == "uint8"
    # A run's int8 export is the search too; this file passed with every op int8.
    search = parity["model_int8.tflite"]["int8_search"]
    assert [step["float_ops"] for step in search["steps"]] == [0] and search["float_ops"] == []
    assert metadata["files"]["model_int8.tflite"]["int8_search"] == search
    assert "Parity of exported files" in (tmp_path / "run" / "report.md").read_text()




def test_run_with_rejected_export_keeps_the_run_folder(tiny_backbone, data_folder, tmp_path, monkeypatch):
    recipe = transfer_recipe("tinyexport", tiny_backbone, description="test", image_size=IMAGE_SIZE,
                                     head_epochs=1, fine_tune_epochs=0, batch_size=4, augment="none")
    recipe.backbone.weights = None
    recipe.head.dropout = 0.0
    recipe.phases[0].trainable, recipe.phases[0].learning_rate, recipe.phases[0].epochs = "all", 0.01, 10
    real_predict = TFLiteModel.predict_batch
    monkeypatch.setattr(TFLiteModel, "predict_batch", lambda self, x: real_predict(self, x)[:, ::-1])
    run_dir = tmp_path / "run"
    with pytest.raises(ExportRejectedError) as caught:
        kerasdl.run_recipe(recipe, str(data_folder), output_dir=run_dir, verbose=0,
                           export=parse_export_list("saved_model,tflite"))
    assert "model.tflite" in str(caught.value) and "\n" not in str(caught.value)
    for name in ("model.keras", "metrics.json", "report.md", "export/saved_model/saved_model.pb",
                 "export/model.rejected.tflite", "export/parity.json", "export/labels.txt"):
        assert (run_dir / name).exists(), name
    assert not (run_dir / "export" / "model.tflite").exists()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["status"] == "complete" and "model.tflite" in config["export_error"]
    parity = json.loads((run_dir / "export" / "parity.json").read_text())
    assert parity["saved_model"]["rejected"] is False and parity["model.tflite"]["rejected"] is True
    assert "REJECTED, kept as export/model.rejected.tflite" in (run_dir / "report.md").read_text()


# ----------------------------------------------- the real architecture


@pytest.fixture(scope="module")
def mobilenet_model(data_folder):
    """A tiny MobileNetV2 (alpha 0.35, 32 px, random weights) fitted on a few images."""
    keras.utils.set_random_seed(0)
    model = kerasdl.build_classifier("mobilenetv2", 2, weights=None, image_size=32,
                                     backbone_options={"alpha": 0.35}, trainable="all")
    fit_on_folder(model, data_folder, image_size=32, epochs=3)
    return model


@pytest.mark.slow
def test_mobilenetv2_exports_float32_and_int8_with_parity(mobilenet_model, data_folder, tmp_path):
    data = kerasdl.load_data(data_folder, image_size=32, batch_size=4, val_split=0.25, seed=0)
    sample = representative_files(data.files["train"], size=8)
    representative = make_dataset(sample, image_size=32, batch_size=4, cache=False)
    parity = export_model(
        mobilenet_model, tmp_path / "export", formats=parse_export_list("tflite,tflite:int8"),
        class_names=data.class_names, parity_data=data.val,
        representative_images=(x for x, _ in representative), options=ExportOptions(max_accuracy_drop=1.0),
    )
    assert set(parity) == {"model.tflite", "model_int8.tflite"}
    assert parity["model.tflite"]["top1_agreement"] == 1.0
    assert parity["model.tflite"]["max_abs_probability_difference"] < 1e-4
    assert 0.0 <= parity["model_int8.tflite"]["max_abs_probability_difference"] <= 1.0
    int8 = TFLiteModel(tmp_path / "export" / "model_int8.tflite")
    assert int8.input_dtype == np.uint8
    images = np.concatenate([x for x, _ in data.val])
    probabilities = int8.predict_batch(images)
    assert probabilities.shape == (len(images), 2) and np.allclose(probabilities.sum(1), 1, atol=0.05)
    sizes = {name: (tmp_path / "export" / name).stat().st_size for name in parity}
    assert sizes["model_int8.tflite"] < 0.5 * sizes["model.tflite"]
    metadata = json.loads((tmp_path / "export" / "metadata.json").read_text())
    assert set(metadata["files"]) == {"model.tflite", "model_int8.tflite"}
    assert json.loads((tmp_path / "export" / "parity.json").read_text()).keys() == parity.keys()


def test_export_checks_parity_against_the_predictions_it_is_given(tiny_model_file, data_folder, tmp_path):
    """A run passes its evaluation's predictions on val, so export does not compute them again."""
    model = keras.models.load_model(tiny_model_file)
    data = kerasdl.load_data(data_folder, image_size=IMAGE_SIZE, val_split=0.25, seed=0)
    labels, probabilities = collect_predictions(model.predict_on_batch, data.val)
    parity = export_model(model, tmp_path / "given", formats=[("tflite", "none")], class_names=data.class_names,
                          parity_data=data.val, reference=(labels, probabilities))
    computed = export_model(model, tmp_path / "computed", formats=[("tflite", "none")],
                            class_names=data.class_names, parity_data=data.val)
    assert parity["model.tflite"]["top1_agreement"] == computed["model.tflite"]["top1_agreement"] == 1.0
    # Given ones are used as they are: reversed labels make the Keras side look all wrong.
    flipped = export_model(model, tmp_path / "flipped", formats=[("tflite", "none")],
                           class_names=data.class_names, parity_data=data.val,
                           reference=(labels, probabilities[:, ::-1]), options=ExportOptions(max_accuracy_drop=1))
    assert flipped["model.tflite"]["top1_agreement"] == 0.0
