"""EfficientNet compound scaling: depth 1.2^phi, width 1.1^phi, resolution 1.15^phi from B0."""

from __future__ import annotations

import math

import keras
import pytest
from click.testing import CliRunner

from kerasdl.backbones.classic import (
    compound_scaling,
    compound_scaling_table,
    efficientnet_compound,
    format_compound_table,
)
from kerasdl.backbones.registry import default_image_size
from kerasdl.cli.commands import main
from kerasdl.errors import RecipeError


@pytest.mark.parametrize("phi, resolution, closest", [(0, 224, "B0"), (1, 258, "B2"), (2, 296, "B3"),
                                                      (3, 341, "B4")])
def test_scaling_factors_and_closest_official_model(phi, resolution, closest):
    scaling = compound_scaling(phi)
    assert scaling.depth == pytest.approx(1.2**phi)
    assert scaling.width == pytest.approx(1.1**phi)
    assert scaling.resolution == resolution == round(224 * 1.15**phi)
    assert scaling.closest == closest
    assert default_image_size("efficientnet_compound", {"phi": phi}) == resolution


@pytest.mark.parametrize("phi, message", [
    (-1, "Expected backbone.phi >= 0"),
    (-0.5, "Expected backbone.phi >= 0"),
    ("big", "Expected backbone.phi to be a number"),
    (True, "Expected backbone.phi to be a number"),
    (float("inf"), "Expected backbone.phi to be a number"),
])
def test_bad_phi_is_refused_in_one_line(phi, message):
    with pytest.raises(RecipeError, match=message) as error:
        compound_scaling(phi)
    assert "\n" not in str(error.value)


def test_show_with_negative_phi_exits_1_with_one_line():
    result = CliRunner().invoke(main, ["show", "efficientnet-compound", "--set", "backbone.phi=-1"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("Error: Expected backbone.phi >= 0")


def test_run_with_negative_phi_exits_1_before_reading_data(tmp_path):
    result = CliRunner().invoke(main, ["run", "efficientnet-compound", "--set", "backbone.phi=-2",
                                       "--data", str(tmp_path / "missing"), "--output", str(tmp_path / "r")])
    assert result.exit_code == 1 and "backbone.phi >= 0" in result.output
    assert not (tmp_path / "r").exists()


def test_phi_1_scales_depth_and_width_through_the_keras_builder():
    from keras.src.applications.efficientnet import DEFAULT_BLOCKS_ARGS

    model = efficientnet_compound(phi=1, input_shape=(32, 32, 3))
    blocks = {layer.name.split("_")[0] for layer in model.layers if layer.name.endswith("_project_bn")}
    assert len(blocks) == sum(math.ceil(1.2 * args["repeats"]) for args in DEFAULT_BLOCKS_ARGS) == 23
    assert model.get_layer("top_conv").filters == 1408  # 1280 * 1.1, rounded to a multiple of 8
    assert model.output_shape == (None, 1, 1, 1408)


def test_table_lists_scaling_parameters_and_closest_model():
    rows = compound_scaling_table((0, 1))
    assert [row["resolution"] for row in rows] == [224, 258]
    # phi = 0 is Keras's own EfficientNet-B0.
    official_b0 = keras.applications.EfficientNetB0(weights=None).count_params()
    assert rows[0]["parameters"] == official_b0 == 5_330_571 < rows[1]["parameters"]
    text = format_compound_table(rows, chosen=1)
    assert "B0 (width 1.0, depth 1.0, 224 px)\n" in text
    assert "B2 (width 1.1, depth 1.2, 260 px)  <- this recipe" in text


@pytest.mark.slow
def test_show_efficientnet_compound_prints_phi_0_to_3_and_the_chosen_one():
    result = CliRunner().invoke(main, ["show", "efficientnet-compound", "--set", "backbone.phi=4"])
    assert result.exit_code == 0, result.output
    table = result.output.split("EfficientNet compound scaling", 1)[1].splitlines()
    rows = [line.split() for line in table if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["0", "1", "2", "3", "4"]
    assert [row[6] for row in rows] == ["B0", "B2", "B3", "B4", "B4"]
    assert rows[-1][3] == "392" and rows[-1][-1] == "recipe"
