"""Export for serving and mobile, with proof: `export_model` and `export_to_path`.

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
`parity.json` (the checks). The files themselves are written by one module
per format: `saved_model`, `tflite`, `onnx`.
"""


from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from kerasdl._util.backend import active_backend
from kerasdl.errors import ExportRejectedError
from kerasdl.export.bias_correction import int8_bias_correction
from kerasdl.export.int8_search import PROBE_IMAGES, int8_summary, search_int8
from kerasdl.export.metadata import (
    LABELS_FILE,
    PARITY_FILE,
    check_labels_compatible,
    file_metadata,
    merge_json,
    model_metadata,
    write_labels,
    write_metadata,
)
from kerasdl.export.onnx import export_onnx
from kerasdl.export.options import (
    INT8_MODES,
    ExportJob,
    ExportOptions,
    ExportTarget,
    check_export_output,
    check_export_requirements,
    rejected_path,
)
from kerasdl.export.parity import compare_predictions, is_rejected
from kerasdl.export.saved_model import export_saved_model
from kerasdl.export.tf_process import export_in_tensorflow_process
from kerasdl.export.tflite import export_tflite, first_images, representative_batches, representative_dataset
from kerasdl.inference.batches import batch_predictor, collect_predictions
from kerasdl.inference.runners import TFLiteModel, load_exported

logger = logging.getLogger(__name__)

__all__ = ["export_job", "export_model", "export_to_path"]


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
    return export_job(model, ExportJob(
        output_dir=output_dir, formats=formats, class_names=class_names, parity_data=parity_data,
        representative_images=representative_images, options=options, file_names=file_names,
        reference=reference))


def export_job(model, job: ExportJob) -> dict[str, Any]:
    """`export_model` with its arguments in one `ExportJob` (the TensorFlow-backend worker calls this).

    Returns:
        `{file name: parity dict}` for each checked file.

    Raises:
        ExportError: for a format that cannot be made.
        ExportRejectedError: if a file failed its parity check.
    """
    check_export_requirements(job.formats)
    check_labels_compatible(job.output_dir, job.class_names)
    if active_backend() != "tensorflow":  # the converters need the model on TensorFlow
        return export_in_tensorflow_process(model, job)
    representative = job.representative_images
    if any(kind == "tflite" and quantize in INT8_MODES for kind, quantize in job.formats):
        representative = representative_batches(representative)
    reference = job.reference
    if job.parity_data is None:
        reference = None
    elif reference is None:
        reference = collect_predictions(batch_predictor(model), job.parity_data)
    job = dataclasses.replace(job, representative_images=representative, reference=reference)
    job.output_dir.mkdir(parents=True, exist_ok=True)
    parity, rejected = _export_all(model, job)
    if rejected:
        raise ExportRejectedError(
            f"Expected exported files to lose at most {job.options.max_accuracy_drop:.4f} accuracy. "
            f"Received: {'; '.join(rejected)}; kept as *.rejected.*. See {job.output_dir / PARITY_FILE}, "
            "or raise max_accuracy_drop.",
            parity=parity,
        )
    return parity


def _export_all(model, job: ExportJob) -> tuple[dict[str, Any], list[str]]:
    """Writes and checks every target from one SavedModel; `(parity, reasons of the rejected files)`."""
    base_metadata = model_metadata(model, job.class_names)
    parity: dict[str, Any] = {}
    rejected: list[str] = []
    with tempfile.TemporaryDirectory(prefix="kerasdl_export_") as scratch:
        saved_model_dir = None
        if any(kind in ("saved_model", "tflite") for kind, _ in job.formats):
            saved_model_dir = export_saved_model(model, Path(scratch) / "saved_model")
        for target in job.formats:
            path = job.path(target)
            write_labels(job.class_names, job.output_dir / LABELS_FILE)
            check = _export_one(model, target, path, job, base_metadata=base_metadata,
                                saved_model_dir=saved_model_dir)
            if check is None:
                continue
            if check["rejected"]:
                rejected.append(_rejection_reason(path.name, check))
            parity[path.name] = check
    return parity, rejected


def _export_one(model, target: ExportTarget, path: Path, job: ExportJob, *, base_metadata,
                saved_model_dir) -> dict[str, Any] | None:
    """Writes and checks one file; records it in parity.json, and in metadata.json unless rejected.

    Returns:
        Its parity check, or `None` without parity data.
    """
    runner = None
    if job.reference is not None and target == ("tflite", "int8"):
        check = _search_int8_file(model, path, job, saved_model_dir=saved_model_dir)
    else:
        _write_target(model, target, path, job, saved_model_dir=saved_model_dir)
        runner = load_exported(target.format, path)
        check = None if job.reference is None else _parity_check(target, path, runner, job)
    if check is None or not check["rejected"]:
        entry = file_metadata(target.format, target.quantize, path, runner or load_exported(target.format, path),
                              job.options)
        if check is not None:
            entry["parity"] = {key: check[key] for key in ("top1_agreement", "keras_accuracy", "accuracy")}
            if "int8_search" in check:
                entry["int8_search"] = check["int8_search"]
        write_metadata(path.parent, base_metadata, path.name, entry)
    if check is not None:
        merge_json(path.parent / PARITY_FILE, path.name, check)
    return check


