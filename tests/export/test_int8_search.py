"""int8 that passes the parity check: the search for the fewest ops kept in float.

The model here is made so that full int8 fails for a known reason: one 1x1
convolution has, per output channel, a huge weight on input channels that are
always zero. The float model never sees it, but int8 rounds each channel to a
grid scaled by that weight, so its real weights round to zero and the file
predicts one class. Keeping that one op in float recovers the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import kerasdl
from kerasdl.cli.commands import main
from kerasdl.errors import ExportError, ExportRejectedError
from kerasdl.export.exporter import export_model
from kerasdl.export.int8_search import float_set_sizes, int8_summary
from kerasdl.export.options import ExportOptions, export_file_name, parse_export_list
from kerasdl.export.parity import compare_predictions
from kerasdl.inference.batches import collect_predictions
from kerasdl.inference.runners import TFLiteModel
from tests.support import TINY_RECIPE_FILE, write_class_folder

IMAGE_SIZE = 16
OUTLIER = 1e4


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory) -> Path:
    return write_class_folder(tmp_path_factory.mktemp("int8_data") / "images", per_class=12, size=IMAGE_SIZE)


def int8_breaking_model(folder: Path):
    """A trained two-class model whose op `mixer` cannot be int8 (see the module docstring)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    silent = keras.layers.Rescaling(0.0, name="silent")(x)  # always zero
    x = keras.layers.Concatenate()([x, silent])
    x = keras.layers.Conv2D(8, 1, activation="relu", name="mixer")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="predictions")(x))
    data = kerasdl.load_data(folder, image_size=IMAGE_SIZE, batch_size=4, val_split=0.25, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy")
    model.fit(data.train, epochs=20, verbose=0)
    kernel, bias = model.get_layer("mixer").get_weights()
    kernel[:, :, 8:, :] = OUTLIER  # multiplies the silent channels only
    model.get_layer("mixer").set_weights([kernel, bias])
    return model


@pytest.fixture(scope="module")
def model_file(data_folder, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("int8_model") / "model.keras"
    int8_breaking_model(data_folder).save(path)
    return path


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# ------------------------------------------------------------ pure logic


def test_float_set_sizes_double_up_to_the_candidates_and_the_step_limit():
    assert float_set_sizes(11, 5) == [1, 2, 4, 8, 11]
    assert float_set_sizes(40, 5) == [1, 2, 4, 8, 16]
    assert float_set_sizes(8, 5) == [1, 2, 4, 8]
    assert float_set_sizes(3, 2) == [1, 2]
    assert float_set_sizes(0, 5) == [] and float_set_sizes(5, 0) == []


def test_summary_line_says_ops_size_and_points():
    record = {"float_ops": [{}] * 4, "quantizable_ops": 65, "size_vs_float32": 0.3112}
    assert int8_summary(record, -0.006) == "int8, 4 of 65 ops kept in float, 31% of float32, -0.6 pt"
    record = {"float_ops": [], "quantizable_ops": 65, "size_vs_float32": 0.296}
    assert int8_summary(record, 0.0023) == "int8, every op int8, 30% of float32, +0.2 pt"


def test_int8_full_is_a_target_with_its_own_file_name_and_bad_values_are_refused():
    assert parse_export_list("tflite:int8-full") == [("tflite", "int8-full")]
    assert export_file_name("tflite", "int8-full") == "model_int8_full.tflite"
    with pytest.raises(ExportError, match="int8-full"):
        parse_export_list("tflite:int4")
    with pytest.raises(ExportError, match="int8_search_steps=-1") as raised:
        ExportOptions(int8_search_steps=-1)
    assert raised.value.argument == "int8_search_steps"


def test_cli_export_refuses_a_bad_quantize_value_in_one_line(model_file, data_folder, tmp_path):
    result = invoke("export", model_file, "--quantize", "int4", "--data", data_folder,
                    "--output", tmp_path / "m.tflite")
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --quantize: Expected quantize from: ")
    assert "int8-full" in lines[0] and "int4" in lines[0]
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------ real conversions


def test_search_keeps_the_broken_op_in_float_and_records_it(model_file, data_folder, tmp_path):
    output = tmp_path / "m.tflite"
    result = invoke("export", model_file, "--quantize", "int8", "--data", data_folder,
                    "--representative-size", 8, "--output", output)
    assert result.exit_code == 0, result.output
    assert "of float32" in result.output and "ops kept in float" in result.output

    check = json.loads((tmp_path / "parity.json").read_text())["m.tflite"]
    search = check["int8_search"]
    assert check["rejected"] is False and check["file"] == "m.tflite"
    assert search["steps"][0]["float_ops"] == 0 and search["steps"][0]["passed"] is False
    assert search["steps"][0]["accuracy_change"] < -0.01  # every op int8 fails, as made to
    assert search["steps"][-1]["passed"] is True and len(search["steps"]) >= 2
    assert 1 <= len(search["float_ops"]) <= search["quantizable_ops"]
    assert any("mixer" in op["tensor"] for op in search["float_ops"])
    assert search["size_bytes"] == output.stat().st_size
    assert search["size_vs_float32"] > 0 and search["seconds"] > 0  # a model this tiny is mostly overhead
    entry = json.loads((tmp_path / "metadata.json").read_text())["files"]["m.tflite"]
    assert entry["int8_search"] == search and entry["quantization"] == "int8"

    # The file is the one checked: its predictions give the recorded figures.
    runner = TFLiteModel(output)
    assert runner.input_dtype == np.uint8  # the app's contract is unchanged
    data = kerasdl.load_data(data_folder, image_size=IMAGE_SIZE, batch_size=4, val_split=0.25, seed=0)
    labels, expected = collect_predictions(keras.models.load_model(model_file).predict_on_batch, data.val)
    _, received = collect_predictions(runner.predict_batch, data.val)
    again = compare_predictions(labels, expected, received)
    for key in ("accuracy", "keras_accuracy", "top1_agreement", "accuracy_change"):
        assert again[key] == pytest.approx(check[key]), key


def test_int8_full_keeps_the_strict_rule(model_file, data_folder, tmp_path):
    output = tmp_path / "m.tflite"
    result = invoke("export", model_file, "--quantize", "int8-full", "--data", data_folder,
                    "--representative-size", 8, "--output", output)
    assert result.exit_code == 1, result.output
    assert len(result.output.strip().splitlines()) == 1 and "m.tflite (accuracy" in result.output
    assert not output.exists() and (tmp_path / "m.rejected.tflite").is_file()
    check = json.loads((tmp_path / "parity.json").read_text())["m.tflite"]
    assert check["quantization"] == "int8-full" and "int8_search" not in check


def test_search_refuses_when_no_float_set_passes(model_file, data_folder, tmp_path):
    model = keras.models.load_model(model_file)
    data = kerasdl.load_data(data_folder, image_size=IMAGE_SIZE, batch_size=4, val_split=0.25, seed=0)
    with pytest.raises(ExportRejectedError) as raised:
        export_model(model, tmp_path, formats=[("tflite", "int8")], class_names=data.class_names,
                     parity_data=data.val, representative_images=[np.asarray(x) for x, _ in data.train],
                     options=ExportOptions(int8_search_steps=0))
    assert "\n" not in str(raised.value) and "model_int8.tflite" in str(raised.value)
    assert not (tmp_path / "model_int8.tflite").exists()
    assert (tmp_path / "model_int8.rejected.tflite").is_file()
    search = raised.value.parity["model_int8.tflite"]["int8_search"]
    assert [step["float_ops"] for step in search["steps"]] == [0] and search["float_ops"] == []
    assert "max_steps=0" in search["stopped"]


def test_a_run_with_export_quantize_int8_ships_the_searched_file(tmp_path):
    images = write_class_folder(tmp_path / "images", per_class=8, size=24)
    run_dir = tmp_path / "run"
    result = invoke("run", TINY_RECIPE_FILE, "--data", images, "--output", run_dir, "--epochs", 1,
                    "--fine-tune-epochs", 0, "--export", "tflite", "--set", "export.quantize=int8")
    assert result.exit_code == 0, result.output
    check = json.loads((run_dir / "export" / "parity.json").read_text())["model_int8.tflite"]
    assert check["quantization"] == "int8" and check["rejected"] is False
    assert check["int8_search"]["steps"][0]["float_ops"] == 0  # every op int8 is tried first
    assert (run_dir / "export" / "model_int8.tflite").is_file()
    assert "int8, " in result.output and "of float32" in result.output
