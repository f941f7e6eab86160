"""Export for serving and mobile: SavedModel, TFLite (LiteRT), and proof.

Every TFLite file is run with the LiteRT interpreter on held-out images right
after it is written, and compared with the Keras model (`check_parity`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from kerasdl.errors import ExportError

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
FORMATS = ("saved_model", "tflite")


def tflite_file_name(quantize: str) -> str:
    """`model.tflite` for float32, else `model_<quantize>.tflite`."""
    return "model.tflite" if quantize == "none" else f"model_{quantize}.tflite"


def export_saved_model(model, path: str | os.PathLike) -> Path:
    """Writes a SavedModel whose `serving_default` maps images to probabilities.

    Written to a temporary folder beside `path`, then renamed.

    Args:
        model: A Keras model (TensorFlow backend).
        path: The folder to create.

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
) -> Path:
    """Converts a Keras model to a TFLite file with the TFLite converter.

    Args:
        model: A Keras model taking [0, 255] images.
        path: The `.tflite` file to write (temporary name, then renamed).
        quantize: `"none"` (float32), `"float16"`, `"dynamic"` (int8
            weights) or `"int8"` (full integer, uint8 image input).
            Defaults to `"none"`.
        representative_images: Batches of training images for int8
            calibration. Required for `"int8"`. Defaults to `None`.
        saved_model_dir: An existing SavedModel of `model` to convert from.
            Defaults to `None` (one is written to a temporary folder).

    Returns:
        The path written.

    Raises:
        ExportError: for an unknown quantization, int8 without images, or a
            failed conversion.
    """
    import tensorflow as tf

    if quantize not in QUANTIZATIONS:
        raise ExportError(
            f"Expected --quantize from: {', '.join(QUANTIZATIONS)}. Received: {quantize!r}."
        )
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="kerasdl_export_") as scratch:
        if saved_model_dir is None:
            saved_model_dir = export_saved_model(model, Path(scratch) / "saved_model")
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
        if quantize != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantize == "int8":
            converter.representative_dataset = _representative_dataset(representative_images)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.uint8
            converter.inference_output_type = tf.uint8
        try:
            flatbuffer = converter.convert()
        except Exception as error:  # noqa: BLE001 - the converter raises many types.
            first_line = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            raise ExportError(
                f"Expected the model to convert to TFLite ({quantize}). Received: "
                f"{type(error).__name__}: {first_line}. Export a model built by kerasdl."
            ) from None
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(flatbuffer)
    os.replace(temporary, path)
    return path


def _representative_dataset(images: Iterable[np.ndarray] | None) -> Callable:
    if images is None:
        raise ExportError(
            "Expected representative images for int8 quantization. Received: none. "
            "Pass --data with training images."
        )
    batches = [np.asarray(batch, dtype=np.float32) for batch in images]
    if not batches or not sum(len(b) for b in batches):
        raise ExportError(
            "Expected representative images for int8 quantization. Received: an empty set. "
            "Pass --data with readable training images."
        )

    def generate():
        for batch in batches:
            for image in batch:
                yield [image[None]]

    return generate


