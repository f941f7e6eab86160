"""What to export and how: `ExportOptions`, `ExportTarget`, the `--export` list and file names.

The names and rules every other module of `kerasdl.export` shares, so that
the writers, the metadata and the orchestration import this module and not
each other.
"""


from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from kerasdl.errors import ExportError

QUANTIZATIONS = ("none", "float16", "dynamic", "int8", "int8-full")
INT8_MODES = ("int8", "int8-full")  # full-integer calibration; int8 may keep a few ops in float
FORMATS = ("saved_model", "tflite", "onnx")
INT8_IO = ("uint8", "float")
ONNX_PACKAGES = ("onnx", "tf2onnx", "onnxruntime")

__all__ = [
    "ExportJob",
    "ExportOptions",
    "ExportTarget",
    "check_export_output",
    "check_export_requirements",
    "export_file_name",
    "parse_export_list",
    "rejected_path",
]


@dataclasses.dataclass
class ExportOptions:
    """How exported files are made and when they are rejected.

    Attributes:
        representative_size: Training images used to calibrate int8
            quantization (a seeded random sample of the training split).
        int8_io: `"uint8"`: an int8 model takes uint8 pixels and returns
            uint8 probabilities; `"float"`: it takes and returns float32
            (quantize/dequantize ops inside the file).
        max_accuracy_drop: The largest accuracy loss on the validation split,
            as a fraction (0.01 = 1 point), before a file is rejected.
        seed: Seed of the representative sample.
        int8_bias_correction: Before int8 conversion, cancel the mean output
            shift that rounding each kernel to int8 causes, measured on the
            representative images (see `kerasdl.export.bias_correction`).
        int8_search_steps: For `int8` when every op in int8 fails the parity
            check: the most files made with ops kept in float (1, 2, 4, ...
            ops; see `kerasdl.export.int8_search`). 0 keeps every op int8.
    """

    representative_size: int = 300
    int8_io: str = "uint8"
    max_accuracy_drop: float = 0.01
    seed: int = 0
    int8_bias_correction: bool = True
    int8_search_steps: int = 5

    def __post_init__(self):
        if self.int8_io not in INT8_IO:
            raise ExportError(f"Expected int8_io from: {', '.join(INT8_IO)}. Received: int8_io={self.int8_io!r}.",
                              argument="int8_io")
        if self.representative_size < 1:
            raise ExportError(
                f"Expected a representative size of at least 1. "
                f"Received: representative_size={self.representative_size}.",
                argument="representative_size",
            )
        if not 0.0 <= self.max_accuracy_drop <= 1.0:
            raise ExportError(
                "Expected max_accuracy_drop between 0 and 1 (0.01 = 1 point). "
                f"Received: max_accuracy_drop={self.max_accuracy_drop}.",
                argument="max_accuracy_drop",
            )
        if self.int8_search_steps < 0:
            raise ExportError(
                "Expected int8_search_steps of at least 0 (0: no ops kept in float). "
                f"Received: int8_search_steps={self.int8_search_steps}.",
                argument="int8_search_steps",
            )


class ExportTarget(NamedTuple):
    """One file to export: a format and, for TFLite, its quantization.

    A plain `(format, quantize)` tuple is accepted wherever a target is.

    Attributes:
        format: One of `FORMATS`.
        quantize: One of `QUANTIZATIONS`; only TFLite files take another
            value than `"none"`.

    Example:
    ```python
    export_model(model, "export", formats=[ExportTarget.tflite("int8"), ExportTarget.saved_model()],
                 class_names=data.class_names)
    ```
    """

    format: str
    quantize: str = "none"

    @classmethod
    def saved_model(cls) -> ExportTarget:
        return cls("saved_model")

    @classmethod
    def onnx(cls) -> ExportTarget:
        return cls("onnx")

    @classmethod
    def tflite(cls, quantize: str = "none") -> ExportTarget:
        return cls.parse(f"tflite:{quantize}")

    @classmethod
    def parse(cls, text: str) -> ExportTarget:
        """`"tflite:int8"` -> `ExportTarget("tflite", "int8")`.

        Raises:
            ExportError: for an unknown format or quantization.
        """
        kind, _, quantize = text.strip().lower().partition(":")
        if kind not in FORMATS or (quantize and (kind != "tflite" or quantize not in QUANTIZATIONS)):
            raise ExportError(
                f"Expected export formats from: saved_model, onnx, tflite, "
                f"tflite:<{'|'.join(QUANTIZATIONS)}>, none. Received: {text!r}."
            )
        return cls(kind, quantize or "none")

    @property
    def file_name(self) -> str:
        """The default file name in an export folder (see `export_file_name`)."""
        return export_file_name(self.format, self.quantize)

    def __str__(self) -> str:
        return self.format if self.quantize == "none" else f"{self.format}:{self.quantize}"


