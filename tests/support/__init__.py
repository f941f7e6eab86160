"""What tests share besides fixtures: tiny generated images, and the paths of real data.

Tests use 16-32 px images, 2-3 classes, batch 2-4 and one epoch, so the
default suite runs on two CPU cores. Real data and weights live in
../shared beside the checkout; tests that need them skip when absent.
Import from here (`from tests.support import write_class_folder`);
`tests/conftest.py` holds the fixtures built on it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
TINY_RECIPE_FILE = Path(__file__).with_name("training_tiny_recipe.py")
SHARED_DATA = SHARED / "data"
SHARED_WEIGHTS = SHARED / "weights"
MOBILENET_025_NO_TOP = SHARED_WEIGHTS / "mobilenet_2_5_224_tf_no_top.h5"
MOBILENET_025_WITH_TOP = SHARED_WEIGHTS / "mobilenet_2_5_224_tf_with_top_from_tfjs.weights.h5"
MOBILENETV2_035_NO_TOP = SHARED_WEIGHTS / "mobilenet_v2_0.35_224_no_top_from_teachable_machine.weights.h5"


def requires_shared(*paths: Path):
    """Skips a test, with the reason, when a file or folder of ../shared is absent."""
    missing = [str(p) for p in paths if not p.exists()]
    return pytest.mark.skipif(bool(missing), reason=f"real data/weights not here: {', '.join(missing)}")


def make_image(kind: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A small RGB image whose class is easy to learn: a bright stripe per class."""
    image = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    band = slice(kind * size // 3, (kind + 1) * size // 3)
    image[band, :, kind % 3] = 230
    return image


def write_class_folder(
    root: Path, classes=("cat", "dog"), per_class: int = 8, size: int = 24, seed: int = 0,
    fmt: str = "png",
) -> Path:
    """Writes `root/<class>/<i>.<fmt>` images and returns `root`."""
    rng = np.random.default_rng(seed)
    for index, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(make_image(index, size, rng)).save(folder / f"{name}_{i}.{fmt}")
    return root




def write_tiny_classifier(folder: Path):
    """Saves a tiny untrained two-class classifier (32 px) as folder/model.keras with labels.txt.

    Returns:
        The Keras model.
    """
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Rescaling(1 / 255.0),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(2, activation="softmax", name="predictions"),
    ])
    model.save(folder / "model.keras")
    (folder / "labels.txt").write_text("cat\ndog\n")
    return model


def run_on_backend(script: str, backend: str) -> str:
    """Runs `script` (`python -c`, `sys.argv[1]` = backend) in a fresh interpreter on another
    Keras backend, whose choice is fixed at Keras's first import; skips when it is not installed.

    Returns:
        The script's stdout; a failure fails the calling test with the output's end.
    """
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed, so the KERAS_BACKEND={backend} path cannot run here")
    result = subprocess.run(
        [sys.executable, "-c", script, backend],
        env={**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout
