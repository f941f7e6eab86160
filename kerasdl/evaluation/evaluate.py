"""Evaluate a model on a split and write metrics.json and its pictures."""


from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from kerasdl._util.files import write_json
from kerasdl._util.paths import check_output_folder
from kerasdl._util.run_folder import RunFolder, check_apart_from_data, is_run_config
from kerasdl.data.load import load_labelled_files
from kerasdl.data.naming import check_source
from kerasdl.data.pipeline import make_dataset
from kerasdl.data.sources import source_folders
from kerasdl.data.types import SkippedFile, count_left_out
from kerasdl.errors import DataError, ModelFileError, RunFolderError
from kerasdl.evaluation.explain import write_cam_grids
from kerasdl.evaluation.metrics import compute_metrics
from kerasdl.evaluation.plots import (
    plot_confusion_matrix,
    plot_misclassified,
    plot_precision_recall,
    plot_roc,
)
from kerasdl.inference.batches import collect_predictions
from kerasdl.inference.predict import load_model_file, with_tta


def write_evaluation(
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names: list[str],
    output_dir: str | os.PathLike,
    *,
    paths: list[str] | None = None,
    threshold: float | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Computes metrics and writes `metrics.json` and the pictures to a folder.

    Pictures: `confusion_matrix.png`; for two classes `roc.png` and
    `precision_recall.png`; with `paths`, `misclassified.png`.

    Args:
        labels: True class indices.
        probabilities: Predicted probabilities.
        class_names: Class names by index.
        output_dir: The folder to write into (created if needed).
        paths: The image files behind `labels`, for the grid of wrongly
            predicted images. Defaults to `None` (no grid).
        threshold: Two-class decision threshold (see `compute_metrics`).
            Defaults to `None`.
        extra: More keys for metrics.json (e.g. `skipped_files`).
            Defaults to `None`.

    Returns:
        The metrics dict as written.

    Example:
    ```python
    labels, probabilities = collect_predictions(model.predict, data.val)
    write_evaluation(labels, probabilities, data.class_names, "evaluation/")
    ```
    """
    output_dir = check_output_folder(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    metrics = compute_metrics(labels, probabilities, class_names, threshold=threshold)
    metrics.update(extra or {})
    plot_confusion_matrix(metrics["confusion_matrix"], class_names, output_dir / "confusion_matrix.png")
    if len(class_names) == 2 and metrics.get("auc") is not None:
        positives, scores = np.asarray(labels) == 1, np.asarray(probabilities)[:, 1]
        chosen = metrics["threshold"]["threshold"] if metrics.get("threshold") else None
        plot_roc(positives, scores, output_dir / "roc.png", positive_class=class_names[1], threshold=chosen)
        plot_precision_recall(positives, scores, output_dir / "precision_recall.png",
                              positive_class=class_names[1])
    if paths is not None:
        metrics["misclassified_shown"] = plot_misclassified(
            list(paths), np.asarray(labels), probabilities, class_names, output_dir / "misclassified.png"
        )
    write_json(metrics, output_dir / "metrics.json")
    return metrics



def _check_same_classes(data_names: list[str], model_names: list[str]) -> None:
    if data_names == model_names:
        return
    if len(data_names) == len(model_names) and model_names[0] != "class_0":
        advice = f". Pass class_names={','.join(model_names)!r} if the data numbers the model's classes."
    else:
        advice = (", and keep labels.txt beside the model." if model_names[0] == "class_0" else ".")
    raise ModelFileError(
        f"Expected the data's classes to match the model's ({', '.join(model_names)}). "
        f"Received: {', '.join(data_names)}. Evaluate on data with the same classes{advice}",
        argument="class_names" if "class_names=" in advice else None,
    )


# The split a saved model is evaluated on, most held-out first.
EVALUATION_SPLITS = ("test", "val", "all", "train")


@dataclasses.dataclass
class ModelEvaluation:
    """What `evaluate_model_file` measured and where it wrote it.

    Attributes:
        metrics: The metrics.json content.
        output_dir: The folder holding metrics.json and the pictures.
        split: The split evaluated (`test`, else `val`, else all images).
        skipped: Files of the source that could not be read.
    """

    metrics: dict[str, Any]
    output_dir: Path
    split: str
    skipped: list[SkippedFile]


def evaluate_model_file(
    model_path: str | os.PathLike,
    data_source: str,
    *,
    output_dir: str | os.PathLike | None = None,
    batch_size: int = 32,
    threshold: float | None = None,
    tta: str = "none",
    class_names: list[str] | None = None,
    overwrite: bool = False,
) -> ModelEvaluation:
    """Evaluates a saved model (.keras, SavedModel, .tflite, .onnx) on labelled data.

    The data's classes must be the model's, in the same order. The most
    held-out split the source has is used: `test`, else `val`, else all.
    A `.keras` model also gets the Grad-CAM grids `cam_wrong.png` and
    `cam_right.png` (see `kerasdl.evaluation.explain.write_cam_grids`).

    Args:
        model_path: The model file or SavedModel folder.
        data_source: A labelled source (class folders, `csv:`, `tfds:`).
        output_dir: Where metrics.json and the pictures go: a new or empty
            folder, or an earlier evaluation with `overwrite`. Defaults to
            `None`: `evaluation/` in the model's run folder (a run folder
            given, the run of `RUN/model.keras` or `RUN/export/...`), else
            beside the model; `evaluation_2/`, ... when that is taken.
        batch_size: Images per batch. Defaults to `32`.
        threshold: Two classes only: the decision threshold on the positive
            class's probability. Defaults to `None` (the one maximising
            balanced accuracy).
        tta: `"none"` or `"flip"`. Defaults to `"none"`.
        class_names: Names for the data's classes in label order, as the
            model's run was given them (`data.class_names`), so numbered
            labels match a model that names them. Defaults to `None` (the
            labels).
        overwrite: Replace an earlier evaluation in the output folder
            (only the files its manifest lists). Defaults to `False`.

    Returns:
        A `ModelEvaluation`.

    Raises:
        DataError: for a threshold with other than two classes, or bad data.
        ModelFileError: if the model cannot be loaded or its classes differ.

    Example:
    ```python
    result = evaluate_model_file("runs/x/model.keras", "my_images/")
    print(result.metrics["accuracy"])
    ```
    """
    folder = evaluation_folder(model_path, output_dir, overwrite=overwrite)
    check_apart_from_data(folder.path, source_folders(data_source), data_source=data_source)
    if not Path(model_path).exists():
        raise ModelFileError(f"Expected a model file or SavedModel folder. Received: {model_path}, which does not "
                             "exist. Check the path.")
    check_source(data_source, class_names=class_names)
    class_names, splits, skipped = load_labelled_files(data_source, class_names=class_names)
    if threshold is not None and len(class_names) != 2:
        raise DataError(
            f"Expected two classes for a decision threshold. Received: threshold={threshold} with "
            f"{len(class_names)} classes. Leave the threshold out.",
            argument="threshold",
        )
    out = folder.path
    model = load_model_file(model_path)
    _check_same_classes(class_names, model.class_names)
    split = next(name for name in EVALUATION_SPLITS if name in splits)
    files = splits[split]
    dataset = make_dataset(files, image_size=model.image_size, batch_size=batch_size, cache=False)
    labels, probabilities = collect_predictions(with_tta(model.predict_batch, tta), dataset)
    if folder.holds_files():  # an earlier evaluation, with overwrite: its own files go
        folder.clear()
    folder.start()
    metrics = write_evaluation(labels, probabilities, class_names, out, paths=files.paths,
                               threshold=threshold,
                               extra={"split": split, "skipped_files": count_left_out(skipped),
                                      "model": str(model_path), "model_kind": model.kind,
                                      "data": data_source, "tta": tta})
    if model.keras_model is not None:  # Grad-CAM needs the Keras model's gradients

        write_cam_grids(model.keras_model, files, labels, probabilities, class_names, out)
    folder.record(complete=True)
    return ModelEvaluation(metrics=metrics, output_dir=out, split=split, skipped=list(skipped))


def _evaluation_base(model_path: Path) -> Path:
    """The folder the default evaluation goes in: the model's run folder, else the model's folder."""
    if model_path.is_dir() and is_run_config(model_path / "config.json"):
        return model_path
    # RUN/model.keras, RUN/export/model.tflite, RUN/export/saved_model/
    return next((folder for folder in (model_path.parent, model_path.parent.parent)
                 if is_run_config(folder / "config.json")), model_path.parent)


def evaluation_folder(model_path: str | os.PathLike, output_dir: str | os.PathLike | None, *,
                      overwrite: bool = False):
    """The output folder of `evaluate_model_file`, checked before any work.

    Args:
        model_path: The model evaluated.
        output_dir: The folder asked for, or `None` for the default:
            `evaluation/` in the model's run folder (or beside the model),
            else the first of `evaluation_2/`, `evaluation_3/`, ... that is
            new or empty (or, with `overwrite`, an earlier evaluation).
        overwrite: Whether an earlier evaluation may be replaced. Defaults
            to `False`.

    Returns:
        A `kerasdl._util.run_folder.RunFolder` of kind `"evaluation"`.

    Raises:
        RunFolderError: for a folder of the user's, or an earlier evaluation
            without `overwrite`.
    """
    if output_dir is None:
        base, number = _evaluation_base(Path(model_path)), 1
        while True:  # the first name free, or (overwrite) holding an evaluation to replace
            folder = RunFolder(base / ("evaluation" if number == 1 else f"evaluation_{number}"),
                               kind="evaluation")
            if not folder.holds_files() or (overwrite and folder.holds_evaluation()):
                folder.check_evaluation()  # writable
                return folder
            number += 1
    folder = RunFolder(output_dir, kind="evaluation")
    folder.check_evaluation()  # new, empty or an earlier evaluation: never the user's files
    if folder.holds_files() and not overwrite:
        raise RunFolderError(
            f"Expected output_dir= to be a new or empty folder. Received: {folder.path}, which holds an "
            "earlier evaluation. Pass overwrite=True to replace it, or pick another output folder.",
            argument="output_dir",
        )
    return folder
