"""Saving a classifier as `.keras`, architecture and weights only."""


from __future__ import annotations

import os

import keras

__all__ = ["save_model"]


def save_model(model: keras.Model, path: str | os.PathLike) -> None:
    """Saves `model` as `.keras` without its compile state or optimizer.

    The file holds the architecture and weights only, so it loads with plain
    `keras.saving.load_model` without kerasdl (the training metrics and
    layer-wise optimizer are kerasdl classes); recompile it to train on.
    Keras 3 saves a compiled model's optimizer variables too (Adam's two
    moments: twice the trainable weights, 27 of EfficientNet-Lite0's 41 MB),
    and `model.save` has no `include_optimizer`, so the optimizer is
    detached while saving. Resuming a run reads its own checkpoint, which
    keeps the optimizer's state.
    """
    compiled = model.compiled
    optimizer = getattr(model, "optimizer", None)
    model.compiled = False
    if optimizer is not None:
        model.optimizer = None
    try:
        model.save(path)
    finally:
        model.compiled = compiled
        if optimizer is not None:
            model.optimizer = optimizer
