"""Saving a classifier as `.keras`, architecture and weights only."""


from __future__ import annotations

import os

import keras

__all__ = ["save_model"]


def save_model(model: keras.Model, path: str | os.PathLike) -> None:
    """Saves `model` as `.keras` without its compile state.

    The file holds the architecture and weights only, so it loads with plain
    `keras.saving.load_model` without kerasdl (the training metrics and
    layer-wise optimizer are kerasdl classes); recompile it to train on.
    """
    compiled = model.compiled
    model.compiled = False
    try:
        model.save(path)
    finally:
        model.compiled = compiled
