"""Export for serving and mobile: SavedModel, TFLite (LiteRT), ONNX, and proof.

Every exported file is run right after it is written (TFLite with the LiteRT
interpreter, ONNX with onnxruntime, a SavedModel with TensorFlow) on the
validation split and compared with the Keras model (`check_parity`). A file
whose accuracy drops by more than `ExportOptions.max_accuracy_drop` is kept
under a `*.rejected.*` name and the export fails with `ExportRejectedError`.
TFLite `int8` tries every op in int8 first and, if that file fails, keeps the
fewest ops in float that pass (`kerasdl.export.int8_search`); `int8-full`
keeps the strict rule: every op int8, or a rejected file.

Beside the files go `labels.txt` (one class name a line, in output order),
`metadata.json` (what an app must feed and what it gets back, per file) and
`parity.json` (the checks).

TFLite files are made with `tf.lite.TFLiteConverter.from_saved_model` from
one SavedModel written by `model.export(format="tf_saved_model")`. Keras 3's
`model.export(format="litert")` runs the same converter, but it writes a new
SavedModel for every call, enables `SELECT_TF_OPS` (a file that then needs
the Flex delegate on a phone instead of failing here) and writes the file in
place rather than under a temporary name; so kerasdl drives the converter
itself, with builtin ops only.
"""


from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from kerasdl._util.backend import active_backend
from kerasdl._util.files import _write_bytes_atomically
from kerasdl._util.native_output import held_stderr
from kerasdl.errors import ExportError, ExportRejectedError, ModelFileError
from kerasdl.export.bias_correction import int8_bias_correction
from kerasdl.export.int8_search import PROBE_IMAGES, int8_summary, search_int8
from kerasdl.export.metadata import (
    LABELS_FILE,
    PARITY_FILE,
    _file_metadata,
    _merge_json,
    check_labels_compatible,
    model_metadata,
    write_labels,
    write_metadata,
)
from kerasdl.export.parity import compare_predictions, is_rejected
from kerasdl.export.tf_process import export_in_tensorflow_process
from kerasdl.inference.runners import TFLiteModel, _first_line, load_exported

QUANTIZATIONS = ("none", "float16", "dynamic", "int8", "int8-full")
INT8_MODES = ("int8", "int8-full")  # full-integer calibration; int8 may keep a few ops in float
FORMATS = ("saved_model", "tflite", "onnx")
INT8_IO = ("uint8", "float")
ONNX_PACKAGES = ("onnx", "tf2onnx", "onnxruntime")

logger = logging.getLogger(__name__)


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


# ------------------------------------------------------------------ checks


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


