"""Grad-CAM pictures: `kerasdl explain`'s overlays and the run report's grids.

`explain_images` writes one PNG per image: the image as the model sees it,
the same image under its Grad-CAM heatmap, and the predicted class with its
probability. `write_cam_grids` draws the run folder's `cam_wrong.png` (the
most confidently wrong images) and `cam_right.png` (the most confidently
right ones of each class), which report.md shows. The pictures are drawn
by `kerasdl.evaluation.cam_pictures`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from pathlib import Path

import numpy as np

from kerasdl._util.paths import run_model_path
from kerasdl._util.plotting import shortened
from kerasdl._util.run_folder import RunFolder, check_apart_from_data
from kerasdl.data.pipeline import make_dataset
from kerasdl.data.scan import scan_images
from kerasdl.data.types import ImageFiles, SkippedFile
from kerasdl.errors import DataError, ModelFileError, RunFolderError
from kerasdl.evaluation.cam_pictures import ExplanationFigure, draw_cam_grid, draw_note
from kerasdl.evaluation.gradcam import GradCam
from kerasdl.evaluation.plots import most_confidently_wrong
from kerasdl.inference.image_folders import class_trees, input_folders
from kerasdl.inference.predict import list_image_files, load_model_file, no_images_error

logger = logging.getLogger(__name__)

WRONG_SHOWN = 8
RIGHT_PER_CLASS = 3
CLASSES_SHOWN = 8
EXPLAIN_SUFFIX = "_gradcam.png"


@dataclasses.dataclass
class Explanation:
    """One image's prediction and the picture `explain_images` wrote of it.

    Attributes:
        image: The image file.
        picture: The PNG written.
        class_name: The predicted class.
        probability: Its probability.
        heatmap_class: The class whose heatmap the picture shows (the
            predicted one unless another was asked for).
    """

    image: str
    picture: Path
    class_name: str
    probability: float
    heatmap_class: str


@dataclasses.dataclass
class ExplainResult:
    """What `explain_images` wrote.

    Attributes:
        output_dir: The folder of the pictures.
        written: One PNG per readable image, in the order given.
        skipped: Images that could not be read, with the reason.
        layer: The feature map the heatmaps come from.
        seconds: Time from loading the model to the last picture.
        explanations: Each readable image's prediction and picture, in the
            order given.
    """

    output_dir: Path
    written: list[Path]
    skipped: list[SkippedFile]
    layer: str
    seconds: float
    explanations: list[Explanation] = dataclasses.field(default_factory=list)


# ------------------------------------------------------------ the run's grids


def _right_per_class(labels: np.ndarray, probabilities: np.ndarray, num_classes: int) -> list[list[int]]:
    """The most confidently right images of each of the first `CLASSES_SHOWN` classes (a row each)."""
    predicted = probabilities.argmax(axis=1)
    rows = []
    for index in range(min(num_classes, CLASSES_SHOWN)):
        right = np.flatnonzero((labels == index) & (predicted == index))
        order = np.argsort(-probabilities[right, index], kind="mergesort")
        rows.append(right[order][:RIGHT_PER_CLASS].tolist())
    return [row for row in rows if row]


def _wrong_rows(labels: np.ndarray, probabilities: np.ndarray, columns: int = 4) -> list[list[int]]:
    wrong = most_confidently_wrong(labels, probabilities, limit=WRONG_SHOWN).tolist()
    return [wrong[start:start + columns] for start in range(0, len(wrong), columns)]


def explain_image_files(cam, files: ImageFiles, image_size: int, class_indices,
                        *, batch_size: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    """`(image as the model sees it, heatmap)` of each file, decoded as `kerasdl predict` does.

    Args:
        cam: A `kerasdl.evaluation.gradcam.GradCam`.
        files: Readable image files (`kerasdl.data.scan.scan_images`).
        image_size: The model's input size.
        class_indices: The class to explain of each file, or `None` for
            each one's predicted class.
        batch_size: Images per batch. Defaults to `8`.
    """
    dataset = make_dataset(files, image_size=image_size, batch_size=batch_size, cache=False)
    found, done = [], 0
    for images, _ in dataset:
        images = np.asarray(images)
        chosen = None if class_indices is None else np.asarray(class_indices, dtype=int)[done:done + len(images)]
        explanation = cam(images, chosen)
        found += list(zip(images, explanation.heatmaps, strict=True))
        done += len(images)
    return found


def write_cam_grids(model, files: ImageFiles, labels, probabilities, class_names: list[str],
                    output_dir: str | os.PathLike, *, model_of=None) -> list[Path]:
    """Writes the Grad-CAM grids of an evaluation: `cam_wrong.png` and `cam_right.png`.

    `cam_wrong.png` shows the most confidently wrong images (as
    misclassified.png), `cam_right.png` the most confidently right images
    of each class, a row per class; each image under the heatmap of the
    class it was predicted as, by the model that predicted it. A grid with
    no image says so in words.

    Args:
        model: The Keras classifier that was evaluated, or, with
            `model_of`, a list of them (a k-fold run's fold models).
        files: The evaluated images, parallel to `labels`.
        labels: True class indices.
        probabilities: The evaluation's probabilities.
        class_names: Class names by index.
        output_dir: The folder to write into.
        model_of: The index in `model` of the model that predicted each
            image (out-of-fold predictions: the fold model that never
            trained on it). Defaults to `None` (`model` predicted all).

    Returns:
        The pictures written (none for a model Grad-CAM cannot explain,
        which the `kerasdl` logger then says in one line).
    """
    import keras

    models = list(model) if model_of is not None else [model]
    owners = np.zeros(len(labels), dtype=int) if model_of is None else np.asarray(model_of, dtype=int)
    labels, probabilities = np.asarray(labels), np.asarray(probabilities)
    groups = {"cam_wrong.png": _wrong_rows(labels, probabilities),
              "cam_right.png": _right_per_class(labels, probabilities, len(class_names))}
    titles = {"cam_wrong.png": "Grad-CAM of the most confidently wrong images",
              "cam_right.png": "Grad-CAM of the most confidently right images of each class"}
    written, cams = [], {}
    try:
        for owner in sorted(set(owners.tolist())):
            cams[owner] = GradCam(models[owner])  # before any picture: a model it cannot explain says why
        for name, rows in groups.items():
            if not rows:
                draw_note(f"{titles[name]}: none among {len(labels)} images.", Path(output_dir) / name)
                written.append(Path(output_dir) / name)
                continue
            chosen = np.asarray([index for row in rows for index in row])
            cells = [None] * len(chosen)
            for owner in sorted(set(owners[chosen].tolist())):  # each image by the model that predicted it
                at = np.flatnonzero(owners[chosen] == owner)
                found = explain_image_files(cams[owner], files.subset(chosen[at].tolist()),
                                            int(models[owner].inputs[0].shape[1]),
                                            probabilities[chosen[at]].argmax(axis=1))
                for place, cell in zip(at, found, strict=True):
                    cells[place] = cell
            cells = iter(cells)
            draw_cam_grid([[(*next(cells), _caption(files.paths[i], class_names[labels[i]], class_names,
                                                   probabilities[i])) for i in row] for row in rows],
                       titles[name], Path(output_dir) / name)
            written.append(Path(output_dir) / name)
    except ModelFileError as error:
        logger.info("No Grad-CAM pictures: %s", error)
    except Exception as error:  # noqa: BLE001 - Grad-CAM failing must not lose the evaluation
        logger.info("No Grad-CAM pictures: Grad-CAM failed on %s (%s: %s; Keras backend %s).",
                    models[0].name, type(error).__name__, str(error).splitlines()[0][:160] if str(error) else "",
                    keras.backend.backend())
    return written


def _caption(path: str, true_name: str, class_names: list[str], probabilities: np.ndarray) -> str:
    predicted = int(np.argmax(probabilities))
    return (f"{shortened(Path(path).name, 24)}\ntrue: {true_name}\n"
            f"predicted: {class_names[predicted]} ({probabilities[predicted]:.2f})")


# ---------------------------------------------------------- kerasdl explain


def run_keras_model(path: str | os.PathLike) -> Path | None:
    """The `model.keras` of the run an exported file or folder came from, if there is one.

    Looked for beside `path`, and one and two folders up (`RUN/export/model.tflite`,
    `RUN/export/saved_model/`).
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    return next((candidate for candidate in (folder / "model.keras", folder.parent / "model.keras",
                                             folder.parent.parent / "model.keras") if candidate.is_file()), None)


def keras_model_path(path: str | os.PathLike) -> Path:
    """The `.keras` file to explain for `path` (a `.keras` file or a run folder).

    Raises:
        ModelFileError: for a missing path, or a model without gradients
            (`.tflite`, `.onnx`, a SavedModel), naming the run's
            `model.keras` to use instead when there is one.
    """
    path = run_model_path(path, ("model.keras",), expected="a Keras model file (.keras) or a run folder",
                          fix="Check the path.")
    if path.is_file() and path.suffix.lower() == ".keras":
        return path
    nearby = run_keras_model(path)
    advice = (f"Pass {nearby}, the run's Keras model, instead." if nearby is not None
              else "Pass the model.keras of the run that made it.")
    raise ModelFileError(
        f"Expected a Keras model (.keras): Grad-CAM needs the model's gradients. Received: {path}, "
        f"which has none (an exported file or folder). {advice}"
    )


def _picture_names(paths: list[str]) -> list[str]:
    """`<stem>_gradcam.png` per image; a stem met again gets `_2`, `_3`, ..."""
    names, seen = [], {}
    for path in paths:
        stem = Path(path).stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(f"{stem}{'' if seen[stem] == 1 else '_' + str(seen[stem])}{EXPLAIN_SUFFIX}")
    return names


def _class_index(class_name: str | None, class_names: list[str]) -> int | None:
    if class_name is None:
        return None
    if class_name not in class_names:
        raise DataError(
            f"Expected a class of the model to explain ({', '.join(class_names)}). Received: "
            f"class_name={class_name!r}. Pick one of them.",
            argument="class_name",
        )
    return class_names.index(class_name)


def _title(path: str, class_names: list[str], probabilities: np.ndarray, explained: int) -> tuple[str, str]:
    """The picture's title and its heatmap panel's title."""
    predicted = int(np.argmax(probabilities))
    title = f"{shortened(Path(path).name, 40)}: {class_names[predicted]} {probabilities[predicted]:.2f}"
    if explained != predicted:
        title += f" (heatmap of {class_names[explained]}, {probabilities[explained]:.2f})"
    return title, f"Grad-CAM of {class_names[explained]}"


def explain_images(
    model_path: str | os.PathLike,
    images: list[str | os.PathLike],
    *,
    output_dir: str | os.PathLike | None = None,
    class_name: str | None = None,
    batch_size: int = 16,
) -> ExplainResult:
    """Writes a Grad-CAM picture of each image: `<image stem>_gradcam.png`.

    Each picture shows the image as the model sees it, the image under its
    heatmap, and the predicted class with its probability.

    Args:
        model_path: A `.keras` file, or a run folder (its `model.keras`).
        images: Image files, folders of them, or `@list.txt` files.
        output_dir: Folder for the pictures: new, empty or an earlier
            explanation. Defaults to `None` (`explain/` beside the model).
        class_name: Explain this class instead of each image's predicted
            one. Defaults to `None`.
        batch_size: Images per batch. Defaults to `16`.

    Returns:
        An `ExplainResult`.

    Raises:
        ModelFileError: for a model without gradients (`.tflite`, `.onnx`,
            SavedModel; the message names the run's `model.keras`), or one
            without a convolutional feature map.
        DataError: for missing images, none readable, or an unknown
            `class_name`.
        RunFolderError: for an output folder of the user's.

    Example:
    ```python
    result = explain_images("runs/faces/model.keras", ["face.jpg"], output_dir="cams/")
    ```
    """
    path = keras_model_path(model_path)
    paths = [file for source in images for file in list_image_files(source, purpose="explain")]
    folder = RunFolder(Path(output_dir) if output_dir is not None else path.parent / "explain",
                       kind="explanation")
    shown = ", ".join(str(source) for source in images[:3]) + (" ..." if len(images) > 3 else "")
    folders = input_folders(list(images))  # the widest first, so the example given lies outside both
    check_apart_from_data(folder.path, class_trees(folders), data_source=shown,
                          given=f"the class folders of the images of {shown}")
    check_apart_from_data(folder.path, folders, data_source=shown, given=f"the images of {shown}")
    folder.check_explanation()
    names = dict(zip(paths, _picture_names(paths), strict=True))
    _check_names_free(folder, list(names.values()))
    started = time.perf_counter()
    model = load_model_file(path)
    class_index = _class_index(class_name, model.class_names)
    readable, skipped = scan_images([(file, 0) for file in paths])  # the caller reports the skipped
    if not len(readable):
        raise no_images_error(paths if len(images) > 1 else images[0], skipped, purpose="explain")
    with _removed_on_failure(folder):
        folder.start(claim=tuple(names[file] for file in readable.paths))
        explanations, layer = _write_explanations(model, readable, class_index, names, folder.path,
                                                  batch_size)
        folder.record()
    return ExplainResult(output_dir=folder.path, written=[item.picture for item in explanations],
                         skipped=list(skipped), layer=layer, seconds=time.perf_counter() - started,
                         explanations=explanations)


@contextlib.contextmanager
def _removed_on_failure(folder):
    """A failure leaves no trace in a folder this call created: its files, the folder, and the
    folders made above it go; an earlier explanation's folder keeps a manifest of what it holds."""
    created = [p for p in [folder.path, *folder.path.parents] if not p.exists()]
    new = not folder.holds_files()
    try:
        yield
    except BaseException:
        if new:
            folder.clear()  # removes the folder once empty: an empty one of the user's comes back
            if folder.path not in created:
                folder.path.mkdir(exist_ok=True)
            for parent in created:
                try:
                    parent.rmdir()
                except OSError:  # gone already, or not empty: something else is in it
                    pass
        else:
            folder.record()
        raise


def _check_names_free(folder, names: list[str]) -> None:
    """Refuses to write a picture over a file of the user's in an earlier explanation's folder."""
    owned = set(folder.owned_files())
    taken = [name for name in names if os.path.lexists(folder.path / name) and name not in owned]
    if taken:
        raise RunFolderError(
            f"Expected an output folder where the pictures' names are new or kerasdl's. Received: "
            f"{folder.path}, where {', '.join(taken[:3])} was not written by kerasdl. Move it out, or "
            "pick another output_dir.",
            argument="output_dir",
        )


def _write_explanations(model, files: ImageFiles, class_index, names: dict[str, str], out: Path,
                        batch_size: int) -> tuple[list[Explanation], str]:
    cam = GradCam(model.keras_model)
    dataset = make_dataset(files, image_size=model.image_size, batch_size=batch_size, cache=False)
    written, done = [], 0
    with ExplanationFigure() as figure:
        for images, _ in dataset:
            images = np.asarray(images)
            explanation = cam(images, class_index)
            for image, heatmap, probabilities, explained in zip(
                    images, explanation.heatmaps, explanation.probabilities, explanation.class_indices,
                    strict=True):
                source = files.paths[done]
                title, heatmap_title = _title(source, model.class_names, probabilities, int(explained))
                figure.save(image, heatmap, title, out / names[source], heatmap_title=heatmap_title)
                predicted = int(np.argmax(probabilities))
                written.append(Explanation(source, out / names[source], model.class_names[predicted],
                                           float(probabilities[predicted]), model.class_names[int(explained)]))
                done += 1
    return written, cam.layer
