"""Prediction with a saved model (.keras, SavedModel, .tflite or .onnx) over files.

Prediction streams: images are decoded batch by batch and rows are written as
they come, to a temporary file renamed into place at the end.
"""


from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kerasdl._util.console import progress_bar
from kerasdl._util.run_folder import check_apart_from_data, is_run_config
from kerasdl.errors import DataError, ExportError, ModelFileError, RunFolderError
from kerasdl.inference.batches import batch_predictor
from kerasdl.inference.image_folders import input_folders
from kerasdl.inference.runners import RUNNERS, SavedModelRunner, first_line, load_exported
from kerasdl.recipe import TTA_MODES  # one list, also in the CLI's help

logger = logging.getLogger(__name__)

CSV_FORMATS = ("table", "submission")


@dataclasses.dataclass
class LoadedModel:
    """A saved classifier, ready to predict.

    Attributes:
        path: Where it was loaded from.
        kind: `"keras"`, `"saved_model"`, `"tflite"` or `"onnx"`.
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
    """Class names for a model file, from labels.txt, metadata.json or metrics.json near it.

    Falls back to `class_0`, `class_1`, ... when no file names them.
    """
    folder = model_path if model_path.is_dir() else model_path.parent
    for candidate in (folder / "labels.txt", folder / "export" / "labels.txt",
                      folder.parent / "labels.txt"):
        if candidate.is_file():
            names = [line.strip() for line in candidate.read_text().splitlines() if line.strip()]
            if len(names) == num_classes:
                return names
    for candidate in (folder / "metadata.json", folder / "metrics.json", folder.parent / "metrics.json"):
        if candidate.is_file():
            names = json.loads(candidate.read_text()).get("class_names", [])
            if len(names) == num_classes:
                return names
    return [f"class_{index}" for index in range(num_classes)]


def load_model_file(path: str | os.PathLike) -> LoadedModel:
    """Loads a `.keras` file, a SavedModel folder, or a `.tflite` or `.onnx` file.

    `.tflite` files run with the LiteRT interpreter and `.onnx` files with
    onnxruntime (the `onnx` extra); both take [0, 255] images (the
    preprocessing is inside the file), and their class names come from the
    `labels.txt` (or `metadata.json`) that `kerasdl export` writes beside them.

    Args:
        path: The model file or folder: a run folder gives its `model.keras`
            (a k-fold run's: the average of its fold models).

    Returns:
        A `LoadedModel`.

    Raises:
        ModelFileError: if the path does not exist or is not a model, or
            onnxruntime is missing for an `.onnx` file.

    Example:
    ```python
    model = load_model_file("run/export/model.onnx")
    probabilities = model.predict_batch(images)
    ```
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(
            f"Expected a model file (.keras, .tflite, .onnx or a SavedModel folder). Received: "
            f"{path}, which does not exist. Check the path."
        )
    kind = path.suffix.lstrip(".").lower()
    if kind in RUNNERS and path.is_file():
        return _load_exported_file(path, kind)
    if path.is_dir() and is_run_config(path / "config.json"):
        return _load_run_folder(path)
    if path.is_dir():
        return _load_saved_model(path)
    return _load_keras(path)


def _load_run_folder(path: Path) -> LoadedModel:
    """A run folder's `model.keras` (for a k-fold run, its fold models averaged in one)."""
    if not (path / "model.keras").is_file():
        raise ModelFileError(
            f"Expected a finished run folder with model.keras. Received: {path}, which has none yet. "
            "Finish (or resume) the run, or pass one of its model files."
        )
    return _load_keras(path / "model.keras")


def _load_exported_file(path: Path, kind: str) -> LoadedModel:
    """A `.tflite` or `.onnx` file, run by its runner from `kerasdl.inference.runners`."""
    try:
        runner = load_exported(kind, path)
    except ExportError as error:
        raise ModelFileError(str(error)) from None
    return LoadedModel(path, kind, runner.predict_batch, runner.image_size,
                       find_class_names(path, runner.num_classes))


def check_keras_archive(path: str | os.PathLike) -> None:
    """Checks that a `.keras` file is a whole zip archive, as every `.keras` file is.

    Keras reports any other file as "File not found", which misleads when
    the file is there but cut short.

    Raises:
        ModelFileError: saying that the file does not load as a Keras file.
    """
    path = Path(path)
    if path.suffix.lower() == ".keras" and path.is_file() and not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"Expected a Keras model file (.keras). Received: {path}, which does not load as a Keras "
            f"file: it is not a complete .keras zip archive ({path.stat().st_size:,} bytes; truncated, "
            "or another kind of file). Pass a model.keras from a finished kerasdl run."
        )


