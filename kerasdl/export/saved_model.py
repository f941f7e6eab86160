"""SavedModel export: the folder whose `serving_default` maps images to probabilities.

The TFLite converter reads the same folder (`kerasdl.export.tflite`).
"""


from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["export_saved_model"]


def export_saved_model(model, path: str | os.PathLike) -> Path:
    """Writes a SavedModel whose `serving_default` maps images to probabilities.

    Written to a temporary folder beside `path`, then renamed.

    Args:
        model: A Keras model (TensorFlow backend).
        path: The folder to create (an existing one is replaced).

    Returns:
        The SavedModel's folder.
    """
    path = Path(path)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        model.export(str(staging / "saved_model"), format="tf_saved_model", verbose=False)
        if path.exists():
            shutil.rmtree(path)
        os.replace(staging / "saved_model", path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path