def find_custom_layers(path: str | os.PathLike) -> list[str]:
    """Names of the layers of a `.keras` file that are not Keras built-ins.

    Reads the file's architecture (`config.json` inside the zip) without
    loading it, so a model kerasdl cannot rebuild is refused quickly.

    Args:
        path: A `.keras` file.

    Returns:
        The custom class names (their registered names when they have one),
        sorted; empty for a model made of Keras layers only.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, OSError, ValueError):
        return []  # not a .keras archive: loading reports it
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            module = node.get("module", "keras")
            if isinstance(node.get("class_name"), str) and not str(module).startswith("keras"):
                found.add(node.get("registered_name") or node["class_name"])
            for key, value in node.items():
                if key != "compile_config":
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return sorted(found)


def load_model_for_export(path: str | os.PathLike):
    """Loads a `.keras` file to export; refuses custom layers in one line.

    Args:
        path: The `.keras` file.

    Returns:
        The `keras.Model`.

    Raises:
        ModelFileError: if the file is missing, not a `.keras` model, or uses
            layers that are not part of Keras.
    """
    from kerasdl.inference.predict import load_model_file

    path = Path(path)
    if path.is_file():
        custom = find_custom_layers(path)
        if custom:
            raise ModelFileError(
                f"Expected a model made of built-in Keras layers. Received: {path} with custom "
                f"layers {', '.join(custom)}, which kerasdl cannot rebuild. Export it from Python "
                "(kerasdl.export_model) where those layers are imported."
            )
    loaded = load_model_file(path)
    if loaded.keras_model is None:
        raise ModelFileError(
            f"Expected a .keras model to export. Received: {path} ({loaded.kind}). "
            "Pass the model.keras of a run."
        )
    return loaded.keras_model


# --------------------------------------------------------------- writers


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


def export_tflite(
    model,
    path: str | os.PathLike,
    *,
    quantize: str = "none",
    representative_images: Iterable[np.ndarray] | None = None,
    saved_model_dir: str | os.PathLike | None = None,
    int8_io: str = "uint8",
    bias_correction: bool = True,
) -> Path:
    """Converts a Keras model to a TFLite file with the TFLite converter.

    Only TFLite builtin ops are allowed, so the file runs with the plain
    LiteRT runtime on a phone.

    Args:
        model: A Keras model taking [0, 255] images.
        path: The `.tflite` file to write (temporary name, then renamed).
        quantize: `"none"` (float32), `"float16"` (float16 weights),
            `"dynamic"` (int8 weights, float activations), `"int8"` or
            `"int8-full"` (full integer: every op int8; only `export_model`
            with parity data can search for ops to keep in float).
            Defaults to `"none"`.
        representative_images: Batches of [0, 255] training images for int8
            calibration. Required for `"int8"` and `"int8-full"`. Defaults to
            `None`.
        saved_model_dir: An existing SavedModel of `model` to convert from.
            Defaults to `None` (one is written to a temporary folder).
        int8_io: For int8: `"uint8"` input and output tensors, or
            `"float"` ones. Defaults to `"uint8"`.
        bias_correction: For int8: convert a bias-corrected copy of the
            weights (`kerasdl.export.bias_correction`; `saved_model_dir` is then not
            used). Defaults to `True`.

    Returns:
        The path written.

    Raises:
        ExportError: for an unknown quantization, int8 without images, or a
            failed conversion.

    Example:
    ```python
    export_tflite(model, "model_int8.tflite", quantize="int8", representative_images=[x_train[:300]])
    ```
    """
    import tensorflow as tf

    if quantize not in QUANTIZATIONS:
        raise ExportError(
            f"Expected quantize from: {', '.join(QUANTIZATIONS)}. Received: quantize={quantize!r}.",
            argument="quantize",
        )
    if int8_io not in INT8_IO:
        raise ExportError(f"Expected int8_io from: {', '.join(INT8_IO)}. Received: int8_io={int8_io!r}.",
                          argument="int8_io")
    full_integer = quantize in INT8_MODES
    batches = _representative_batches(representative_images) if full_integer else None
    correct_bias = full_integer and bias_correction
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="kerasdl_export_") as scratch:
        if saved_model_dir is None or correct_bias:
            corrected = int8_bias_correction(model, batches) if correct_bias else contextlib.nullcontext()
            with corrected:
                saved_model_dir = export_saved_model(model, Path(scratch) / "saved_model")
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if full_integer:
            converter.representative_dataset = _representative_dataset(batches)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if int8_io == "uint8":
                converter.inference_input_type = tf.uint8
                converter.inference_output_type = tf.uint8
        try:
            with held_stderr():  # the quantizer's native notes
                flatbuffer = converter.convert()
        except Exception as error:  # noqa: BLE001 - the converter raises many types.
            raise ExportError(
                f"Expected the model to convert to TFLite ({quantize}) with builtin ops. Received: "
                f"{type(error).__name__}: {_first_line(error)}. Keep augmentation and custom ops out "
                "of the exported model."
            ) from None
    _write_bytes_atomically(flatbuffer, path)
    return path


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
            f"{_first_line(error)}. Export to tflite or saved_model instead."
        ) from None
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _representative_dataset(images: Iterable[np.ndarray] | None) -> Callable:
    if images is None:
        raise ExportError(
            "Expected representative images for int8 quantization. Received: none. "
            "Pass representative_images (training images, e.g. from data_source)."
        )
    # Pixels are whole numbers in [0, 255]: keep them as uint8 (4x less memory).
    batches = [np.clip(np.round(np.asarray(batch)), 0, 255).astype(np.uint8) for batch in images]
    if not sum(len(batch) for batch in batches):
        raise ExportError(
            "Expected representative images for int8 quantization. Received: an empty set. "
            "Pass representative_images with readable training images."
        )

    def generate():
        for batch in batches:
            for image in batch:
                yield [image[None].astype(np.float32)]

    return generate


def representative_files(files, *, size: int, seed: int = 0):
    """A seeded random sample of training files for int8 calibration.

    Random rather than the first files, which are sorted by class.

    Args:
        files: The training split's `ImageFiles`.
        size: How many to take (all when there are fewer).
        seed: Seed of the sample. Defaults to `0`.

    Returns:
        An `ImageFiles` of at most `size` files.
    """
    order = np.random.default_rng(seed).permutation(len(files))[:size]
    return files.subset(sorted(order.tolist()))


# ------------------------------------------------------------------ export


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


def export_model(
    model,
    output_dir: str | os.PathLike,
    *,
    formats: list[tuple[str, str]],
    class_names: list[str],
    parity_data: Iterable | None = None,
    representative_images: Iterable[np.ndarray] | None = None,
    options: ExportOptions | None = None,
    file_names: dict[tuple[str, str], str] | None = None,
    reference: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Writes the requested formats with labels.txt, metadata.json, parity.json.

    Each file is checked on `parity_data` right after it is written. A file
    that loses more accuracy than `options.max_accuracy_drop` is renamed
    `*.rejected.*`; the other formats are still written, then
    `ExportRejectedError` is raised. A model on the JAX or PyTorch backend
    is exported by a TensorFlow-backend subprocess, with the same files and
    checks (`kerasdl.export.tf_process`).

    Args:
        model: The trained Keras model (takes [0, 255] RGB images).
        output_dir: The export folder (created if needed).
        formats: `ExportTarget`s (or `(format, quantize)` pairs), e.g. from
            `parse_export_list`.
        class_names: Class names by label index.
        parity_data: Re-iterable labelled validation batches (a
            `tf.data.Dataset` or a list). Defaults to `None` (no check).
        representative_images: Training image batches for int8 calibration.
            Defaults to `None`.
        options: Rejection threshold and int8 settings. Defaults to
            `ExportOptions()`.
        file_names: `{(format, quantize): name}` to override the default
            names of `export_file_name`. Defaults to `None`.
        reference: The model's own `(labels, probabilities)` on
            `parity_data`, in its order, when already computed (a run's
            evaluation). Defaults to `None` (computed here).

    Returns:
        `{file name: parity dict}` for each checked file.

    Raises:
        ExportError: for a format that cannot be made.
        ExportRejectedError: if a file failed its parity check.

    Example:
    ```python
    export_model(model, "export", formats=[("tflite", "int8")], class_names=data.class_names,
                 parity_data=data.val, representative_images=(x for x, _ in data.train.take(10)))
    ```
    """
    from kerasdl.inference.batches import batch_predictor, collect_predictions

    options = options or ExportOptions()
    output_dir = Path(output_dir)
    check_export_requirements(formats)
    check_labels_compatible(output_dir, class_names)
    if active_backend() != "tensorflow":  # the converters need the model on TensorFlow
        return export_in_tensorflow_process(
            model, output_dir, formats=formats, class_names=class_names, parity_data=parity_data,
            representative_images=representative_images, options=options, file_names=file_names,
            reference=reference)
    if any(kind == "tflite" and quantize in INT8_MODES for kind, quantize in formats):
        representative_images = _representative_batches(representative_images)
    output_dir.mkdir(parents=True, exist_ok=True)
    base_metadata = model_metadata(model, class_names)
    names = {pair: (file_names or {}).get(pair) or export_file_name(*pair) for pair in formats}

    if parity_data is None:
        reference = None
    elif reference is None:
        reference = collect_predictions(batch_predictor(model), parity_data)
    parity: dict[str, Any] = {}
    rejected: list[str] = []
    with tempfile.TemporaryDirectory(prefix="kerasdl_export_") as scratch:
        saved_model_dir = None
        if any(kind in ("saved_model", "tflite") for kind, _ in formats):
            saved_model_dir = export_saved_model(model, Path(scratch) / "saved_model")
        for kind, quantize in formats:
            path = output_dir / names[(kind, quantize)]
            write_labels(class_names, output_dir / LABELS_FILE)
            check = _export_one(model, ExportTarget(kind, quantize), path, base_metadata=base_metadata,
                                saved_model_dir=saved_model_dir, representative_images=representative_images,
                                reference=reference, parity_data=parity_data, options=options)
            if check is None:
                continue
            if check["rejected"]:
                rejected.append(_rejection_reason(path.name, check))
            parity[path.name] = check
    if rejected:
        raise ExportRejectedError(
            f"Expected exported files to lose at most {options.max_accuracy_drop:.4f} accuracy. "
            f"Received: {'; '.join(rejected)}; kept as *.rejected.*. See {output_dir / PARITY_FILE}, "
            "or raise max_accuracy_drop.",
            parity=parity,
        )
    return parity