def _load_keras(path: Path) -> LoadedModel:
    import keras

    check_keras_archive(path)
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001 - zip, HDF5 and Keras errors all occur.
        raise ModelFileError(
            f"Expected a Keras model file (.keras). Received: {path}, which does not load as a Keras "
            f"file ({first_line(error) or type(error).__name__}). Pass a model.keras from a kerasdl run."
        ) from None
    size = int(model.input_shape[1])
    num_classes = int(model.output_shape[-1])
    return LoadedModel(path, "keras", batch_predictor(model), size,
                       find_class_names(path, num_classes), keras_model=model)


def _load_saved_model(path: Path) -> LoadedModel:
    """A SavedModel folder, run by `kerasdl.inference.runners.SavedModelRunner`."""
    try:
        runner = SavedModelRunner(path)
    except ExportError as error:
        raise ModelFileError(str(error)) from None
    return LoadedModel(path, "saved_model", runner.predict_batch, runner.image_size,
                       find_class_names(path, runner.num_classes))


def list_image_files(source: str | os.PathLike, *, purpose: str = "predict") -> list[str]:
    """Lists files to predict: a folder (recursively), one file, or `@list.txt`.

    The paths of `@list.txt` (one a line) are relative to the list file's
    folder, not to the current folder.

    Args:
        source: A folder, an image file, or `@` and a list file.
        purpose: What the images are for, in messages (`"predict"`,
            `"explain"`). Defaults to `"predict"`.

    Raises:
        DataError: if nothing is there.
    """
    text = str(source)
    if text.startswith("@"):
        list_file = Path(text[1:])
        if not list_file.is_file():
            raise DataError(f"Expected a list file of images to {purpose}. Received: {list_file} "
                            "(no such file). Check the path after @.")
        base = list_file.parent
        files = [str(base / line.strip()) for line in list_file.read_text().splitlines() if line.strip()]
    else:
        path = Path(text)
        if not path.exists():
            raise DataError(f"Expected images to {purpose}. Received: {path}, which does not exist. "
                            "Check the path.")
        # Hidden files (.DS_Store, a CSV being written here) are not images to predict.
        files = [str(path)] if path.is_file() else sorted(
            str(p) for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
        )
    if not files:
        raise DataError(
            f"Expected images to {purpose}. Received: {text} with no files. Pass a folder of images."
        )
    return files


def with_tta(predict_batch: Callable[[np.ndarray], np.ndarray], tta: str = "none"):
    """Wraps a batch predictor with test-time augmentation.

    Args:
        predict_batch: Maps `(n, h, w, 3)` image batches to probabilities.
        tta: `"none"`, or `"flip"` to average the probabilities of each image
            and its horizontal mirror. Defaults to `"none"`.

    Returns:
        A batch predictor.

    Raises:
        ValueError: for an unknown `tta`.

    Example:
    ```python
    predict = with_tta(load_model_file("model.keras").predict_batch, "flip")
    ```
    """
    if tta not in TTA_MODES:
        raise ValueError(f"Expected tta in {TTA_MODES}. Received: {tta!r}.")
    if tta == "none":
        return predict_batch

    def predict_flipped(images):
        images = np.asarray(images)
        mirrored = np.ascontiguousarray(images[:, :, ::-1, :])
        return (np.asarray(predict_batch(images)) + np.asarray(predict_batch(mirrored))) / 2.0

    return predict_flipped


