"""`head.pooling="auto"`: which features the head sees, chosen on the validation split before training.

The frozen backbone's pooled block outputs (`head.pooling="blocks"`) tell a
generated face from a photo far better than its top feature map alone (a
linear head on faces-real-ai: ROC-AUC 0.93 against 0.81), while for photos
near ImageNet's (ants and bees) the top's object features alone do better
(0.98 against 0.94): the extra features only add noise there. So both heads
are tried on the same features, computed once: the block features of every
training and validation image are extracted, a head of the recipe's kind is
trained on all of them and one on the top's slice alone, each for the head
phase's epochs at its rate, and the blocks win only when their best
validation metric beats the top's by more than the split resolves
(`phases.<first>.min_delta`). The run then builds its model with the winner,
and its head phase trains on the winner's columns of these features instead of
computing them again.
"""


from __future__ import annotations

import copy
import logging
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kerasdl.models.classifier import build_classifier, coarse_block_outputs, get_backbone_layer
from kerasdl.recipe import resolve_monitor
from kerasdl.training.callbacks import early_stopping_delta
from kerasdl.training.compile import supported_steps_per_execution
from kerasdl.training.feature_cache import (
    BackboneFeatures,
    build_feature_extractor,
    extract_features,
    weights_digest,
)
from kerasdl.training.metrics import ExactValidationAUC, PositiveClassAUC

logger = logging.getLogger(__name__)


def choose_head_pooling(recipe, data, *, image_size: int) -> tuple[Any, dict[str, Any], BackboneFeatures | None]:
    """Resolves `recipe.head.pooling="auto"` to `"top"` or `"blocks"` on `data`'s validation split.

    Args:
        recipe: The recipe, its epochs resolved (`resolve_epochs`).
        data: The run's `ImageData`.
        image_size: The input size.

    Returns:
        `(recipe, record, features)`: a copy of the recipe with the chosen
        pooling; what config.json records of the choice (each side's best
        validation metric, the metric, the choice and the seconds it took);
        and the chosen pooling's features of both splits, for `train`'s
        `features` (`None` when there was nothing to choose).

    Example:
    ```python
    recipe, record, features = choose_head_pooling(recipe, data, image_size=256)
    ```
    """
    started = time.perf_counter()
    head_phase = recipe.phases[0]
    model = build_classifier(
        recipe.backbone.name, len(data.class_names), weights=recipe.backbone.weights, image_size=image_size,
        dropout=recipe.head.dropout, backbone_options=recipe.backbone.options, pooling="blocks")
    pooled = "avg_pool" in {layer.name for layer in model.layers}
    tapped = coarse_block_outputs(get_backbone_layer(model)) if pooled else []
    if len(tapped) < 2:  # a backbone ending in a vector, or with one block: nothing to choose
        return _resolved(recipe, "top"), {"chosen": "top", "reason": "the backbone has no blocks to pool"}, None
    logger.info("Head pooling auto: comparing the top feature map with the pooled blocks on %d validation "
                "images ...", len(data.files["val"]))
    extractor = build_feature_extractor(model)
    source = data.train_source()
    train = extract_features(extractor, source.unaugmented if source is not None else data.train,
                             num_images=len(data.files["train"]), in_memory=True)
    val = extract_features(extractor, data.val, num_images=len(data.files["val"]), in_memory=True)
    features = BackboneFeatures(train, val, weights_digest(extractor))
    top_width = int(model.get_layer(f"pool_{tapped[-1]}").output.shape[-1])
    monitor = resolve_monitor(recipe.monitor, len(data.class_names))
    keras.utils.set_random_seed(recipe.seed)
    scores = {name: _best_validation(train, val, columns, recipe, monitor)
              for name, columns in (("top", slice(-top_width, None)), ("blocks", slice(None)))}
    margin = early_stopping_delta(head_phase, monitor, len(data.files["val"]))
    lower_is_better = monitor.endswith("loss")
    wins = scores["blocks"] < scores["top"] - margin if lower_is_better else scores["blocks"] > scores["top"] + margin
    chosen = "blocks" if wins else "top"
    logger.info(f"Head pooling auto: {chosen} (best {monitor} of a head on the top feature map "
                f"{scores['top']:.4f}, on the pooled blocks {scores['blocks']:.4f})")
    record = {"chosen": chosen, "monitor": monitor, "best": scores, "margin": round(margin, 5),
              "seconds": round(time.perf_counter() - started, 1)}
    return _resolved(recipe, chosen), record, features if wins else features.columns(slice(-top_width, None))


def _resolved(recipe, pooling: str):
    recipe = copy.deepcopy(recipe)
    recipe.head.pooling = pooling
    return recipe


def _best_validation(train, val, columns: slice, recipe, monitor: str) -> float:
    """The best validation `monitor` of a dropout + softmax head trained on `columns` of the features."""
    phase = recipe.phases[0]
    one_hot = train.labels.ndim == 2
    num_classes = train.labels.shape[1] if one_hot else int(max(train.labels.max(), val.labels.max())) + 1
    head = keras.Sequential([
        keras.Input((train.features[:, columns].shape[1],)),
        keras.layers.Dropout(recipe.head.dropout),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])
    head.compile(keras.optimizers.Adam(phase.learning_rate),
                 "categorical_crossentropy" if one_hot else "sparse_categorical_crossentropy",
                 metrics=["accuracy"] + ([PositiveClassAUC()] if num_classes == 2 else []),
                 # tiny steps: Python's overhead would dominate (PyTorch's fit takes one a call)
                 steps_per_execution=supported_steps_per_execution(32))
    val_labels = keras.utils.to_categorical(val.labels, num_classes) if one_hot else val.labels
    batches = tf.data.Dataset.from_tensor_slices((train.features[:, columns], train.labels)).shuffle(
        len(train.labels), seed=recipe.seed).batch(recipe.batch_size)
    validation = (val.features[:, columns], val_labels)
    exact_auc = [ExactValidationAUC(validation, batch_size=recipe.batch_size)] if num_classes == 2 else []
    history = head.fit(batches, validation_data=validation, epochs=max(int(phase.epochs), 1), shuffle=False,
                       verbose=0, callbacks=exact_auc).history[monitor]  # val_auc exact, as training's
    values = np.asarray(history, dtype=np.float64)
    return float(values.min() if monitor.endswith("loss") else values.max())