def _export_one(model, target: ExportTarget, path: Path, *, base_metadata, saved_model_dir,
                representative_images, reference, parity_data, options: ExportOptions) -> dict[str, Any] | None:
    """Writes and checks one file; records it in parity.json, and in metadata.json unless rejected.

    Returns:
        Its parity check, or `None` without parity data.
    """
    runner = None
    if reference is not None and target == ("tflite", "int8"):
        check = _search_int8_file(model, path, saved_model_dir=saved_model_dir, reference=reference,
                                  parity_data=parity_data, representative_images=representative_images,
                                  options=options)
    else:
        _write_target(model, target, path, saved_model_dir=saved_model_dir,
                      representative_images=representative_images, options=options)
        runner = load_exported(target.format, path)
        check = None if reference is None else _parity_check(target, path, runner, reference, parity_data, options)
    if check is None or not check["rejected"]:
        entry = _file_metadata(target.format, target.quantize, path, runner or load_exported(target.format, path),
                               options)
        if check is not None:
            entry["parity"] = {key: check[key] for key in ("top1_agreement", "keras_accuracy", "accuracy")}
            if "int8_search" in check:
                entry["int8_search"] = check["int8_search"]
        write_metadata(path.parent, base_metadata, path.name, entry)
    if check is not None:
        _merge_json(path.parent / PARITY_FILE, path.name, check)
    return check


