"""Prediction with a saved model (.keras, SavedModel or .tflite) over files.

Prediction streams: images are decoded batch by batch and rows are written as
they come, to a temporary file renamed into place at the end.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kerasdl.errors import DataError, ModelFileError


@dataclasses.dataclass
class LoadedModel:
    """A saved classifier, ready to predict.

    Attributes:
        path: Where it was loaded from.
        kind: `"keras"`, `"saved_model"` or `"tflite"`.
        predict_batch: Maps [0, 255] image batches to probabilities.
        image_size: Square input size.
        class_names: Class names by label index.
        keras_model: The `keras.Model` for `.keras` files, else `None`.
    """

    path: Path
    kind: str
    predict_batch: Callable[[np.ndarray], np.ndarray]
    image_size: int
    class_names: list[str]
    keras_model: object = None


def find_class_names(model_path: Path, num_classes: int) -> list[str]:
    """Class names for a model file, from labels.txt or metrics.json near it.

    Falls back to `class_0`, `class_1`, ... when no file names them.
    """
    folder = model_path if model_path.is_dir() else model_path.parent
    for candidate in (folder / "labels.txt", folder / "export" / "labels.txt",
                      folder.parent / "labels.txt"):
        if candidate.is_file():
            names = [line.strip() for line in candidate.read_text().splitlines() if line.strip()]
            if len(names) == num_classes:
                return names
    for candidate in (folder / "metrics.json", folder.parent / "metrics.json"):
        if candidate.is_file():
            names = json.loads(candidate.read_text()).get("class_names", [])
            if len(names) == num_classes:
                return names
    return [f"class_{index}" for index in range(num_classes)]


def load_model_file(path: str | os.PathLike) -> LoadedModel:
    """Loads a `.keras` file, a SavedModel folder or a `.tflite` file.

    Args:
        path: The model file or folder.

    Returns:
        A `LoadedModel`.

    Raises:
        ModelFileError: if the path does not exist or is not a model.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(
            f"Expected a model file (.keras, .tflite or a SavedModel folder). Received: {path}, "
            "which does not exist. Check the path."
        )
    if path.suffix == ".tflite":
        from kerasdl.errors import ExportError
        from kerasdl.export import TFLiteModel

        try:
            runner = TFLiteModel(path)
        except ExportError as error:
            raise ModelFileError(str(error)) from None
        num_classes = int(runner.interpreter.get_output_details()[0]["shape"][-1])
        return LoadedModel(path, "tflite", runner.predict_batch, runner.image_size,
                           find_class_names(path, num_classes))
    if path.is_dir():
        return _load_saved_model(path)
    return _load_keras(path)


def _load_keras(path: Path) -> LoadedModel:
    import keras

    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001 - zip, HDF5 and Keras errors all occur.
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise ModelFileError(
            f"Expected a Keras model file (.keras). Received: {path}, which does not load "
            f"({reason}). Pass a model.keras from a kerasdl run."
        ) from None
    size = int(model.input_shape[1])
    num_classes = int(model.output_shape[-1])
    return LoadedModel(path, "keras", lambda x: model.predict(x, verbose=0), size,
                       find_class_names(path, num_classes), keras_model=model)


def _load_saved_model(path: Path) -> LoadedModel:
    import tensorflow as tf

    if not (path / "saved_model.pb").is_file():
        raise ModelFileError(
            f"Expected a SavedModel folder with saved_model.pb. Received: {path}. "
            "Pass the export/saved_model folder of a run."
        )
    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]
    input_spec = list(serve.structured_input_signature[1].values())[0]
    output_key = list(serve.structured_outputs)[0]
    num_classes = int(serve.structured_outputs[output_key].shape[-1])

    def predict_batch(images):
        return serve(tf.constant(images, dtype=tf.float32))[output_key].numpy()

    predict_batch.loaded = loaded  # keep the object alive with its variables
    return LoadedModel(path, "saved_model", predict_batch, int(input_spec.shape[1]),
                       find_class_names(path, num_classes))


def list_image_files(source: str | os.PathLike) -> list[str]:
    """Lists files to predict: a folder (recursively), one file, or `@list.txt`.

    Raises:
        DataError: if nothing is there.
    """
    text = str(source)
    if text.startswith("@"):
        list_file = Path(text[1:])
        if not list_file.is_file():
            raise DataError(f"Expected a list file. Received: {list_file} (no such file).")
        base = list_file.parent
        files = [str(base / line.strip()) for line in list_file.read_text().splitlines() if line.strip()]
    else:
        path = Path(text)
        if not path.exists():
            raise DataError(f"Expected images to predict. Received: {path}, which does not exist.")
        files = [str(path)] if path.is_file() else sorted(str(p) for p in path.rglob("*") if p.is_file())
    if not files:
        raise DataError(
            f"Expected images to predict. Received: {text} with no files. Pass a folder of images."
        )
    return files


def predict_files(
    model: LoadedModel,
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    batch_size: int = 32,
    progress: bool = True,
) -> dict[str, int]:
    """Predicts every image of `source` and writes a CSV, one row per image.

    Columns: `path`, `predicted`, then one probability column per class.
    Unreadable files are skipped with a warning.

    Args:
        model: A `LoadedModel`.
        source: A folder, a file, or `@list.txt`.
        output: The CSV file to write (temporary name, then renamed).
        batch_size: Images per batch. Defaults to `32`.
        progress: Show a progress bar. Defaults to `True`.

    Returns:
        `{"predicted": n, "skipped": m}`.

    Raises:
        DataError: if there are no readable images.
    """
    import keras

    from kerasdl.data import make_dataset, scan_images

    paths = list_image_files(source)
    readable, skipped = scan_images([(p, 0) for p in paths])
    for item in skipped:
        print(f"Skipping {item.path}: {item.reason}")
    if not len(readable):
        raise DataError(f"Expected readable images in {source}. Received: none of {len(paths)} files.")
    output = Path(output)
    temporary = output.with_name(f".{output.name}.tmp")
    dataset = make_dataset(readable, image_size=model.image_size, batch_size=batch_size, cache=False)
    bar = keras.utils.Progbar(len(readable), unit_name="image") if progress else None
    done = 0
    try:
        with open(temporary, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "predicted", *model.class_names])
            for images, _ in dataset:
                probabilities = model.predict_batch(np.asarray(images))
                for path, row in zip(readable.paths[done:done + len(probabilities)], probabilities):
                    writer.writerow([path, model.class_names[int(row.argmax())], *(f"{p:.6f}" for p in row)])
                done += len(probabilities)
                if bar:
                    bar.update(done)
        os.replace(temporary, output)
    finally:
        temporary.unlink(missing_ok=True)
    return {"predicted": done, "skipped": len(skipped)}