def check_output_file(path: str | os.PathLike, *, images: list[str | os.PathLike] | None = None) -> Path:
    """Checks that a file can be written, apart from the images read, before any costly work.

    Args:
        path: The file to write.
        images: The sources of the images read (folders, files, `@list.txt`;
            see `input_folders`), which the file must lie outside. Defaults
            to `None` (not checked).

    Raises:
        RunFolderError: if it is a folder, its folder is missing or not
            writable, or it lies among the images.
    """
    path = Path(path)
    if path.is_dir():
        raise RunFolderError(f"Expected an output file. Received: {path}, a folder. Name a .csv file.",
                             argument="output")
    folder = path.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise RunFolderError(
            f"Expected a writable folder for the output file. Received: {path} ({folder} is not a "
            "writable folder). Create it or pick another output.",
            argument="output",
        )
    if images:
        check_apart_from_data(path, input_folders(images), data_source=str(images[0]), argument="output",
                              given=f"the images of {_describe_sources(images)}")
    return path


def _describe_sources(sources: list) -> str:
    shown = ", ".join(str(source) for source in sources[:3])
    return shown + (f" and {len(sources) - 3} more" if len(sources) > 3 else "")


def predict_files(
    model: LoadedModel,
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    batch_size: int = 32,
    csv_format: str = "table",
    tta: str = "none",
    progress: bool = True,
) -> dict[str, int]:
    """Predicts every image of `source` and writes a CSV, one row per image.

    Images are decoded batch by batch and rows written as they come, so
    memory stays flat however many images there are; the CSV is written
    under a temporary name and renamed at the end, so a failure leaves none.
    Unreadable files are skipped with a message.

    Args:
        model: A `LoadedModel`.
        source: A folder, a file, `@list.txt`, or a list of file paths
            (from `list_image_files`).
        output: The CSV file to write.
        batch_size: Images per batch. Defaults to `32`.
        csv_format: `"table"` (columns `path`, `predicted`, then one
            probability per class) or, for two classes, `"submission"`
            (columns `img_name`, `y_pred`: the file name and the probability
            of class index 1, as deepfake-detection competitions ask).
            Defaults to `"table"`.
        tta: Test-time augmentation, `"none"` or `"flip"`. Defaults to `"none"`.
        progress: Show a progress bar. Defaults to `True`.

    Returns:
        `{"predicted": n, "skipped": m}`.

    Raises:
        DataError: if there are no readable images.
        ModelFileError: for `"submission"` with a model of more than two classes.
        RunFolderError: if `output` cannot be written.

    Example:
    ```python
    predict_files(load_model_file("run/model.keras"), "new_images/", "predictions.csv")
    ```
    """
    from kerasdl.data.scan import scan_images

    if csv_format not in CSV_FORMATS:
        raise ValueError(f"Expected csv_format in {CSV_FORMATS}. Received: {csv_format!r}.")
    if csv_format == "submission" and len(model.class_names) != 2:
        raise ModelFileError(
            f"Expected a two-class model for the submission format. Received: {model.path} with "
            f"{len(model.class_names)} classes. Pass csv_format='table'.",
            argument="csv_format",
        )
    paths = list(source) if isinstance(source, list) else list_image_files(source)
    output = check_output_file(output, images=paths if isinstance(source, list) else [source])
    readable, skipped = scan_images([(p, 0) for p in paths])
    for item in skipped:
        logger.info(f"Skipping {item.path}: {item.reason}")
    if not len(readable):
        raise no_images_error(source, skipped)
    temporary = output.with_name(f".{output.name}.tmp")
    bar = progress_bar(len(readable), unit_name="image") if progress else None
    done = 0
    try:
        with open(temporary, "w", newline="") as handle:
            writer = csv.writer(handle)
            if csv_format == "submission":
                writer.writerow(["img_name", "y_pred"])
            else:
                writer.writerow(["path", "predicted", *model.class_names])
            for batch_paths, probabilities in iter_predictions(model, readable, batch_size=batch_size, tta=tta):
                for path, row in zip(batch_paths, probabilities, strict=True):
                    if csv_format == "submission":
                        writer.writerow([os.path.basename(path), f"{row[1]:.6f}"])
                    else:
                        writer.writerow(
                            [path, model.class_names[int(row.argmax())], *(f"{p:.6f}" for p in row)]
                        )
                done += len(probabilities)
                if bar:
                    bar.update(done)
        os.replace(temporary, output)
    finally:
        temporary.unlink(missing_ok=True)
    return {"predicted": done, "skipped": len(skipped)}


