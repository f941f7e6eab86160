"""Validation of a recipe's values, before any costly work (`validate_recipe`)."""

from __future__ import annotations

import codecs
from typing import Any

from kerasdl.backbones.registry import default_image_size, get_backbone
from kerasdl.errors import RecipeError
from kerasdl.recipe.schema import (
    EXPORT_FOLDS,
    MAX_IMAGE_SIZE,
    MONITORS,
    OPTIMIZERS,
    SCHEDULES,
    DataConfig,
    Phase,
    Recipe,
)


def _validate_reading(data: DataConfig) -> None:
    from kerasdl.data.naming import check_class_names  # here: kerasdl.data loads TensorFlow

    if data.encoding is not None:
        try:
            codecs.lookup(data.encoding)
        except LookupError:
            raise RecipeError(
                "Expected data.encoding to be a text encoding Python knows, e.g. latin-1, cp1252 or "
                f"utf-16. Received: {data.encoding!r}. Fix data.encoding."
            ) from None
    if isinstance(data.max_image_pixels, bool) or not isinstance(data.max_image_pixels, int) \
            or data.max_image_pixels <= 0:
        raise RecipeError(
            "Expected data.max_image_pixels to be a positive number of pixels, e.g. 40000000. "
            f"Received: {data.max_image_pixels!r}."
        )
    check_class_names(data.class_names)


def _check_folds(recipe: Recipe) -> None:
    """`data.folds` and `export.folds` (the data decides later whether K fits it)."""
    folds = recipe.data.folds
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 0 or folds == 1:
        raise RecipeError(
            f"Expected folds of 2 or more for k-fold cross-validation, or 0 for one run. Received: "
            f"folds={folds!r}. Use 5, say.", argument="folds")
    if recipe.export.folds not in EXPORT_FOLDS:
        raise RecipeError(
            f"Expected export.folds from: {', '.join(EXPORT_FOLDS)}. Received: {recipe.export.folds!r}. "
            "all ships the fold models averaged in one model; best ships the best fold alone.")



def _check_phase(phase: Phase) -> None:
    from kerasdl.models.classifier import parse_trainable  # here: it loads Keras

    where = f"phases.{phase.name}"

    def fail(field: str, expected: str, value: Any) -> None:
        raise RecipeError(f"Expected {where}.{field} {expected}. Received: {value!r}.")

    if phase.epochs != "auto" and (not isinstance(phase.epochs, int) or phase.epochs < 0):
        raise RecipeError(
            f"Expected a non-negative epoch count or auto. Received: {phase.epochs!r} for phase "
            f"{phase.name}. Use 0 to skip a phase."
        )
    parse_trainable(phase.trainable)
    if phase.optimizer not in OPTIMIZERS:
        fail("optimizer", f"from: {', '.join(OPTIMIZERS)}", phase.optimizer)
    if phase.schedule not in SCHEDULES:
        fail("schedule", f"from: {', '.join(SCHEDULES)}", phase.schedule)
    if not (isinstance(phase.learning_rate, (int, float)) and 0 < phase.learning_rate < 10):
        fail("learning_rate", "in (0, 10), e.g. 1e-3", phase.learning_rate)
    if phase.warmup_epochs < 0:
        fail("warmup_epochs", "to be 0 or more", phase.warmup_epochs)
    _check_phase_regularization(phase, fail)


def _check_phase_regularization(phase: Phase, fail) -> None:
    """Label smoothing, weight decay, clipping, early stopping and layer decay of a phase."""
    if not 0.0 <= phase.label_smoothing < 1.0:
        fail("label_smoothing", "in [0, 1)", phase.label_smoothing)
    if phase.weight_decay < 0:
        fail("weight_decay", "to be 0 or more", phase.weight_decay)
    if phase.clipnorm is not None and phase.clipnorm <= 0:
        fail("clipnorm", "above 0, or null for no clipping", phase.clipnorm)
    if phase.early_stopping < 0:
        fail("early_stopping", "to be 0 (never) or a patience in epochs", phase.early_stopping)
    if phase.min_delta != "auto" and (isinstance(phase.min_delta, bool)
                                      or not isinstance(phase.min_delta, (int, float)) or phase.min_delta < 0):
        fail("min_delta", "to be auto (one validation image's worth) or a number of 0 or more", phase.min_delta)
    if not 0.0 < phase.layer_decay <= 1.0:
        fail("layer_decay", "in (0, 1] (1: the same learning rate everywhere)", phase.layer_decay)
    if not 0.0 <= phase.ema < 1.0:
        fail("ema", "in [0, 1) (0: no moving average; 0.9, say, for one)", phase.ema)


