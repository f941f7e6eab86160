"""What every run shares, one run or k folds: the result, the run folder, config.json's
environment record and the export step.

`kerasdl.app.run` (one run) and `kerasdl.app.kfold` (k-fold cross-validation)
both build on these.
"""


from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import platform
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasdl import __version__
from kerasdl._util.run_folder import RunFolder, check_apart_from_data
from kerasdl.data.file_list import list_source_files
from kerasdl.data.pipeline import make_dataset
from kerasdl.data.sources import source_folders
from kerasdl.errors import ExportError
from kerasdl.export.exporter import export_model
from kerasdl.export.tflite import representative_files
from kerasdl.recipe import source_arguments

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class RunResult:
    """What a run produced.

    Attributes:
        run_dir: The run folder.
        metrics: The contents of metrics.json.
        model: The trained `keras.Model` (best weights).
        parity: Parity checks of exported TFLite files.
        predictions: `{split: (labels, probabilities)}` of the evaluated
            split, and for one fold of a k-fold run (`data.fold`) its
            validation fold too (with the run's test-time augmentation).
    """
    run_dir: Path
    metrics: dict[str, Any]
    model: Any
    parity: dict[str, Any]
    predictions: dict[str, Any] = dataclasses.field(default_factory=dict)


def default_run_dir(recipe_name: str) -> Path:
    """`runs/<recipe>/<timestamp>/` under the current folder."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / recipe_name / stamp


def prepare_run_dir(
    path: str | os.PathLike, *, overwrite: bool = False, data_source: str | None = None
) -> Path:
    """Checks that `path` can take a new run; creates and deletes nothing.

    A new run goes only into a new or empty folder, or, with `overwrite`,
    replaces a kerasdl run (see `kerasdl._util.run_folder`); it is never the
    data folder, inside it, or above it.

    Args:
        path: The output folder.
        overwrite: Whether a kerasdl run there may be replaced. Defaults to
            `False`.
        data_source: The run's image source, kept apart from the output.
            Defaults to `None` (not checked).

    Returns:
        `path` as a `Path`.

    Raises:
        RunFolderError: if it holds a run and `overwrite` is false, holds
            files of the user's, overlaps the data, or cannot be written.
    """
    path = Path(path)
    if data_source is not None:
        check_apart_from_data(path, source_folders(data_source), data_source=data_source)
    RunFolder(path).check_new_run(overwrite=overwrite)
    return path


def replace_run(run_dir: Path) -> None:
    """Deletes the files an earlier run wrote in `run_dir`, keeping the rest.

    Warns, in one line, about what stays (files kerasdl did not write).
    """


    kept = RunFolder(run_dir).clear()
    if kept:
        shown = ", ".join(kept[:5]) + (", ..." if len(kept) > 5 else "")
        entries = "entry" if len(kept) == 1 else "entries"
        warnings.warn(f"overwrite=True replaced the run in {run_dir} and kept {len(kept)} {entries} "
                      f"kerasdl did not write: {shown}.", stacklevel=2)


def environment_info() -> dict[str, Any]:
    """Versions of Python and the packages that matter, the backend, devices."""


    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kerasdl": __version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "backend": keras.backend.backend(),
    }
    info["packages"] = package_versions()
    try:
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        info["devices"] = [device.name for device in tf.config.list_logical_devices()]
    except ImportError:
        pass
    if info["backend"] == "jax":
        import jax

        info["devices"] = [str(device) for device in jax.devices()]
    elif info["backend"] == "torch":
        import torch

        info["devices"] = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return info


PACKAGES = ("keras", "tensorflow", "tensorflow-datasets", "jax", "jaxlib", "torch", "numpy", "click",
            "matplotlib", "pillow", "h5py", "ai-edge-litert", "scikit-image", "ml-dtypes")


def package_versions() -> dict[str, str]:
    """Versions of the installed packages a run depends on (absent ones left out)."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def export_run(model, data, run_dir: Path, formats, export_options, *, image_size: int, batch_size: int,
                reference=None):
    """Exports the formats with their parity checks; a failed export is returned, not raised,
    so the trained run is completed first. `reference`: the evaluation's Keras predictions on
    the validation split, so the parity check need not compute them again.

    Returns:
        `(parity, export_error)`.
    """


    if not formats:
        return {}, None
    where = ("" if keras.backend.backend() == "tensorflow" else  # the converters are TensorFlow's
             f" in a TensorFlow-backend process, from the {keras.backend.backend()} model's weights")
    logger.info(f"Exporting {', '.join(k if q == 'none' else f'{k}:{q}' for k, q in formats)}{where} ...")
    representative = make_dataset(
        representative_files(data.files["train"], size=export_options.representative_size,
                             seed=export_options.seed),
        image_size=image_size, batch_size=batch_size, cache=False,
    )
    try:
        parity = export_model(
            model, run_dir / "export", formats=formats, class_names=data.class_names,
            parity_data=data.val, representative_images=(x for x, _ in representative),
            options=export_options, reference=reference,
        )
    except ExportError as error:  # keep the trained run; report the export as failed
        return getattr(error, "parity", {}), error
    return parity, None


def source_files(data_source: str, recipe):
    """The source's `kerasdl.data.file_list.FileList` as the recipe's data settings read it (no image read).

    A run records its digest in config.json; a resume compares it before
    any costly work (`kerasdl.training.checkpoints.check_same_files`).
    """
    return list_source_files(data_source, **source_arguments(recipe))