def no_images_error(source, skipped: list, *, purpose: str = "predict") -> DataError:
    """The error for files of which none decodes as an image: where they are, which files
    count as images, and why each shown file does not.

    Args:
        source: The folder, file or `@list.txt` given, or the list of files.
        skipped: The files' `SkippedFile`s.
        purpose: `"predict"` or `"explain"`, for the message. Defaults to `"predict"`.
    """
    from kerasdl.data.label_files import IMAGE_SUFFIXES

    if isinstance(source, list):
        folders = sorted({str(Path(item.path).parent) for item in skipped})
        where = folders[0] if len(folders) == 1 else f"{len(folders)} folders"
    else:
        where = str(source)
    shown = "; ".join(f"{Path(item.path).name}: {item.reason}" for item in skipped[:3])
    shown += "; ..." if len(skipped) > 3 else ""
    count = f"{len(skipped)} file{'' if len(skipped) == 1 else 's'}"
    folder = not str(where).startswith("@") and Path(where).is_dir()
    return DataError(
        f"Expected images to {purpose}. Received: {where}, {'a folder ' if folder else ''}with no "
        f"images ({count}, none decodes as an image: {shown}). Images are JPEG, PNG, BMP, GIF, WebP "
        f"or TIFF files ({', '.join(IMAGE_SUFFIXES)}): pass a folder of them."
    )


def iter_predictions(model: LoadedModel, files, *, batch_size: int = 32, tta: str = "none"):
    """Yields `(paths, probabilities)` batch by batch over readable image files.

    The one path from files to probabilities that `kerasdl predict`, `kerasdl
    demo` and `predict_image_files` share: the same decoding and resizing
    (`kerasdl.data.pipeline.make_dataset`) and the same model call.

    Args:
        model: A `LoadedModel`.
        files: `ImageFiles` from `kerasdl.data.scan.scan_images`.
        batch_size: Images per batch. Defaults to `32`.
        tta: Test-time augmentation, `"none"` or `"flip"`. Defaults to `"none"`.

    Yields:
        `(list of paths, (n, num_classes) float array)` per batch.
    """
    from kerasdl.data.pipeline import make_dataset

    predict_batch = with_tta(model.predict_batch, tta)
    dataset = make_dataset(files, image_size=model.image_size, batch_size=batch_size, cache=False)
    done = 0
    for images, _ in dataset:
        probabilities = np.asarray(predict_batch(np.asarray(images)))
        yield files.paths[done:done + len(probabilities)], probabilities
        done += len(probabilities)


def predict_image_files(model: LoadedModel, paths: list[str], *, tta: str = "none"):
    """Probabilities of a few image files, exactly as `predict_files` computes them.

    Args:
        model: A `LoadedModel`.
        paths: Image files.
        tta: Test-time augmentation, `"none"` or `"flip"`. Defaults to `"none"`.

    Returns:
        `(readable paths, probabilities (n, num_classes), skipped files)`;
        unreadable files are in `skipped` with their reason.

    Example:
    ```python
    paths, probabilities, skipped = predict_image_files(load_model_file("model.keras"), ["cat.jpg"])
    ```
    """
    from kerasdl.data.scan import scan_images

    readable, skipped = scan_images([(str(path), 0) for path in paths], workers=1)
    found, batches = [], []
    if len(readable):
        for batch_paths, probabilities in iter_predictions(model, readable, tta=tta):
            found += list(batch_paths)
            batches.append(probabilities)
    num_classes = len(model.class_names)
    return found, np.concatenate(batches) if batches else np.zeros((0, num_classes)), skipped
