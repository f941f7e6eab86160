"""Labels, metadata.json and preprocessing facts written beside exported files."""


from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from kerasdl import __version__
from kerasdl._util.files import write_bytes_atomically, write_json
from kerasdl.errors import ExportError
from kerasdl.export.options import INT8_MODES, ExportOptions

METADATA_FILE = "metadata.json"
LABELS_FILE = "labels.txt"
PARITY_FILE = "parity.json"

__all__ = ["check_labels_compatible", "describe_preprocessing", "file_metadata", "merge_json", "model_metadata",
           "write_labels", "write_metadata"]


def write_labels(class_names: list[str], path: str | os.PathLike) -> Path:
    """Writes one class name per line, in label order (atomically)."""
    path = Path(path)
    write_bytes_atomically(("\n".join(class_names) + "\n").encode(), path)
    return path


def describe_preprocessing(model) -> str:
    """How the model scales [0, 255] pixels inside, in words, from its layers."""
    try:
        layer = model.get_layer("preprocessing")
    except ValueError:
        return "unknown (no layer named 'preprocessing'); feed what the model was trained on"
    config = layer.get_config()
    name = type(layer).__name__
    if name == "Rescaling":
        return f"x * {float(np.ravel(config['scale'])[0]):.6g} + {float(np.ravel(config['offset'])[0]):.6g}"
    if name == "Normalization":
        mean = np.ravel(config.get("mean")).round(3).tolist()
        std = np.sqrt(np.ravel(config.get("variance"))).round(3).tolist()
        return f"(x - {mean}) / {std} per RGB channel (ImageNet mean and std)"
    if name == "Conv2D":
        return "RGB -> BGR, then minus the ImageNet mean (caffe style), as a fixed 1x1 convolution"
    if name == "Identity":
        return "none outside the backbone (it scales [0, 255] inputs itself)"
    return f"{name} layer"


def merge_json(path: Path, key: str, value: Any) -> None:
    """Sets `key` of the JSON object in `path` (parity.json), keeping the other keys."""
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[key] = value
    write_json(data, path)


def check_labels_compatible(folder: str | os.PathLike, class_names: list[str]) -> None:
    """Refuses to write into a folder whose labels.txt names other classes.

    Raises:
        ExportError: if `folder/labels.txt` exists with different names.
    """
    labels = Path(folder) / LABELS_FILE
    if labels.is_file():
        existing = [line.strip() for line in labels.read_text().splitlines() if line.strip()]
        if existing != list(class_names):
            raise ExportError(
                f"Expected {labels} to list this model's classes ({', '.join(class_names)}). "
                f"Received: {', '.join(existing)}. Export into another folder."
            )


def model_metadata(model, class_names: list[str]) -> dict[str, Any]:
    """The folder-level part of metadata.json: input, normalisation, classes."""
    size = int(model.input_shape[1])
    return {
        "kerasdl_version": __version__,
        "model_name": model.name,
        "class_names": list(class_names),
        "labels_file": LABELS_FILE,
        "input": {
            "shape": [1, size, size, 3],
            "layout": "NHWC",
            "color": "RGB",
            "image_size": [size, size],
            "resize": f"resize the image to {size}x{size} (bilinear), no crop",
            "value_range": [0, 255],
            "normalisation": "none: feed raw RGB pixel values in [0, 255]; the model normalises "
                             f"inside ({describe_preprocessing(model)})",
        },
        "output": {
            "shape": [1, len(class_names)],
            "meaning": "class probabilities (softmax, sum 1); index i is line i of labels.txt",
        },
        "files": {},
    }


def file_metadata(export_format: str, quantize: str, path: Path, runner, options: ExportOptions) -> dict[str, Any]:
    """One file's entry of metadata.json: format, size, its tensors, and int8 settings."""
    entry: dict[str, Any] = {"format": export_format, "quantization": quantize}
    if export_format != "saved_model":
        entry["size_bytes"] = path.stat().st_size
    if hasattr(runner, "tensor_info"):
        entry.update(runner.tensor_info())
    if export_format == "tflite" and quantize in INT8_MODES:
        entry["int8_io"] = options.int8_io
        entry["bias_correction"] = options.int8_bias_correction
    if "quantization" in entry.get("input", {}):
        entry["input"]["how"] = "q = round(pixel / scale + zero_point), clipped to the dtype"
    if "quantization" in entry.get("output", {}):
        entry["output"]["how"] = "probability = (q - zero_point) * scale"
    return entry


def write_metadata(folder: Path, base: dict[str, Any], name: str, entry: dict[str, Any]) -> Path:
    """Adds one file's entry to `folder/metadata.json` (kept for other files)."""
    path = folder / METADATA_FILE
    existing = json.loads(path.read_text()) if path.is_file() else {}
    files = existing.get("files", {}) if existing.get("class_names") == base["class_names"] else {}
    files[name] = entry
    write_json({**base, "files": files}, path)
    return path

