"""One model exported to one file and checked against the Keras model (`kerasdl export`)."""


from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from kerasdl.export.exporter import ExportOptions, export_to_path
from kerasdl.export.int8_search import int8_summary


@dataclasses.dataclass(frozen=True)
class ExportedFile:
    """A written export and its parity check.

    Attributes:
        path: The file (or SavedModel folder) written.
        check: Its parity record (`num_samples`, `top1_agreement`,
            `accuracy`, `keras_accuracy`, `max_abs_probability_difference` ...).
        megabytes: The file's size in MB; `None` for a SavedModel folder.
        int8_search: For `int8` that kept ops in float, what the search
            chose, in words; else `None`.
    """

    path: Path
    check: dict[str, Any]
    megabytes: float | None
    int8_search: str | None


def export_model_file(model_path: str | os.PathLike, output: str | os.PathLike, *,
                      export_format: str = "tflite", quantize: str = "none", data_source: str | None = None,
                      overwrite: bool = False, representative_size: int = 300, int8_bias_correction: bool = True,
                      int8_io: str = "uint8", max_accuracy_drop: float = 0.01) -> ExportedFile:
    """Exports a `.keras` model (or a run folder's) to `output` and checks its predictions.

    labels.txt, metadata.json and parity.json are written beside `output`.

    Args:
        model_path: The `.keras` file, or a run folder.
        output: The file (`.tflite`, `.onnx`) or folder (SavedModel) to write.
        export_format: `"tflite"`, `"saved_model"` or `"onnx"`. Defaults to `"tflite"`.
        quantize: TFLite quantization (see `export_to_path`). Defaults to `"none"`.
        data_source: Labelled images for calibration and the parity check.
            Defaults to `None` (the run's source).
        overwrite: Replace an existing `output`. Defaults to `False`.
        representative_size, int8_bias_correction, int8_io, max_accuracy_drop:
            The `ExportOptions` fields of the same names.

    Returns:
        An `ExportedFile`.

    Raises:
        ExportError: for a bad output or option, missing data, a failed
            conversion; `ExportRejectedError` when the file fails its check.
    """
    options = ExportOptions(representative_size=representative_size, int8_io=int8_io,
                            max_accuracy_drop=max_accuracy_drop, int8_bias_correction=int8_bias_correction)
    parity = export_to_path(model_path, output, export_format=export_format, quantize=quantize,
                            data_source=data_source, overwrite=overwrite, options=options)
    output = Path(output)
    check = parity[output.name]
    megabytes = None if export_format == "saved_model" else output.stat().st_size / 1e6
    search = (int8_summary(check["int8_search"], check["accuracy_change"])
              if "int8_search" in check else None)
    return ExportedFile(path=output, check=check, megabytes=megabytes, int8_search=search)
