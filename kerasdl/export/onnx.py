"""ONNX export with Keras's exporter (tf2onnx on TensorFlow)."""


from __future__ import annotations

import os
import warnings
from pathlib import Path

from kerasdl.errors import ExportError
from kerasdl.export.options import check_export_requirements
from kerasdl.inference.runners import first_line

__all__ = ["export_onnx"]


def export_onnx(model, path: str | os.PathLike) -> Path:
    """Writes an ONNX file with Keras's exporter (tf2onnx on TensorFlow).

    Args:
        model: A Keras model taking [0, 255] images.
        path: The `.onnx` file to write (temporary name, then renamed).

    Returns:
        The path written.

    Raises:
        ExportError: if the ONNX packages are missing or conversion fails.
    """
    import tensorflow as tf

    check_export_requirements([("onnx", "none")])
    path = Path(path)
    size = int(model.input_shape[1])
    # A model loaded from .keras has never been called, so Keras cannot infer
    # the signature; give it, with a free batch dimension.
    signature = [tf.TensorSpec([None, size, size, 3], tf.float32, name="image")]
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.export(str(temporary), format="onnx", verbose=False, input_signature=signature)
        os.replace(temporary, path)
    except Exception as error:  # noqa: BLE001 - tf2onnx raises many types.
        raise ExportError(
            f"Expected the model to convert to ONNX. Received: {type(error).__name__}: "
            f"{first_line(error)}. Export to tflite or saved_model instead."
        ) from None
    finally:
        temporary.unlink(missing_ok=True)
    return path
