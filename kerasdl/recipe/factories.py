"""Factories of the standard recipes: two-phase transfer, one-phase scratch, and augmentation.

A recipe file (`recipes/<name>.py`, or a user's `./my_recipe.py`) usually
returns one of these: `transfer_recipe` (a new head on a frozen backbone, then
fine-tuning) or `scratch_recipe` (every layer from random weights).
"""

from __future__ import annotations

import copy
from typing import Any

from kerasdl.recipe.schema import (
    TRANSFER_AUGMENT,
    TRANSFER_HEAD_AUGMENT,
    BackboneConfig,
    HeadConfig,
    Phase,
    Recipe,
)


def transfer_recipe(
    name: str,
    backbone: str,
    *,
    description: str,
    image_size: int | str | None = "auto",
    head_epochs: int | str = "auto",
    fine_tune_epochs: int | str = "auto",
    head_learning_rate: float = 1e-3,
    fine_tune_trainable: str = "all",
    fine_tune_learning_rate: float | None = None,
    layer_decay: float = 0.85,
    fine_tune_schedule: str = "cosine",
    warmup_epochs: int = 1,
    early_stopping: int = 2,
    **fields: Any,
) -> Recipe:
    """Returns the standard two-phase transfer recipe for a backbone.

    fastai's `fine_tune` in Keras, at the images' own size (`image_size="auto"`):
    the head sees the pooled block features or the top feature map, whichever
    does better on the validation split (`head.pooling="auto"`); phase `head`
    trains it on the frozen backbone without augmentation (`augment="none"`),
    so the backbone's features are computed once per image and the head
    trains on them (`kerasdl.training.feature_cache`). Phase `fine_tune` then
    unfreezes the whole backbone (BatchNormalization stays frozen) with
    layer-wise learning rates (`layer_decay` per block toward the input), one
    warmup epoch then cosine decay, the recipe's augmentation (`augment`,
    default `"flip"`: no pixel is resampled, so fine detail survives), and
    early stopping on the recipe's monitor (`fine_tune_epochs` is the
    ceiling). The best epoch of either phase is kept, so a fine-tuning that
    does not help costs time, not accuracy. `kerasdl run --augment X`
    augments both phases with X (see `with_augmentation`). These defaults
    were measured against the keras.io guide on data far from ImageNet and
    near it (bench/BENCHMARKS.md, "The course's own task").

    Args:
        name: The recipe's name.
        backbone: A registered backbone name.
        description: One line for `kerasdl list`.
        image_size: Input size. Defaults to `"auto"` (the images' typical
            size within the sizes the backbone takes).
        head_epochs: Epochs of the head phase. Defaults to `"auto"`: about
            100 steps, 5 to 15 epochs (`auto_epochs(..., frozen=True)`).
        fine_tune_epochs: Most epochs of the fine-tuning phase. Defaults to
            `"auto"`: about 300 steps, 3 to 5 epochs (`auto_epochs`).
        head_learning_rate: Learning rate of the head phase. Defaults to `1e-3`.
        fine_tune_trainable: What the fine-tuning phase unfreezes.
            Defaults to `"all"`.
        fine_tune_learning_rate: Peak learning rate of the fine-tuning phase
            (the head's; the backbone's blocks get less). Defaults to `None`
            (`0.3 * head_learning_rate`).
        layer_decay: Learning-rate multiplier per backbone block toward the
            input (see `Phase.layer_decay`). Defaults to `0.85`.
        fine_tune_schedule: Schedule of the fine-tuning phase. Defaults to
            `"cosine"`.
        warmup_epochs: Warmup epochs of the fine-tuning phase. Defaults to `1`.
        early_stopping: Patience of the fine-tuning phase in epochs (0: none).
            Defaults to `2`.
        **fields: Any other `Recipe` field.

    Returns:
        The `Recipe`.

    Example:
    ```python
    def recipe():
        return transfer_recipe("my-recipe", "resnet50", description="...")
    ```
    """
    backbone_config = fields.pop("backbone_config", None) or BackboneConfig(name=backbone)
    phases = [
        Phase(name="head", epochs=head_epochs, learning_rate=head_learning_rate, trainable="head",
              augment=TRANSFER_HEAD_AUGMENT),
        Phase(
            name="fine_tune",
            epochs=fine_tune_epochs,
            learning_rate=(0.3 * head_learning_rate if fine_tune_learning_rate is None
                           else fine_tune_learning_rate),
            trainable=fine_tune_trainable,
            layer_decay=layer_decay,
            schedule=fine_tune_schedule,
            warmup_epochs=warmup_epochs,
            early_stopping=early_stopping,
        ),
    ]
    fields.setdefault("augment", TRANSFER_AUGMENT)
    fields.setdefault("head", HeadConfig(pooling="auto"))
    return Recipe(
        name=name, description=description, backbone=backbone_config,
        image_size=image_size, phases=phases, **fields,
    )


def scratch_recipe(
    name: str,
    backbone: str,
    *,
    description: str,
    epochs: int = 30,
    learning_rate: float = 1e-3,
    optimizer: str = "adam",
    backbone_options: dict[str, Any] | None = None,
    **fields: Any,
) -> Recipe:
    """Returns a one-phase recipe that trains a network from random weights.

    The single phase, `scratch`, trains every layer; the backbone runs in
    training mode, so its BatchNormalization layers learn their statistics
    and its dropout is active (see `kerasdl.models`).

    Args:
        name: The recipe's name.
        backbone: A registered backbone name.
        description: One line for `kerasdl list`.
        epochs: Epochs of the phase. Defaults to `30`.
        learning_rate: Peak learning rate (cosine decay). Defaults to `1e-3`.
        optimizer: Optimizer name. Defaults to `"adam"`.
        backbone_options: Backbone options. Defaults to `None`.
        **fields: Any other `Recipe` field.

    Returns:
        The `Recipe`.

    Example:
    ```python
    def recipe():
        return scratch_recipe("resnet18-scratch", "resnet18", description="...")
    ```
    """
    backbone_config = BackboneConfig(name=backbone, weights="none", options=dict(backbone_options or {}))
    phase = Phase(
        name="scratch", epochs=epochs, learning_rate=learning_rate, optimizer=optimizer,
        trainable="scratch", schedule="cosine",
    )
    return Recipe(name=name, description=description, backbone=backbone_config, phases=[phase], **fields)


def phase_augmentation(recipe: Recipe, phase: Phase) -> str:
    """The augmentation preset a phase trains with: its own, else the recipe's."""
    return recipe.augment if phase.augment is None else phase.augment


def with_augmentation(recipe: Recipe, name: str) -> Recipe:
    """Returns a copy of `recipe` whose every phase augments with `name`.

    This is what `kerasdl run --augment NAME` does: it sets the recipe's
    `augment` and clears each phase's own `augment`, so the head phase of a
    transfer recipe is augmented too (and then trains end to end, without
    the feature cache). `--set phases.<phase>.augment=...` is applied after
    it, to give a phase its own preset again.

    Args:
        recipe: The recipe to start from (not modified).
        name: An augmentation preset (see `kerasdl.data.augment`).

    Returns:
        The modified copy.

    Raises:
        RecipeError: for an unknown preset name.

    Example:
    ```python
    recipe = with_augmentation(get_recipe("mobilenetv2-transfer"), "strong")
    ```
    """
    from kerasdl.data.augment import check_augmentation_name  # here: it loads TensorFlow

    check_augmentation_name(name)
    recipe = copy.deepcopy(recipe)
    recipe.augment = name
    for phase in recipe.phases:
        phase.augment = None
    return recipe

