"""`RunOptions`: how a run is carried out, made once (by the CLI or a script) and given to `run_recipe`."""

from __future__ import annotations

import dataclasses
import json

import pytest

from kerasdl.app import RunOptions, run_recipe
from kerasdl.errors import RecipeError
from kerasdl.training.engine import TrainOptions


def test_bad_run_options_are_refused_before_any_folder(tmp_path, tiny_recipe, image_folder):
    with pytest.raises(RecipeError, match="Received: tta='flop'"):
        run_recipe(tiny_recipe, str(image_folder), RunOptions(output_dir=tmp_path / "run", tta="flop"))
    with pytest.raises(RecipeError, match="Received: tta='flop'"):  # the same field as a keyword
        run_recipe(tiny_recipe, str(image_folder), output_dir=tmp_path / "run", tta="flop")
    assert not (tmp_path / "run").exists()


def test_keywords_go_over_the_run_options_and_the_options_stay_as_given(tmp_path, tiny_recipe, image_folder):
    tiny_recipe.phases[1].epochs = 0
    training = TrainOptions(tensorboard=False)
    options = RunOptions(output_dir=tmp_path / "elsewhere", tta="flop", training_options=training,
                         time_budget="10m")
    result = run_recipe(tiny_recipe, str(image_folder), options, output_dir=tmp_path / "run", tta="none",
                        verbose=0)
    assert result.run_dir == tmp_path / "run" and not (tmp_path / "elsewhere").exists()
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["options"]["tensorboard"] is False and config["options"]["deadline"] is not None
    assert config["time_budget"]["budget_s"] == 600
    # the run set its deadline on a copy: the caller's options are unchanged
    assert training == TrainOptions(tensorboard=False) and options.tta == "flop"
    assert dataclasses.replace(options) == options


def test_run_options_from_flags_builds_the_engine_and_export_options():
    from kerasdl.app.options import run_options_from_flags
    from kerasdl.errors import ExportError
    from kerasdl.export.options import ExportOptions
    from kerasdl.training.runtime import RuntimeOptions

    options = run_options_from_flags(
        seed=7, export="tflite,onnx", tflite_quantize="int8", representative_size=20, int8_io="float",
        max_accuracy_drop=0.05, int8_bias_correction=False, feature_cache=False, jit_compile=True,
        steps_per_execution=4, tensorboard=False, deterministic=True, mixed_precision=True,
        distribute="mirrored", output_dir="runs/x", tta="flip", fixed_epochs=("head",))
    assert options.export == [("tflite", "int8"), ("onnx", "none")]
    assert options.export_options == ExportOptions(representative_size=20, int8_io="float",
                                                   max_accuracy_drop=0.05, seed=7, int8_bias_correction=False)
    assert options.training_options == TrainOptions(feature_cache=False, jit_compile=True,
                                                    steps_per_execution=4, tensorboard=False)
    assert options.runtime == RuntimeOptions(deterministic=True, mixed_precision=True, distribute="mirrored")
    assert (options.output_dir, options.tta, options.fixed_epochs) == ("runs/x", "flip", ("head",))
    # no --export: the recipe's list; no --jit-compile: the engine decides
    defaults = run_options_from_flags(seed=0)
    assert defaults.export is None and defaults.training_options.jit_compile == "auto"
    assert defaults.export_options == ExportOptions(seed=0) and defaults.runtime == RuntimeOptions()
    with pytest.raises(ExportError, match="tflite:int9"):
        run_options_from_flags(seed=0, export="tflite:int9")
