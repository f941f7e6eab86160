"""`kerasdl export`: one saved model exported to one file, checked on the data it was trained on.

This is where the model file and its data are found and read: a run folder
gives its `model.keras`, and its config.json the data source, seed and split
fractions, so the parity check sees the run's own validation images. The
export package then gets the model and the batches (`export_to_path`).
"""


from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from kerasdl._util.run_folder import check_apart_from_data, is_run_config
from kerasdl.data.load import load_data
from kerasdl.data.naming import check_source
from kerasdl.data.pipeline import make_dataset
from kerasdl.data.sources import source_folders
from kerasdl.errors import DataError, ExportError, ModelFileError
from kerasdl.export.exporter import export_to_path
from kerasdl.export.int8_search import int8_summary
from kerasdl.export.metadata import check_labels_compatible
from kerasdl.export.model_file import load_model_for_export
from kerasdl.export.options import INT8_MODES, ExportOptions, check_export_output, check_export_requirements
from kerasdl.export.tflite import representative_files

__all__ = ["ExportedFile", "export_file", "export_model_file"]


def export_file(
    model_path: str | os.PathLike,
    output: str | os.PathLike,
    *,
    export_format: str = "tflite",
    quantize: str = "none",
    data_source: str | None = None,
    overwrite: bool = False,
    options: ExportOptions | None = None,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Exports a saved `.keras` model to one file and checks it (`kerasdl export`).

    labels.txt, metadata.json and parity.json are written beside `output`.
    The parity check runs on the validation split of `data_source`; int8
    calibration uses a sample of its training split. For a model inside a
    run folder, the run's source, seed and split fractions are the defaults,
    so the check sees the run's own validation images.

    Args:
        model_path: The `.keras` file, or a run folder (its `model.keras`).
        output: The file (`.tflite`, `.onnx`) or folder (SavedModel) to write,
            outside the folders of the data.
        export_format: `"tflite"`, `"saved_model"` or `"onnx"`. Defaults to
            `"tflite"`.
        quantize: TFLite quantization (see `kerasdl.export.export_to_path`).
            Defaults to `"none"`.
        data_source: Labelled images (an image source). Defaults to `None`
            (the run's source).
        overwrite: Replace an existing `output`. Defaults to `False`.
        options: See `ExportOptions`. Defaults to `ExportOptions(seed=<run seed>)`.
        batch_size: Images per batch of the checks. Defaults to `32`.

    Returns:
        `{file name: parity dict}`.

    Raises:
        ExportError: for a bad output path or option, missing data, a failed
            conversion; `ExportRejectedError` when the file fails its check.
        DataError, ModelFileError: for bad data or a model that cannot load.

    Example:
    ```python
    export_file("runs/flowers/20260101-120000", "model_int8.tflite", quantize="int8")
    ```
    """
    output, model_path = Path(output), run_model_file(Path(model_path))
    check_export_output(output, export_format=export_format, quantize=quantize, overwrite=overwrite)
    check_export_requirements([(export_format, quantize)])
    run = run_settings(model_path)
    source = data_source or run.get("source")
    if not source:
        raise ExportError(
            "Expected data_source with the labelled images the model was trained on, for the parity "
            f"check (and int8 calibration). Received: none, and no run config.json beside {model_path}.",
            argument="data_source",
        )
    options = options or ExportOptions(seed=run.get("seed", 0))
    check_source(source)  # the paths, before the model loads
    # The file and labels.txt, metadata.json, parity.json beside it: never among the images.
    check_apart_from_data(output, source_folders(source), data_source=source, argument="output")
    model = load_model_for_export(model_path)
    image_size = int(model.input_shape[1])
    data = load_data(source, image_size=image_size, batch_size=batch_size,
                     val_split=run.get("val_split", 0.2), test_split=run.get("test_split", 0.0),
                     seed=run.get("seed", 0),
                     **(run.get("reading", {}) if source == run.get("source") else {}))
    num_outputs = int(model.output_shape[-1])
    if len(data.class_names) != num_outputs:
        raise DataError(
            f"Expected data with the model's {num_outputs} classes. Received: {len(data.class_names)} "
            f"class folders in {source}. Pass the data the model was trained on."
        )
    check_labels_compatible(output.parent, data.class_names)
    representative = None
    if quantize in INT8_MODES:
        sample = representative_files(data.files["train"], size=options.representative_size, seed=options.seed)
        representative = [np.asarray(x) for x, _ in make_dataset(
            sample, image_size=image_size, batch_size=batch_size, cache=False)]
    return export_to_path(model, output, class_names=data.class_names, parity_data=data.val,
                          representative_images=representative, export_format=export_format,
                          quantize=quantize, overwrite=overwrite, options=options)


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
    """`export_file` with the command line's options, its result in one record (`kerasdl export`).

    Args:
        model_path, output, export_format, quantize, data_source, overwrite:
            As for `export_file`.
        representative_size, int8_bias_correction, int8_io, max_accuracy_drop:
            The `ExportOptions` fields of the same names.

    Returns:
        An `ExportedFile`.

    Raises:
        ExportError: as `export_file` does.
    """
    options = ExportOptions(representative_size=representative_size, int8_io=int8_io,
                            max_accuracy_drop=max_accuracy_drop, int8_bias_correction=int8_bias_correction)
    parity = export_file(model_path, output, export_format=export_format, quantize=quantize,
                         data_source=data_source, overwrite=overwrite, options=options)
    output = Path(output)
    check = parity[output.name]
    megabytes = None if export_format == "saved_model" else output.stat().st_size / 1e6
    search = (int8_summary(check["int8_search"], check["accuracy_change"])
              if "int8_search" in check else None)
    return ExportedFile(path=output, check=check, megabytes=megabytes, int8_search=search)


def run_model_file(path: Path) -> Path:
    """The `.keras` file to export for `path`: a run folder gives its `model.keras`.

    Raises:
        ModelFileError: for a run folder without `model.keras` (not finished).
    """
    if not (path.is_dir() and is_run_config(path / "config.json")):
        return path
    if not (path / "model.keras").is_file():
        raise ModelFileError(
            f"Expected a finished run folder with model.keras. Received: {path}, which has none yet. "
            "Finish (or resume) the run, or pass one of its model files."
        )
    return path / "model.keras"


def run_settings(model_path: Path) -> dict[str, Any]:
    """The data source and split of the run that wrote `model_path`, if any."""
    config_path = model_path.parent / "config.json"
    try:
        config = json.loads(config_path.read_text())
        return {
            "source": config["data"]["source"],
            "seed": int(config.get("seed", 0)),
            "val_split": float(config["recipe"]["data"]["val_split"]),
            "test_split": float(config["recipe"]["data"]["test_split"]),
            # how the run read its data (absent from runs of older versions)
            "reading": {key: config["recipe"]["data"][key]
                        for key in ("encoding", "max_image_pixels", "path_column", "label_column",
                                    "class_names")
                        if config["recipe"]["data"].get(key) is not None},
        }
    except (OSError, ValueError, KeyError, TypeError):
        return {}
