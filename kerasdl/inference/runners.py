"""Runners for exported models (.tflite, .onnx, SavedModel) with Keras-like `predict_batch`."""


from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

from kerasdl._util.native_output import held_stderr
from kerasdl.errors import ExportError


def first_line(error: BaseException) -> str:
    """The first line of an error's message (at most 200 characters), for one-line errors."""
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else ""



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
                f"Expected a TFLite model file. Received: {self.path} ({first_line(error)})."
            ) from None
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self.image_size = int(self._input["shape"][1])
        self.num_classes = int(self._output["shape"][-1])
        self.input_dtype = np.dtype(self._input["dtype"])
        self.output_dtype = np.dtype(self._output["dtype"])
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
        if self._batch_size is None:  # allocating applies the XNNPACK delegate, which says so on stderr
            with held_stderr():
                self._resize(len(images))
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
        if self.output_dtype != np.float32 and out_scale:
            output = (output - out_zero_point) * out_scale
        return output

    def tensor_info(self) -> dict[str, Any]:
        """What an app must feed and read: dtypes, shapes, quantization."""
        return {"input": _tensor_description(self._input), "output": _tensor_description(self._output)}


def _tensor_description(details: dict[str, Any]) -> dict[str, Any]:
    scale, zero_point = details["quantization"]
    dtype = np.dtype(details["dtype"]).name
    info: dict[str, Any] = {"name": details["name"], "dtype": dtype,
                            "shape": [int(d) for d in details["shape_signature"]]}
    if dtype != "float32" and scale:
        info["quantization"] = {"scale": float(scale), "zero_point": int(zero_point)}
    return info


class OnnxModel:
    """Runs an `.onnx` classifier with onnxruntime (CPU).

    `predict_batch` takes [0, 255] images, as the Keras model it came from
    (its preprocessing is inside the file).

    Args:
        path: The `.onnx` file.
        num_threads: Intra-op threads. Defaults to `None` (onnxruntime's choice).

    Raises:
        ExportError: when onnxruntime is not installed (naming the extra that
            installs it), or the file is not an ONNX model.

    Example:
    ```python
    probabilities = OnnxModel("export/model.onnx").predict_batch(images)
    ```
    """

    def __init__(self, path: str | os.PathLike, *, num_threads: int | None = None):
        if importlib.util.find_spec("onnxruntime") is None:  # running needs only the runtime
            raise ExportError(
                f"Expected onnxruntime to run {Path(path).name}. Received: it is not installed. "
                "Run `pip install 'kerasdl[onnx]'`."
            )
        import onnxruntime

        self.path = Path(path)
        options = onnxruntime.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        try:
            self.session = onnxruntime.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # noqa: BLE001 - onnxruntime raises its own types.
            raise ExportError(f"Expected an ONNX model file. Received: {self.path} ({first_line(error)}).") from None
        self._input = self.session.get_inputs()[0]
        self.image_size = int(self._input.shape[1])
        self.num_classes = int(self.session.get_outputs()[0].shape[-1])

    def predict_batch(self, images: np.ndarray) -> np.ndarray:
        """Returns probabilities for a batch of [0, 255] RGB images."""
        feed = {self._input.name: np.asarray(images, dtype=np.float32)}
        return np.asarray(self.session.run(None, feed)[0], dtype=np.float32)

    def tensor_info(self) -> dict[str, Any]:
        """The input and output tensors' names, dtypes and shapes."""
        def describe(node):
            return {"name": node.name, "dtype": "float32",
                    "shape": [d if isinstance(d, int) else None for d in node.shape]}

        return {"input": describe(self._input), "output": describe(self.session.get_outputs()[0])}


class SavedModelRunner:
    """Runs a SavedModel folder's `serving_default` signature with TensorFlow.

    Args:
        path: The SavedModel folder (with `saved_model.pb`).

    Raises:
        ExportError: when the folder holds no SavedModel with that signature.

    Example:
    ```python
    probabilities = SavedModelRunner("export/saved_model").predict_batch(images)
    ```
    """

    def __init__(self, path: str | os.PathLike):
        import tensorflow as tf

        self.path = Path(path)
        if not (self.path / "saved_model.pb").is_file():
            raise ExportError(
                f"Expected a SavedModel folder with saved_model.pb. Received: {self.path}. "
                "Pass the export/saved_model folder of a run."
            )
        try:
            self._loaded = tf.saved_model.load(str(self.path))  # keeps the variables alive
            self._serve = self._loaded.signatures["serving_default"]
        except Exception as error:  # noqa: BLE001 - protobuf, TF and key errors all occur.
            raise ExportError(
                f"Expected a SavedModel with a serving_default signature. Received: {self.path}, which "
                f"does not load ({first_line(error)}). Pass the export/saved_model folder of a run."
            ) from None
        input_spec = list(self._serve.structured_input_signature[1].values())[0]
        self._output_key = list(self._serve.structured_outputs)[0]
        self.image_size = int(input_spec.shape[1])
        self.num_classes = int(self._serve.structured_outputs[self._output_key].shape[-1])

    def predict_batch(self, images: np.ndarray) -> np.ndarray:
        """Returns probabilities for a batch of [0, 255] RGB images."""
        import tensorflow as tf

        return self._serve(tf.constant(images, dtype=tf.float32))[self._output_key].numpy()


# The formats whose files run outside Keras, each with its runner (`predict_batch`,
# `image_size`, `num_classes`); also what `kerasdl predict`/`evaluate` load them with.
RUNNERS: dict[str, type] = {"tflite": TFLiteModel, "onnx": OnnxModel}


def load_exported(export_format: str, path: str | os.PathLike):
    """A runner with `predict_batch`, `image_size` and `num_classes` for an exported file or folder.

    Args:
        export_format: `"tflite"`, `"onnx"` or `"saved_model"`.
        path: The exported file, or the SavedModel folder.

    Raises:
        ExportError: for another format, or a file that does not load.
    """
    runners = {**RUNNERS, "saved_model": SavedModelRunner}
    if export_format not in runners:
        raise ExportError(
            f"Expected an export format from: {', '.join(runners)}. Received: {export_format!r}."
        )
    return runners[export_format](path)