@dataclasses.dataclass
class ExportJob:
    """Everything `export_model` is given besides the model, in one record.

    The TensorFlow-backend subprocess of a JAX or PyTorch export
    (`kerasdl.export.tf_process`) receives the same record, so the argument
    list is written once.

    Attributes:
        output_dir: The export folder.
        formats: The `(format, quantize)` pairs to write, in order.
        class_names: Class names by label index.
        parity_data: Re-iterable labelled validation batches, or `None`
            (no check).
        representative_images: Training image batches for int8 calibration.
        options: Rejection threshold and int8 settings.
        file_names: `{(format, quantize): name}` overriding `export_file_name`.
        reference: The model's own `(labels, probabilities)` on
            `parity_data`, when already computed.
    """

    output_dir: Path
    formats: list[tuple[str, str]]
    class_names: list[str]
    parity_data: Iterable | None = None
    representative_images: Iterable[np.ndarray] | None = None
    options: ExportOptions = dataclasses.field(default_factory=ExportOptions)
    file_names: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)
    reference: tuple[np.ndarray, np.ndarray] | None = None

    def __post_init__(self):
        self.output_dir = Path(self.output_dir)
        self.formats = [ExportTarget(*pair) for pair in self.formats]
        self.class_names = list(self.class_names)
        self.options = self.options or ExportOptions()
        self.file_names = dict(self.file_names or {})

    def path(self, target: tuple[str, str]) -> Path:
        """Where `target` is written: its name from `file_names`, else `export_file_name`."""
        return self.output_dir / (self.file_names.get(tuple(target)) or export_file_name(*target))

    def to_json(self) -> dict[str, Any]:
        """The plain part (no data) as JSON-ready values."""
        return {
            "output_dir": str(self.output_dir.resolve()), "formats": [list(pair) for pair in self.formats],
            "class_names": self.class_names, "options": dataclasses.asdict(self.options),
            "file_names": [[*pair, name] for pair, name in self.file_names.items()],
        }

    @classmethod
    def from_json(cls, plain: dict[str, Any], **data) -> ExportJob:
        """The record of `to_json`, with the data (`parity_data`, ...) given as keywords."""
        return cls(output_dir=Path(plain["output_dir"]), formats=[tuple(pair) for pair in plain["formats"]],
                   class_names=plain["class_names"], options=ExportOptions(**plain["options"]),
                   file_names={(kind, quantize): name for kind, quantize, name in plain["file_names"]}, **data)


def export_file_name(export_format: str, quantize: str = "none") -> str:
    """The default file name of a format in an export folder.

    `saved_model`, `model.tflite` (float32), `model_<quantize>.tflite`
    (`model_int8_full.tflite` for `int8-full`), `model.onnx`.
    """
    if export_format == "saved_model":
        return "saved_model"
    if export_format == "onnx":
        return "model.onnx"
    return "model.tflite" if quantize == "none" else f"model_{quantize.replace('-', '_')}.tflite"


def rejected_path(path: str | os.PathLike) -> Path:
    """`model_int8.tflite` -> `model_int8.rejected.tflite` (a folder gets `.rejected`)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.rejected{path.suffix}")


def parse_export_list(text: str | list[str] | None, *, tflite_quantize: str = "none") -> list[ExportTarget]:
    """Parses `--export` (e.g. `"saved_model,tflite,tflite:int8,onnx"`, or `"none"`).

    Args:
        text: The formats, comma-separated or as a list.
        tflite_quantize: The quantization of a plain `tflite` (a recipe's
            `export.quantize`); `tflite:<quantization>` keeps its own.

    Returns:
        The `ExportTarget`s, in the order given.

    Raises:
        ExportError: for an unknown format or quantization.
    """
    if tflite_quantize not in QUANTIZATIONS:
        raise ExportError(f"Expected export.quantize from: {', '.join(QUANTIZATIONS)}. "
                          f"Received: {tflite_quantize!r}.")
    items = text if isinstance(text, list) else (text or "none").split(",")
    targets = [ExportTarget.parse(item) for item in items if item.strip().lower() not in ("", "none")]
    return [ExportTarget.tflite(tflite_quantize) if target == ("tflite", "none") else target
            for target in targets]


def check_export_requirements(formats: Iterable[tuple[str, str]]) -> None:
    """Checks that the packages the formats need are installed, before any work.

    Raises:
        ExportError: for ONNX without the `onnx` extra.
    """
    if any(kind == "onnx" for kind, _ in formats):
        missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
        if missing:
            raise ExportError(
                f"Expected the ONNX exporter packages ({', '.join(ONNX_PACKAGES)}). Received: "
                f"{', '.join(missing)} not installed. Run `pip install 'kerasdl[onnx]'`."
            )


def check_export_output(output: str | os.PathLike, *, export_format: str, quantize: str, overwrite: bool) -> None:
    """Checks the format, quantization and output path of one exported file, before any work.

    Args:
        output: The file (`.tflite`, `.onnx`) or folder (SavedModel) to write.
        export_format: One of `FORMATS`.
        quantize: One of `QUANTIZATIONS` (`"none"` but for TFLite).
        overwrite: Whether an existing `output` may be replaced.

    Raises:
        ExportError: naming the argument that is wrong.
    """
    output = Path(output)
    if export_format not in FORMATS:
        raise ExportError(f"Expected export_format from: {', '.join(FORMATS)}. "
                          f"Received: export_format={export_format!r}.", argument="export_format")
    if quantize not in QUANTIZATIONS:
        raise ExportError(
            f"Expected quantize from: {', '.join(QUANTIZATIONS)}. Received: quantize={quantize!r}. "
            "Use int8 for the smallest file that passes the parity check, int8-full for every op in int8.",
            argument="quantize",
        )
    if quantize != "none" and export_format != "tflite":
        raise ExportError(
            f"Expected quantize='none' for {export_format}. Received: quantize={quantize!r}. "
            "Quantization applies to export_format='tflite'.",
            argument="quantize",
        )
    suffix = {"tflite": ".tflite", "onnx": ".onnx"}.get(export_format)
    if suffix and output.suffix.lower() != suffix:
        raise ExportError(f"Expected an output file ending in {suffix}. Received: output={str(output)!r}.",
                          argument="output")
    if not output.parent.is_dir():
        raise ExportError(
            f"Expected output in an existing folder. Received: {output.parent}, which does not "
            "exist. Create it first.",
            argument="output",
        )
    if output.exists() and not overwrite:
        raise ExportError(
            f"Expected a new output path. Received: {output}, which exists. Pass overwrite=True to replace it.",
            argument="output",
        )
