"""Work on a saved model file: evaluate it on labelled data, predict images, explain them.

The steps of `kerasdl evaluate`, `predict` and `explain`, each one call for
the command line and for scripts.
"""


from __future__ import annotations

import os

from kerasdl.evaluation.evaluate import ModelEvaluation, evaluate_model_file
from kerasdl.evaluation.explain import ExplainResult, explain_images
from kerasdl.inference.predict import check_output_file, list_image_files, load_model_file, predict_files


def evaluate_model(model_path: str | os.PathLike, data_source: str, *,
                   output_dir: str | os.PathLike | None = None, batch_size: int = 32,
                   threshold: float | None = None, tta: str = "none", class_names: list[str] | None = None,
                   overwrite: bool = False) -> ModelEvaluation:
    """Evaluates a saved model (.keras, SavedModel, .tflite, .onnx) on labelled data.

    Args: those of `kerasdl.evaluation.evaluate.evaluate_model_file`.

    Returns:
        A `ModelEvaluation`: the metrics and the folder they were written to.

    Raises:
        DataError, ModelFileError: for bad data, a model that cannot load or
            whose classes differ.

    Example:
    ```python
    evaluate_model("runs/x/model.keras", "my_images/").metrics["accuracy"]
    ```
    """
    return evaluate_model_file(model_path, data_source, output_dir=output_dir, batch_size=batch_size,
                               threshold=threshold, tta=tta, class_names=class_names, overwrite=overwrite)


def predict_images(model_path: str | os.PathLike, source: str | os.PathLike, output: str | os.PathLike, *,
                   batch_size: int = 32, csv_format: str = "table", tta: str = "none") -> dict[str, int]:
    """Predicts every image of `source` with a saved model and writes a CSV.

    The images and the output file are checked before the model loads.

    Args:
        model_path: A model file (.keras, SavedModel, .tflite, .onnx) or run folder.
        source: A folder (searched recursively), an image file, or `@list.txt`.
        output: The CSV file, outside the folders of the images.
        batch_size: Images per batch. Defaults to `32`.
        csv_format: `"table"` or `"submission"` (see `predict_files`).
            Defaults to `"table"`.
        tta: `"none"` or `"flip"`. Defaults to `"none"`.

    Returns:
        `{"predicted": n, "skipped": m}`.

    Raises:
        DataError, ModelFileError: for missing images, a bad output, a model
            that cannot load.
    """
    files = list_image_files(source)  # cheap checks before loading the model
    check_output_file(output, images=[source])
    model = load_model_file(model_path)
    return predict_files(model, files, output, batch_size=batch_size, csv_format=csv_format, tta=tta)


def explain_model(model_path: str | os.PathLike, images: list[str | os.PathLike], *,
                  output_dir: str | os.PathLike | None = None, class_name: str | None = None,
                  batch_size: int = 16) -> ExplainResult:
    """Writes a Grad-CAM picture of each image (`<image stem>_gradcam.png`).

    Args: those of `kerasdl.evaluation.explain.explain_images`.

    Returns:
        An `ExplainResult`: the pictures, the skipped images, the feature map used.

    Raises:
        ModelFileError, DataError: for a model without a feature map, bad images or output.
    """
    return explain_images(model_path, list(images), output_dir=output_dir, class_name=class_name,
                          batch_size=batch_size)