class TFLiteModel:
    """Runs a `.tflite` classifier with the LiteRT interpreter.

    Quantized inputs and outputs are converted, so `predict_batch` always
    takes [0, 255] images and returns float probabilities.

    Args:
        path: The `.tflite` file.
        num_threads: Interpreter threads. Defaults to `None` (LiteRT's choice).

    Example:
    ```python
    probabilities = TFLiteModel("export/model.tflite").predict_batch(images)
    ```
    """

    def __init__(self, path: str | os.PathLike, *, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        try:
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
        except (ValueError, RuntimeError) as error:
            raise ExportError(
                f"Expected a TFLite model file. Received: {self.path} ({str(error).splitlines()[0]})."
            ) from None
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self.image_size = int(self._input["shape"][1])
        self.input_dtype = np.dtype(self._input["dtype"])
        self._batch_size = None

    def _resize(self, batch_size: int) -> None:
        if batch_size != self._batch_size:
            shape = [batch_size, self.image_size, self.image_size, 3]
            self.interpreter.resize_tensor_input(self._input["index"], shape)
            self.interpreter.allocate_tensors()
            self._input = self.interpreter.get_input_details()[0]
            self._output = self.interpreter.get_output_details()[0]
            self._batch_size = batch_size

    def predict_batch(self, images: np.ndarray) -> np.ndarray:
        """Returns probabilities for a batch of [0, 255] RGB images."""
        images = np.asarray(images, dtype=np.float32)
        self._resize(len(images))
        scale, zero_point = self._input["quantization"]
        if self.input_dtype == np.float32:
            feed = images
        else:
            if scale:
                images = images / scale + zero_point
            info = np.iinfo(self.input_dtype)
            feed = np.clip(np.round(images), info.min, info.max).astype(self.input_dtype)
        self.interpreter.set_tensor(self._input["index"], feed)
        self.interpreter.invoke()
        output = self.interpreter.get_tensor(self._output["index"]).astype(np.float32)
        out_scale, out_zero_point = self._output["quantization"]
        if self._output["dtype"] != np.float32 and out_scale:
            output = (output - out_zero_point) * out_scale
        return output


def check_parity(
    reference: Callable[[np.ndarray], np.ndarray],
    candidate: Callable[[np.ndarray], np.ndarray],
    dataset: Iterable,
) -> dict[str, Any]:
    """Compares an exported model with the Keras model on labelled batches.

    Args:
        reference: The Keras model's batch prediction function.
        candidate: The exported model's batch prediction function.
        dataset: Batches of `(images, labels)`.

    Returns:
        `num_samples`, `top1_agreement`, `keras_accuracy`, `accuracy`,
        `accuracy_change` and `max_abs_probability_difference`.
    """
    agree = correct_reference = correct_candidate = total = 0
    max_difference = 0.0
    for images, labels in dataset:
        images, labels = np.asarray(images), np.asarray(labels)
        expected = np.asarray(reference(images))
        received = np.asarray(candidate(images))
        agree += int((expected.argmax(1) == received.argmax(1)).sum())
        correct_reference += int((expected.argmax(1) == labels).sum())
        correct_candidate += int((received.argmax(1) == labels).sum())
        max_difference = max(max_difference, float(np.abs(expected - received).max()))
        total += len(labels)
    total = max(total, 1)
    return {
        "num_samples": total,
        "top1_agreement": agree / total,
        "keras_accuracy": correct_reference / total,
        "accuracy": correct_candidate / total,
        "accuracy_change": (correct_candidate - correct_reference) / total,
        "max_abs_probability_difference": max_difference,
    }


def write_labels(class_names: list[str], path: str | os.PathLike) -> Path:
    """Writes one class name per line, in label order."""
    path = Path(path)
    path.write_text("\n".join(class_names) + "\n")
    return path


def parse_export_list(text: str | list[str] | None) -> list[tuple[str, str]]:
    """Parses `--export` (e.g. `"saved_model,tflite,tflite:int8"`, or `"none"`).

    Returns:
        `(format, quantize)` pairs.

    Raises:
        ExportError: for an unknown format or quantization.
    """
    items = text if isinstance(text, list) else (text or "none").split(",")
    pairs = []
    for item in (i.strip().lower() for i in items):
        if item in ("", "none"):
            continue
        kind, _, quantize = item.partition(":")
        if kind not in FORMATS or (quantize and quantize not in QUANTIZATIONS):
            raise ExportError(
                f"Expected export formats from: saved_model, tflite, tflite:<{'|'.join(QUANTIZATIONS)}>, "
                f"none. Received: {item!r}."
            )
        pairs.append((kind, quantize or "none"))
    return pairs


def export_model(
    model,
    output_dir: str | os.PathLike,
    *,
    formats: list[tuple[str, str]],
    class_names: list[str],
    parity_data: Iterable | None = None,
    representative_images: Iterable[np.ndarray] | None = None,
) -> dict[str, Any]:
    """Writes the requested formats, labels.txt, and parity.json to a folder.

    Args:
        model: The trained Keras model.
        output_dir: The export folder (created if needed).
        formats: `(format, quantize)` pairs from `parse_export_list`.
        class_names: Class names by label index.
        parity_data: Labelled batches to check each TFLite file on.
            Defaults to `None` (no check).
        representative_images: Image batches for int8 calibration.
            Defaults to `None`.

    Returns:
        `{file name: parity dict}` for each checked TFLite file.
    """
    from kerasdl.evaluation import write_json

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_labels(class_names, output_dir / "labels.txt")
    saved_model_dir = None
    if any(kind == "saved_model" for kind, _ in formats) or any(k == "tflite" for k, _ in formats):
        saved_model_dir = export_saved_model(model, output_dir / "saved_model")
    keep_saved_model = any(kind == "saved_model" for kind, _ in formats)
    parity: dict[str, Any] = {}
    parity_batches = list(parity_data) if parity_data is not None else None
    for kind, quantize in formats:
        if kind != "tflite":
            continue
        path = export_tflite(
            model, output_dir / tflite_file_name(quantize), quantize=quantize,
            representative_images=representative_images, saved_model_dir=saved_model_dir,
        )
        if parity_batches:
            parity[path.name] = check_parity(
                lambda x: model.predict(x, verbose=0), TFLiteModel(path).predict_batch, parity_batches
            )
    if saved_model_dir is not None and not keep_saved_model:
        shutil.rmtree(saved_model_dir, ignore_errors=True)
    if parity:
        write_json(parity, output_dir / "parity.json")
    return parity
