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
