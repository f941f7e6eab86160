"""Export for deployment: SavedModel, TFLite (float, float16, dynamic, int8), ONNX, parity.

Modules: `options` (what to export and how), `saved_model`, `tflite`, `onnx`
(one writer per format family), `exporter` (writes the targets and checks
each one), `metadata`, `parity`, `int8_search`, `bias_correction`,
`model_file`, and `tf_process`/`tf_worker` (export from a JAX or PyTorch
process).
"""

from kerasdl.export.exporter import export_model, export_to_path
from kerasdl.export.onnx import export_onnx
from kerasdl.export.options import ExportOptions, ExportTarget
from kerasdl.export.parity import check_parity
from kerasdl.export.saved_model import export_saved_model
from kerasdl.export.tflite import export_tflite

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
