"""The resolution of `auto` values once the data is known: epochs, monitor, image size.

A recipe may leave some values to the data (`epochs="auto"`,
`monitor="auto"`, `image_size="auto"`); a run resolves them when it starts
and records the result in config.json, and a resumed run takes them back
from there (`with_recorded_schedule`).
"""

from __future__ import annotations

import copy
from typing import Any

from kerasdl.backbones.registry import default_image_size, image_size_range
from kerasdl.errors import RecipeError
from kerasdl.recipe.schema import MONITORS, Recipe

# `epochs="auto"`: about this many optimizer steps, within these epochs. Like Big
# Transfer's schedule rule, a small data set gets more epochs and a large one fewer;
# the ceiling keeps a few hundred images within the keras.io guide's wall time
# (bench/BENCHMARKS.md, "Defaults that win").
AUTO_EPOCH_STEPS = 300
AUTO_EPOCHS = (3, 5)
# A frozen-backbone phase (a head on cached features, a fraction of a second an
# epoch): enough steps for the head to converge. Five epochs of a few hundred images
# are 40 steps, and left hymenoptera's head 2.4 points of accuracy short.
HEAD_AUTO_EPOCH_STEPS = 100
HEAD_AUTO_EPOCHS = (5, 15)


def resolve_monitor(monitor: str, num_classes: int) -> str:
    """The validation metric a run monitors: `auto` becomes `val_auc` for two
    classes and `val_accuracy` otherwise.

    Args:
        monitor: `"auto"`, `"val_auc"`, `"val_accuracy"` or `"val_loss"`.
        num_classes: Classes of the data.

    Returns:
        The metric's name as it appears in the training logs.

    Raises:
        RecipeError: for an unknown name, or `val_auc` with more than two classes.

    Example:
    ```python
    resolve_monitor("auto", 2)  # "val_auc"
    ```
    """
    if monitor not in MONITORS:
        raise RecipeError(
            f"Expected monitor from: {', '.join(MONITORS)}. Received: {monitor!r}.", argument="monitor"
        )
    if monitor == "auto":
        return "val_auc" if num_classes == 2 else "val_accuracy"
    if monitor == "val_auc" and num_classes != 2:
        raise RecipeError(
            f"Expected two classes for monitor='val_auc' (ROC-AUC). Received: {num_classes} classes. "
            "Pass monitor='val_accuracy' or monitor='val_loss'.",
            argument="monitor",
        )
    return monitor


def auto_epochs(steps_per_epoch: int, *, frozen: bool = False) -> int:
    """The epochs of `epochs="auto"`: about `AUTO_EPOCH_STEPS` steps, within `AUTO_EPOCHS`.

    A `frozen` phase (a head on the frozen backbone) makes about
    `HEAD_AUTO_EPOCH_STEPS` steps within `HEAD_AUTO_EPOCHS` instead.

    Example:
    ```python
    auto_epochs(20)   # 640 images in batches of 32: 5 epochs (15 would make 300 steps)
    auto_epochs(108)  # 3,440 images: 3 epochs
    auto_epochs(8, frozen=True)  # 244 images: the head trains 13 epochs (100 steps)
    ```
    """
    target, (fewest, most) = ((HEAD_AUTO_EPOCH_STEPS, HEAD_AUTO_EPOCHS) if frozen
                              else (AUTO_EPOCH_STEPS, AUTO_EPOCHS))
    return max(fewest, min(most, -(-target // max(1, steps_per_epoch))))


def resolve_epochs(recipe: Recipe, steps_per_epoch: int) -> Recipe:
    """Returns the recipe with each `epochs="auto"` replaced by `auto_epochs`.

    The recipe is returned as it is when no phase says `"auto"`, so the
    call is cheap and can be repeated.

    Args:
        recipe: The recipe.
        steps_per_epoch: Training batches per epoch on the data at hand.
    """
    if all(phase.epochs != "auto" for phase in recipe.phases):
        return recipe
    recipe = copy.deepcopy(recipe)
    for phase in recipe.phases:
        if phase.epochs == "auto":
            phase.epochs = auto_epochs(steps_per_epoch, frozen=phase.trainable in ("head", "none"))
    return recipe


def with_recorded_schedule(recipe: Recipe, recorded: dict[str, Any]) -> Recipe:
    """Returns the recipe with each phase's epochs and learning rate as a run recorded them.

    A run resolves these when it starts (`epochs="auto"`, a time budget's
    plan, `run --lr auto`, `head.pooling="auto"`) and records the result in config.json's
    `recipe`; a resumed run must train with the same numbers, not resolve
    them again.

    Args:
        recipe: The recipe the run was started with, as given.
        recorded: config.json's `recipe`: the same recipe, resolved.
    """
    recipe = copy.deepcopy(recipe)
    for phase, then in zip(recipe.phases, recorded["phases"], strict=True):
        phase.epochs, phase.learning_rate = then["epochs"], then["learning_rate"]
    recipe.head.pooling = recorded.get("head", {}).get("pooling", recipe.head.pooling)
    return recipe


def source_arguments(recipe: Recipe) -> dict[str, Any]:
    """How the recipe reads its source's labels: the arguments `load_labelled_files` and
    `kerasdl.data.file_list.list_source_files` share (path and label columns, encoding, class names)."""
    data = recipe.data
    return {"path_column": data.path_column, "label_column": data.label_column, "encoding": data.encoding,
            "class_names": data.class_names}


def data_arguments(recipe: Recipe) -> dict[str, Any]:
    """`load_data`'s arguments from a recipe's data settings (and its size, batch and seed).

    The one place a recipe's `data` fields become data-loading arguments:
    a run, a k-fold run's plan and folds, and the range test all read them here.

    Example:
    ```python
    data = load_data("faces/", **data_arguments(recipe), augment=None)
    ```
    """
    return {**image_size_arguments(recipe), "batch_size": recipe.batch_size, "seed": recipe.seed,
            "val_split": recipe.data.val_split, "test_split": recipe.data.test_split,
            "max_image_pixels": recipe.data.max_image_pixels, **source_arguments(recipe)}


def image_size_arguments(recipe: Recipe) -> dict[str, Any]:
    """`load_data`'s `image_size` (and `size_range` for `"auto"`) for a recipe.

    Example:
    ```python
    data = load_data("faces/", **image_size_arguments(recipe))  # data.image_size: the size chosen
    ```
    """
    backbone = recipe.backbone
    if recipe.image_size == "auto":
        return {"image_size": "auto", "size_range": image_size_range(backbone.name, backbone.options)}
    return {"image_size": recipe.image_size or default_image_size(backbone.name, backbone.options)}