def _rejection_reason(name: str, check: dict[str, Any]) -> str:
    """`model_int8.tflite (accuracy 0.70 vs Keras 0.72)`, with the widest float set an int8 search tried."""
    search = check.get("int8_search")
    tried = ""
    if search and len(search["steps"]) > 1:
        tried = (f"int8 with up to {search['steps'][-1]['float_ops']} of {search['quantizable_ops']} ops "
                 "kept in float failed too; the best file: ")
    return f"{name} ({tried}accuracy {check['accuracy']:.4f} vs Keras {check['keras_accuracy']:.4f})"


def _search_int8_file(model, path: Path, *, saved_model_dir, reference, parity_data, representative_images,
                      options: ExportOptions) -> dict[str, Any]:
    """`int8`: every op int8, else the fewest ops kept in float that pass (`search_int8`).

    The file that passed is written at `path`; when none did, the one that
    lost the least is kept as `*.rejected.tflite`.
    """
    from kerasdl.inference.batches import batch_predictor

    target = ExportTarget("tflite", "int8")
    probe_images = _first_images(representative_images, PROBE_IMAGES)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as scratch:
        scratch = Path(scratch)
        probe = (probe_images, np.asarray(batch_predictor(model)(probe_images)))
        if options.int8_bias_correction:
            with int8_bias_correction(model, representative_images):
                saved_model_dir = export_saved_model(model, scratch / "saved_model")
        found = search_int8(
            saved_model_dir, representative_dataset=_representative_dataset(representative_images), probe=probe,
            evaluate=lambda candidate: _compare(target, TFLiteModel(candidate), reference, parity_data, options),
            scratch=scratch, int8_io=options.int8_io, max_steps=options.int8_search_steps,
        )
        final = path if found.passed else rejected_path(path)
        if not found.passed:
            path.unlink(missing_ok=True)  # kerasdl's earlier file: a rejected export leaves none
        os.replace(found.candidate, final)
    check = {**found.check, "file": final.name, "int8_search": found.record()}
    logger.info(f"{path.name}: {int8_summary(check['int8_search'], check['accuracy_change'])} "
                f"({found.stopped}, {found.seconds:.0f} s)")
    return check


