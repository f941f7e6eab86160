"""The data a phase fits on: steps per epoch, class weights, augmented images,
or the cached backbone features of a frozen phase."""


from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np

from kerasdl.data.augment import get_augmentation
from kerasdl.data.pipeline import augment_batches
from kerasdl.data.splits import balanced_class_weights
from kerasdl.data.types import ImageData
from kerasdl.errors import RecipeError
from kerasdl.recipe import Phase, Recipe, phase_augmentation
from kerasdl.training.checkpoints import PassCountingDataset
from kerasdl.training.compile import uses_one_hot_labels
from kerasdl.training.feature_cache import (
    build_feature_extractor,
    build_head_model,
    extract_features,
    features_dataset,
    weights_digest,
)

logger = logging.getLogger(__name__)

__all__ = [
    "cached_phase_data", "check_phase_augmentations", "fit_class_weight", "phase_train_data", "steps_per_epoch",
]


def fit_class_weight(mode: str | None, data: ImageData) -> dict[int, float] | None:
    """`model.fit`'s `class_weight` for `data.class_weight` (`None` or `"auto"`).

    Raises:
        RecipeError: for another value.
    """
    if mode in (None, "none"):
        return None
    if mode != "auto":
        raise RecipeError(f"Expected data.class_weight auto or none. Received: {mode!r}.")
    counts = data.files["train"].class_counts(len(data.class_names))
    weights = balanced_class_weights(counts)
    logger.info("Class weights: " + ", ".join(
        f"{name} {weights[i]:.3f}" for i, name in enumerate(data.class_names)))
    return weights

def steps_per_epoch(data: ImageData, replicas: int) -> int:
    """Training batches per epoch (each epoch leaves out what does not split over the replicas)."""
    num_train = len(data.files["train"])
    return max(1, math.ceil((num_train - num_train % replicas) / data.batch_size))

def _one_hot(dataset, num_classes: int):
    import tensorflow as tf

    return dataset.map(lambda x, y: (x, tf.one_hot(y, num_classes)))


def _one_hot_array(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return labels if labels.ndim == 2 else np.eye(num_classes, dtype=np.float32)[labels]


def check_phase_augmentations(data: ImageData, recipe: Recipe) -> None:
    """A phase with its own augmentation needs `train` before augmentation."""
    if data.train_source() is not None:
        return
    for phase in recipe.phases:
        if phase.epochs and phase_augmentation(recipe, phase) != recipe.augment:
            raise RecipeError(
                f"Expected ImageData from kerasdl.load_data for phase {phase.name}'s own "
                f"augmentation ({phase.augment}). Received: data whose train split was replaced "
                f"after loading. Set phases.{phase.name}.augment=null, or train on load_data's data."
            )


def phase_train_data(data: ImageData, counted_train, recipe: Recipe, phase: Phase, num_classes: int):
    """`(train, validation, one_hot)` of an end-to-end phase, with its augmentation."""
    source = data.train_source()
    augment = None  # without source, the counted dataset is `data.train`, augmented already
    if source is not None:
        augment = (source.augment if phase.augment is None
                   else get_augmentation(phase.augment, seed=recipe.seed))
    mixes_labels = bool(getattr(augment, "mixes_labels", False))
    train_data, val_data = counted_train.dataset, data.validation_data()
    if (uses_one_hot_labels(phase) or mixes_labels) and not data.one_hot:
        train_data, val_data = _one_hot(train_data, num_classes), _one_hot(val_data, num_classes)
    return augment_batches(train_data, augment), val_data, data.one_hot or mixes_labels

def cached_phase_data(model, data, counted_train, recipe, phase, num_classes, run_dir, features=None):
    """The head model and the cached-feature datasets of a frozen phase.

    `features` (a `BackboneFeatures`) are used instead of computing them when
    they came from this model's extractor weights.

    Returns:
        `(head_model, train_data, val_data, feature_counter, reused)`.
    """
    extractor = build_feature_extractor(model)
    reused = features is not None and features.weights_digest == weights_digest(extractor)
    if reused:
        train_features, val_features = (dataclasses.replace(features.train), dataclasses.replace(features.val))
    else:
        logger.info("Phase %s: computing the frozen backbone's features of %d training and %d "
                    "validation images once ...", phase.name, len(data.files["train"]), len(data.files["val"]))
        cache_dir = run_dir / "cache" / "features" if run_dir else None
        train_features = extract_features(
            extractor, counted_train.dataset, num_images=len(data.files["train"]),
            cache_dir=cache_dir, name="train",
        )
        val_features = extract_features(
            extractor, data.val, num_images=len(data.files["val"]), cache_dir=cache_dir, name="val",
        )
    if uses_one_hot_labels(phase) or data.one_hot:  # the format the phase's loss takes
        for cached in (train_features, val_features):
            cached.labels = _one_hot_array(cached.labels, num_classes)
    feature_counter = PassCountingDataset(features_dataset(
        train_features, batch_size=data.batch_size, shuffle=True, seed=recipe.seed
    ))
    val_data = features_dataset(val_features, batch_size=data.batch_size)
    return build_head_model(model), feature_counter.dataset, val_data, feature_counter, reused
