"""Fixtures: tiny generated image folders and recipes (helpers live in `tests.support`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

from tests.support import (
    write_class_folder,
)


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """Two classes (cat, dog), 8 PNG images each, 24 px."""
    return write_class_folder(tmp_path / "images")


@pytest.fixture
def three_class_folder(tmp_path) -> Path:
    """Three classes, 6 JPEG images each, 24 px."""
    return write_class_folder(tmp_path / "images3", classes=("a", "b", "c"), per_class=6, fmt="jpg")


@pytest.fixture
def split_folder(tmp_path) -> Path:
    """A tree pre-split into train/ and val/, two classes."""
    root = tmp_path / "presplit"
    write_class_folder(root / "train", per_class=6, seed=1)
    write_class_folder(root / "val", per_class=3, seed=2)
    return root


@pytest.fixture
def tiny_recipe():
    """A 2-phase mobilenetv2 recipe with random weights at 32 px, 1 epoch each."""
    from kerasdl.recipe import HeadConfig, transfer_recipe

    recipe = transfer_recipe(
        "tiny", "mobilenetv2", description="test", image_size=32, head_epochs=1,
        fine_tune_epochs=1, batch_size=4, augment="none", head=HeadConfig(pooling="top"),
    )
    recipe.backbone.weights = None
    recipe.backbone.options = {"alpha": 0.35}
    recipe.export.formats = []
    return recipe
