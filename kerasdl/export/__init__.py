"""Export for deployment: SavedModel, TFLite (float, float16, dynamic, int8), ONNX, parity."""

from kerasdl.export.exporter import (
    ExportOptions,
    ExportTarget,
    export_model,
    export_onnx,
    export_saved_model,
    export_tflite,
    export_to_path,
)
from kerasdl.export.parity import check_parity

__all__ = [
    "ExportOptions",
    "ExportTarget",
    "check_parity",
    "export_model",
    "export_onnx",
    "export_saved_model",
    "export_tflite",
    "export_to_path",
]
