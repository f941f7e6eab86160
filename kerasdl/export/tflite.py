"""TFLite (LiteRT) export: float32, float16, dynamic-range and full-integer (int8) files.

Files are made with `tf.lite.TFLiteConverter.from_saved_model` from one
SavedModel written by `model.export(format="tf_saved_model")`. Keras 3's
`model.export(format="litert")` runs the same converter, but it writes a new
SavedModel for every call, enables `SELECT_TF_OPS` (a file that then needs
the Flex delegate on a phone instead of failing here) and writes the file in
place rather than under a temporary name; so kerasdl drives the converter
itself, with builtin ops only. The representative images that calibrate
int8 are read here too.
"""


from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from kerasdl._util.files import write_bytes_atomically
from kerasdl._util.native_output import held_stderr
from kerasdl.errors import ExportError
from kerasdl.export.bias_correction import int8_bias_correction
from kerasdl.export.options import INT8_IO, INT8_MODES, QUANTIZATIONS
from kerasdl.export.saved_model import export_saved_model
from kerasdl.inference.runners import first_line

__all__ = ["export_tflite", "first_images", "representative_batches", "representative_dataset",
           "representative_files"]


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
    batches = representative_batches(representative_images) if full_integer else None
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
            converter.representative_dataset = representative_dataset(batches)
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
                f"{type(error).__name__}: {first_line(error)}. Keep augmentation and custom ops out "
                "of the exported model."
            ) from None
    write_bytes_atomically(flatbuffer, path)
    return path


def representative_batches(images: Iterable[np.ndarray] | None) -> list[np.ndarray] | None:
    """Reads the calibration images once, before any file is written.

    Raises:
        ExportError: for no images, or an empty set.
    """
    batches = None if images is None else [np.asarray(batch) for batch in images]
    representative_dataset(batches)  # raises for none or an empty set
    return batches


def representative_dataset(images: Iterable[np.ndarray] | None) -> Callable:
    """The converter's `representative_dataset`: one float32 image a call, from [0, 255] batches.

    Raises:
        ExportError: for no images, or an empty set.
    """
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


def first_images(batches: list[np.ndarray], count: int) -> np.ndarray:
    """The first `count` images of a list of batches, as one array."""
    taken, total = [], 0
    for batch in batches:
        taken.append(np.asarray(batch)[:count - total])
        total += len(taken[-1])
        if total >= count:
            break
    return np.concatenate(taken)