def _check_sizes(recipe: Recipe) -> None:
    """The image and batch sizes: positive, and images no larger than `MAX_IMAGE_SIZE`."""
    if recipe.image_size == "auto":
        pass
    elif recipe.image_size is not None and (isinstance(recipe.image_size, (str, bool))
                                            or not 0 < recipe.image_size <= MAX_IMAGE_SIZE):
        raise RecipeError(
            f"Expected an image size from 1 to {MAX_IMAGE_SIZE} px. Received: image_size="
            f"{recipe.image_size}. Use 224, say, auto for the images' own size, or leave it out for the "
            "backbone's own.",
            argument="image_size",
        )
    if recipe.batch_size <= 0:
        raise RecipeError(f"Expected a positive batch size. Received: batch_size={recipe.batch_size}.",
                          argument="batch_size")


def validate_recipe(recipe: Recipe) -> None:
    """Checks a recipe's values before any costly work.

    Raises:
        RecipeError: for a negative epoch count, all phases at 0 epochs, a
            non-positive image or batch size, an image size above
            `MAX_IMAGE_SIZE`, a malformed trainable spec, an unknown
            optimizer, schedule or monitor, a learning rate, warmup, label
            smoothing, weight decay, clipnorm, patience or layer decay out of
            range, bad head options, an unknown augmentation preset (of the
            recipe or a phase), or an unknown `data.encoding`.
        WeightsError: for `imagenet` weights on a backbone that has none.
    """
    # here, not at the top: these load TensorFlow, and `kerasdl --help` must not
    from kerasdl.backbones.weights import check_weights_available
    from kerasdl.data.augment import check_augmentation_name

    check_weights_available(get_backbone(recipe.backbone.name), recipe.backbone.weights)
    default_image_size(recipe.backbone.name, recipe.backbone.options)  # checks options such as phi
    _check_sizes(recipe)
    if recipe.monitor not in MONITORS:
        raise RecipeError(
            f"Expected monitor from: {', '.join(MONITORS)}. Received: monitor={recipe.monitor!r}.",
            argument="monitor",
        )
    if not 0.0 <= recipe.head.dropout < 1.0:
        raise RecipeError(f"Expected head.dropout in [0, 1). Received: {recipe.head.dropout}.")
    if recipe.head.pooling not in ("top", "blocks", "auto"):
        raise RecipeError(f"Expected head.pooling top, blocks or auto. Received: {recipe.head.pooling!r}.")
    if recipe.head.hidden_units < 0:
        raise RecipeError(
            f"Expected head.hidden_units 0 (none) or more. Received: {recipe.head.hidden_units}."
        )
    if not recipe.phases:
        raise RecipeError(f"Expected recipe {recipe.name} to have phases. Received: none.")
    for phase in recipe.phases:
        _check_phase(phase)
        if phase.augment is not None:
            check_augmentation_name(phase.augment, key=f"phases.{phase.name}.augment")
    check_augmentation_name(recipe.augment)
    if all(phase.epochs == 0 for phase in recipe.phases):
        raise RecipeError(
            "Expected at least one phase with epochs. Received: 0 epochs in every phase "
            f"({', '.join(p.name for p in recipe.phases)}). "
            f"Set {' or '.join(f'phases.{p.name}.epochs' for p in recipe.phases)} above 0."
        )
    _check_folds(recipe)
    if recipe.data.class_weight not in (None, "none", "auto"):
        raise RecipeError(
            f"Expected data.class_weight auto or none. Received: {recipe.data.class_weight!r}."
        )
    _validate_reading(recipe.data)
    if not 0.0 <= recipe.data.val_split < 1.0 or not 0.0 <= recipe.data.test_split < 1.0:
        raise RecipeError(
            "Expected data.val_split and data.test_split in [0, 1). "
            f"Received: {recipe.data.val_split} and {recipe.data.test_split}."
        )
