"""Transfer vs. scratch on growing fractions of the data (tiny settings)."""

from __future__ import annotations

import csv

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kerasdl.cli.commands import main
from kerasdl.course.experiment import nested_stratified_indices, parse_fractions, transfer_vs_scratch
from kerasdl.errors import RecipeError, WeightsError


def test_parse_fractions_sorts_and_checks():
    assert parse_fractions("1.0,0.1,0.25,0.1") == [0.1, 0.25, 1.0]
    for bad in ("0", "1.5", "a", "0.1,,0.5", "-0.2"):
        with pytest.raises(RecipeError, match="Expected fractions in \\(0, 1\\]"):
            parse_fractions(bad)


def test_subsets_are_stratified_and_nested():
    labels = [0] * 30 + [1] * 10
    small = nested_stratified_indices(labels, 0.2, seed=3)
    large = nested_stratified_indices(labels, 0.5, seed=3)
    assert set(small) <= set(large)
    assert np.bincount(np.asarray(labels)[small]).tolist() == [6, 2]
    assert np.bincount(np.asarray(labels)[large]).tolist() == [15, 5]
    assert nested_stratified_indices(labels, 0.01, seed=0) and len(nested_stratified_indices(labels, 1.0, seed=0)) == 40


@pytest.fixture(scope="module")
def tiny_backbone():
    """A registered two-convolution backbone, so the experiment trains in seconds."""
    from kerasdl.backbones.registry import BACKBONES, register_backbone

    @register_backbone("test_tiny_cnn", default_size=32, preprocessing="tf")
    def tiny_cnn(*, include_top=False, weights=None, input_shape=None):
        inputs = keras.Input(input_shape)
        x = keras.layers.Conv2D(4, 3, strides=2, name="conv1")(inputs)
        x = keras.layers.BatchNormalization(name="conv1_bn")(x)
        x = keras.layers.ReLU(name="conv1_relu")(x)
        x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv2")(x)
        return keras.Model(inputs, x, name="tiny_cnn")

    yield "test_tiny_cnn"
    BACKBONES.pop("test_tiny_cnn")


@pytest.fixture
def local_weights(tiny_backbone, tmp_path):
    """'Pretrained' weights of the tiny backbone in a local file."""
    from kerasdl.backbones.build import build_backbone

    keras.utils.set_random_seed(5)
    path = tmp_path / "pretrained.weights.h5"
    build_backbone(tiny_backbone, image_size=32, weights=None).save_weights(path)
    return str(path)


def test_experiment_writes_table_csv_and_plot(image_folder, tiny_backbone, local_weights, tmp_path):
    output = tmp_path / "tvs"
    result = CliRunner().invoke(main, [
        "experiment", "transfer-vs-scratch", "--data", str(image_folder), "--backbone", tiny_backbone,
        "--weights", local_weights, "--fractions", "0.5,1", "--image-size", "32",
        "--epochs", "1", "--batch-size", "4", "--output", str(output),
    ])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(output / "transfer_vs_scratch.csv")))
    assert [(r["arm"], r["fraction"]) for r in rows] == [
        ("transfer", "0.5"), ("scratch", "0.5"), ("transfer", "1.0"), ("scratch", "1.0")]
    # 16 images, 20% held out for validation per class: 12 train, 4 val.
    assert [int(r["train_images"]) for r in rows] == [6, 6, 12, 12]
    assert {int(r["val_images"]) for r in rows} == {4}
    transfer, scratch = rows[0], rows[1]
    assert int(transfer["trainable_parameters"]) < int(scratch["trainable_parameters"])  # head only vs all
    for row in rows:
        assert 0.0 <= float(row["best_val_accuracy"]) <= 1.0
    table = (output / "transfer_vs_scratch.md").read_text()
    assert "| 0.5 | 6 |" in table and "| 1 | 12 |" in table
    assert "most common class scores 0.500" in table
    assert (output / "transfer_vs_scratch.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in output.iterdir()) == [
        "transfer_vs_scratch.csv", "transfer_vs_scratch.md", "transfer_vs_scratch.png"]


def test_experiment_refuses_bad_input_before_training(image_folder, tmp_path):
    with pytest.raises(WeightsError, match="Expected pretrained weights for the transfer arm"):
        transfer_vs_scratch(str(image_folder), backbone="mobilenetv2", weights="none", output_dir=tmp_path / "o")
    with pytest.raises(RecipeError, match="Expected a backbone name from: .*mobilenetv2"):
        transfer_vs_scratch(str(image_folder), backbone="mobilenet9", output_dir=tmp_path / "o")
    with pytest.raises(WeightsError, match="Keras has no ImageNet weights for alexnet"):
        transfer_vs_scratch(str(image_folder), backbone="alexnet", output_dir=tmp_path / "o")
    result = CliRunner().invoke(main, ["experiment", "transfer-vs-scratch", "--data", str(image_folder),
                                       "--backbone", "mobilenetv2", "--fractions", "0.5,2",
                                       "--output", str(tmp_path / "o")])
    assert result.exit_code == 1 and "Expected fractions in (0, 1]" in result.output
    assert not (tmp_path / "o").exists()
