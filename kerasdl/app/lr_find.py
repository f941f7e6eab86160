"""`kerasdl lr-find` and `run --lr auto`: the learning-rate range test for a recipe."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kerasdl._util.files import write_json
from kerasdl._util.paths import check_output_folder
from kerasdl._util.run_folder import check_apart_from_data, read_json_object
from kerasdl.backbones.weights import prepare_weights
from kerasdl.data.load import load_data
from kerasdl.data.naming import check_source
from kerasdl.data.sources import source_folders
from kerasdl.errors import RunFolderError
from kerasdl.models.classifier import build_classifier
from kerasdl.recipe import data_arguments, validate_recipe
from kerasdl.training.lr_find import find_learning_rate, plot_lr_find
from kerasdl.training.runtime import seed_everything

LR_FIND_FILES = ("lr_find.png", "lr_find.json")


def recipe_learning_rate(recipe, data, *, image_size: int, steps: int = 300):
    """Builds the recipe's classifier and runs the range test on its head.

    Args:
        recipe: A validated `Recipe`.
        data: The `ImageData` it trains on.
        image_size: The input size.
        steps: Optimizer steps of the test. Defaults to `300`.

    Returns:
        A `kerasdl.training.lr_find.LRFindResult`.
    """
    model = build_classifier(
        recipe.backbone.name, len(data.class_names), weights=recipe.backbone.weights,
        image_size=image_size, dropout=recipe.head.dropout, hidden_units=recipe.head.hidden_units,
        pooling="top" if recipe.head.pooling == "auto" else recipe.head.pooling,
        activation=recipe.head.activation, backbone_options=recipe.backbone.options, trainable="head",
    )
    return find_learning_rate(model, data, optimizer=recipe.phases[0].optimizer, steps=steps,
                              seed=recipe.seed)


def lr_find(recipe, data_source: str, *, output_dir: str | os.PathLike, steps: int = 300) -> dict[str, Any]:
    """Runs the range test for `recipe` on `data_source`, writing `lr_find.png`
    and `lr_find.json` into `output_dir`.

    Args:
        recipe: A `Recipe` (already overridden as wanted).
        data_source: The image source.
        output_dir: Folder for the plot and the JSON (created).
        steps: Optimizer steps of the test. Defaults to `300`.

    Returns:
        The JSON written: the suggestion, the rate at the lowest loss, the
        curve.

    Raises:
        KerasdlError: for bad input (before any work), or a loss that falls at
            no learning rate.

    Example:
    ```python
    found = lr_find(get_recipe("efficientnet-lite0-transfer"), "my_images/", output_dir="lr/")
    ```
    """
    validate_recipe(recipe)
    out = check_lr_find_folder(output_dir)
    check_source(data_source, class_names=recipe.data.class_names)  # the cheap checks, before weights
    check_apart_from_data(out, source_folders(data_source), data_source=data_source)
    seed_everything(recipe.seed)
    data = load_data(data_source, **data_arguments(recipe))
    prepare_weights(recipe.backbone.name, image_size=data.image_size, weights=recipe.backbone.weights,
                    options=recipe.backbone.options)
    result = recipe_learning_rate(recipe, data, image_size=data.image_size, steps=steps)
    out.mkdir(parents=True, exist_ok=True)
    plot_lr_find(result, Path(out) / "lr_find.png")
    found = {"recipe": recipe.name, "data": data_source, "phase": recipe.phases[0].name,
             "optimizer": recipe.phases[0].optimizer, **result.to_dict()}
    write_json(found, Path(out) / "lr_find.json")
    return found


def check_lr_find_folder(output_dir: str | os.PathLike) -> Path:
    """Checks, before any work, that `lr-find` may write its two files into `output_dir`.

    Other files there stay untouched; an earlier range test's files are
    replaced, but a file or link of the user's named like one of them is not.

    Raises:
        RunFolderError: naming the files that are in the way.
    """
    out = check_output_folder(output_dir)
    earlier_test = _is_lr_find_record(out / "lr_find.json")
    in_the_way = [name for name in LR_FIND_FILES
                  if os.path.lexists(out / name) and ((out / name).is_symlink() or not earlier_test)]
    if in_the_way:
        raise RunFolderError(
            f"Expected an output folder where {' and '.join(LR_FIND_FILES)} are new or an earlier "
            f"range test's. Received: {out}, where {', '.join(in_the_way)} was not written by kerasdl "
            "lr-find. Move it out, or pick another output_dir.",
            argument="output_dir",
        )
    return out


def _is_lr_find_record(path: Path) -> bool:
    """Whether `path` is an `lr_find.json` that `lr_find` wrote (a plain file with its keys)."""
    record = None if path.is_symlink() else read_json_object(path)
    return record is not None and {"recipe", "phase", "suggestion", "learning_rates"} <= set(record)