def _rejection_reason(name: str, check: dict[str, Any]) -> str:
    """`model_int8.tflite (accuracy 0.70 vs Keras 0.72)`, with the widest float set an int8 search tried."""
    search = check.get("int8_search")
    tried = ""
    if search and len(search["steps"]) > 1:
        tried = (f"int8 with up to {search['steps'][-1]['float_ops']} of {search['quantizable_ops']} ops "
                 "kept in float failed too; the best file: ")
    return f"{name} ({tried}accuracy {check['accuracy']:.4f} vs Keras {check['keras_accuracy']:.4f})"


def _search_int8_file(model, path: Path, job: ExportJob, *, saved_model_dir) -> dict[str, Any]:
    """`int8`: every op int8, else the fewest ops kept in float that pass (`search_int8`).

    The file that passed is written at `path`; when none did, the one that
    lost the least is kept as `*.rejected.tflite`.
    """
    target = ExportTarget("tflite", "int8")
    options = job.options
    probe_images = first_images(job.representative_images, PROBE_IMAGES)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as scratch:
        scratch = Path(scratch)
        probe = (probe_images, np.asarray(batch_predictor(model)(probe_images)))
        if options.int8_bias_correction:
            with int8_bias_correction(model, job.representative_images):
                saved_model_dir = export_saved_model(model, scratch / "saved_model")
        found = search_int8(
            saved_model_dir, representative_dataset=representative_dataset(job.representative_images),
            probe=probe, evaluate=lambda candidate: _compare(target, TFLiteModel(candidate), job),
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


def _write_target(model, target: ExportTarget, path: Path, job: ExportJob, *, saved_model_dir) -> None:
    """Writes one exported file (or SavedModel folder) at `path`, replacing kerasdl's earlier one."""
    if target.format == "saved_model":
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        shutil.copytree(saved_model_dir, path.with_name(f".{path.name}.tmp"), dirs_exist_ok=True)
        os.replace(path.with_name(f".{path.name}.tmp"), path)
    elif target.format == "onnx":
        export_onnx(model, path)
    else:
        export_tflite(model, path, quantize=target.quantize, representative_images=job.representative_images,
                      saved_model_dir=saved_model_dir, int8_io=job.options.int8_io,
                      bias_correction=job.options.int8_bias_correction)


def _compare(target: ExportTarget, runner, job: ExportJob) -> dict[str, Any]:
    """The parity dict of a runner against the Keras model's reference predictions."""
    labels, expected = job.reference
    _, received = collect_predictions(runner.predict_batch, job.parity_data)
    check = {"format": target.format, "quantization": target.quantize, "split": "val",
             **compare_predictions(labels, expected, received),
             "max_accuracy_drop": job.options.max_accuracy_drop}
    check["rejected"] = is_rejected(check, job.options.max_accuracy_drop)
    return check


def _parity_check(target: ExportTarget, path: Path, runner, job: ExportJob) -> dict[str, Any]:
    """Compares a written file with the Keras model; a rejected file is renamed `*.rejected.*`."""
    check = {**_compare(target, runner, job), "file": path.name}
    if check["rejected"]:
        kept = rejected_path(path)
        if kept.is_dir():
            shutil.rmtree(kept)
        os.replace(path, kept)
        check["file"] = kept.name
    return check


def export_to_path(
    model,
    output: str | os.PathLike,
    *,
    class_names: list[str],
    parity_data: Iterable,
    representative_images: Iterable[np.ndarray] | None = None,
    export_format: str = "tflite",
    quantize: str = "none",
    overwrite: bool = False,
    options: ExportOptions | None = None,
) -> dict[str, Any]:
    """Exports a model to one file at a path of the user's choosing, and checks it.

    labels.txt, metadata.json and parity.json are written beside `output`.
    `kerasdl export` reaches it through `kerasdl.app.export_file`, which
    finds the model and its data (a run folder's source, seed and split).

    Args:
        model: The Keras model (takes [0, 255] RGB images).
        output: The file (`.tflite`, `.onnx`) or folder (SavedModel) to write.
        class_names: Class names by label index.
        parity_data: Re-iterable labelled validation batches for the check.
        representative_images: Training image batches for int8
            calibration; required for `"int8"` and `"int8-full"`. Defaults
            to `None`.
        export_format: `"tflite"`, `"saved_model"` or `"onnx"`. Defaults to
            `"tflite"`.
        quantize: TFLite quantization, see `export_tflite`; `"int8"` keeps
            the fewest ops in float that pass the parity check when every op
            in int8 does not (see `kerasdl.export.int8_search`), `"int8-full"`
            keeps every op int8 or rejects the file. Defaults to `"none"`.
        overwrite: Replace an existing `output`. Defaults to `False`.
        options: See `ExportOptions`. Defaults to `ExportOptions()`.

    Returns:
        `{file name: parity dict}`.

    Raises:
        ExportError: for a bad output path or option, a failed conversion;
            `ExportRejectedError` when the file fails its check.

    Example:
    ```python
    export_to_path(model, "model_int8.tflite", class_names=data.class_names, parity_data=data.val,
                   representative_images=[x for x, _ in data.train.take(10)], quantize="int8")
    ```
    """
    output = Path(output)
    check_export_output(output, export_format=export_format, quantize=quantize, overwrite=overwrite)
    return export_model(
        model, output.parent, formats=[(export_format, quantize)], class_names=class_names,
        parity_data=parity_data, representative_images=representative_images, options=options,
        file_names={(export_format, quantize): output.name},
    )