def _first_images(batches: list[np.ndarray], count: int) -> np.ndarray:
    """The first `count` images of a list of batches, as one array."""
    taken, total = [], 0
    for batch in batches:
        taken.append(np.asarray(batch)[:count - total])
        total += len(taken[-1])
        if total >= count:
            break
    return np.concatenate(taken)


def _write_target(model, target: ExportTarget, path: Path, *, saved_model_dir, representative_images,
                  options: ExportOptions) -> None:
    """Writes one exported file (or SavedModel folder) at `path`, replacing kerasdl's earlier one."""
    if target.format == "saved_model":
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        shutil.copytree(saved_model_dir, path.with_name(f".{path.name}.tmp"), dirs_exist_ok=True)
        os.replace(path.with_name(f".{path.name}.tmp"), path)
    elif target.format == "onnx":
        export_onnx(model, path)
    else:
        export_tflite(model, path, quantize=target.quantize, representative_images=representative_images,
                      saved_model_dir=saved_model_dir, int8_io=options.int8_io,
                      bias_correction=options.int8_bias_correction)


def _compare(target: ExportTarget, runner, reference, parity_data, options: ExportOptions) -> dict[str, Any]:
    """The parity dict of a runner against the Keras model's `reference` predictions."""
    from kerasdl.inference.batches import collect_predictions

    labels, expected = reference
    _, received = collect_predictions(runner.predict_batch, parity_data)
    check = {"format": target.format, "quantization": target.quantize, "split": "val",
             **compare_predictions(labels, expected, received),
             "max_accuracy_drop": options.max_accuracy_drop}
    check["rejected"] = is_rejected(check, options.max_accuracy_drop)
    return check


def _parity_check(target: ExportTarget, path: Path, runner, reference, parity_data,
                  options: ExportOptions) -> dict[str, Any]:
    """Compares a written file with the Keras model; a rejected file is renamed `*.rejected.*`."""
    check = {**_compare(target, runner, reference, parity_data, options), "file": path.name}
    if check["rejected"]:
        kept = rejected_path(path)
        if kept.is_dir():
            shutil.rmtree(kept)
        os.replace(path, kept)
        check["file"] = kept.name
    return check


def _representative_batches(images: Iterable[np.ndarray] | None) -> list[np.ndarray] | None:
    """Reads the calibration images once, before any file is written."""
    batches = None if images is None else [np.asarray(batch) for batch in images]
    _representative_dataset(batches)  # raises for none or an empty set
    return batches


def _run_model_file(path: Path) -> Path:
    """The `.keras` file to export for `path`: a run folder gives its `model.keras`.

    Raises:
        ModelFileError: for a run folder without `model.keras` (not finished).
    """
    from kerasdl._util.run_folder import is_run_config

    if not (path.is_dir() and is_run_config(path / "config.json")):
        return path
    if not (path / "model.keras").is_file():
        raise ModelFileError(
            f"Expected a finished run folder with model.keras. Received: {path}, which has none yet. "
            "Finish (or resume) the run, or pass one of its model files."
        )
    return path / "model.keras"


def _run_settings(model_path: Path) -> dict[str, Any]:
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


def _check_export_output(output: Path, *, export_format: str, quantize: str, overwrite: bool) -> None:
    """`export_to_path`'s checks of the format, quantization and output path, before any work."""
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


def export_to_path(
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
        quantize: TFLite quantization, see `export_tflite`; `"int8"` keeps
            the fewest ops in float that pass the parity check when every op
            in int8 does not (see `kerasdl.export.int8_search`), `"int8-full"`
            keeps every op int8 or rejects the file. Defaults to `"none"`.
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
    """
    from kerasdl._util.run_folder import check_apart_from_data
    from kerasdl.data.load import load_data
    from kerasdl.data.naming import check_source
    from kerasdl.data.pipeline import make_dataset
    from kerasdl.data.sources import source_folders
    from kerasdl.errors import DataError

    output, model_path = Path(output), _run_model_file(Path(model_path))
    _check_export_output(output, export_format=export_format, quantize=quantize, overwrite=overwrite)
    check_export_requirements([(export_format, quantize)])
    run = _run_settings(model_path)
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
    return export_model(
        model, output.parent, formats=[(export_format, quantize)], class_names=data.class_names,
        parity_data=data.val, representative_images=representative, options=options,
        file_names={(export_format, quantize): output.name},
    )

