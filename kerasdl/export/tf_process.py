"""Exporting from a JAX or PyTorch process: the same export, in a TensorFlow-backend subprocess.

SavedModel, TFLite and ONNX are made by TensorFlow's converters, which need
a Keras model on the TensorFlow backend; Keras picks its backend once per
process. So a process whose Keras runs on JAX or PyTorch saves the model as
`.keras` (which loads on any backend), writes the validation batches, the
model's own predictions on them and the calibration batches to a scratch
folder, and runs `python -m kerasdl.export.tf_worker` with
`KERAS_BACKEND=tensorflow`, which calls `export_job` there. The files,
labels.txt, metadata.json and parity.json are those a TensorFlow run writes;
the parity check compares each file with the model as it was trained (its
predictions in this process), so it covers the change of backend too.
"""


from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

import kerasdl.errors
from kerasdl._util.backend import active_backend
from kerasdl._util.native_output import is_native_chatter
from kerasdl.errors import ExportError, ExportRejectedError, KerasdlError
from kerasdl.export.options import ExportJob
from kerasdl.inference.batches import batch_predictor, collect_predictions
from kerasdl.models.saving import save_model

logger = logging.getLogger(__name__)

__all__ = ["BatchFolder", "export_in_tensorflow_process", "parity_line", "write_batches"]

REQUEST_FILE = "request.json"
RESULT_FILE = "result.json"


class BatchFolder:
    """Re-iterable `(images, labels)` batches (or image batches) read from `.npz` files in a folder.

    Args:
        folder: Where `write_batches` wrote them.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def __iter__(self) -> Iterator:
        for path in sorted(self.folder.glob("*.npz")):
            with np.load(path) as batch:
                yield (batch["x"], batch["y"]) if "y" in batch.files else batch["x"]


def write_batches(batches: Iterable, folder: str | os.PathLike) -> BatchFolder:
    """Writes each batch to `folder/<index>.npz`, one at a time.

    Args:
        batches: `(images, labels)` batches, or image batches.
        folder: The folder to create.

    Returns:
        The `BatchFolder` that reads them back.
    """
    folder = Path(folder)
    folder.mkdir(parents=True)
    for index, batch in enumerate(batches):
        images, labels = batch if isinstance(batch, tuple | list) else (batch, None)
        arrays = {"x": np.asarray(images, dtype=np.float32)}
        if labels is not None:
            arrays["y"] = np.asarray(labels)
        np.savez(folder / f"{index:06d}.npz", **arrays)
    return BatchFolder(folder)


def export_in_tensorflow_process(model, job: ExportJob) -> dict[str, Any]:
    """`export_job` for a model on the JAX or PyTorch backend, run by a TensorFlow-backend process.

    Takes `export_job`'s arguments and gives its result: the same files,
    the same parity check (against this model's own predictions), the same
    errors.

    Args:
        model: The Keras model, on this process's backend.
        job: What to export, where, and the data of the checks.

    Returns:
        `{file name: parity dict}` for each checked file.

    Raises:
        ExportError: when the subprocess fails, or for what `export_job`
            raises there (`ExportRejectedError` with its `parity`).
    """
    with tempfile.TemporaryDirectory(prefix="kerasdl_tf_export_") as scratch:
        scratch = Path(scratch)
        save_model(model, scratch / "model.keras")
        request: dict[str, Any] = {"model": str(scratch / "model.keras"), "job": job.to_json(),
                                   "parity": None, "representative": None}
        if job.parity_data is not None:
            written = write_batches(job.parity_data, scratch / "parity")
            labels, probabilities = job.reference or collect_predictions(batch_predictor(model), written)
            np.savez(scratch / "reference.npz", labels=labels, probabilities=probabilities)
            request["parity"] = str(scratch / "parity")
        if job.representative_images is not None:
            write_batches(job.representative_images, scratch / "representative")
            request["representative"] = str(scratch / "representative")
        (scratch / REQUEST_FILE).write_text(json.dumps(request))
        _run_worker(scratch)
        parity = _read_result(scratch / RESULT_FILE)
    logger.info(parity_line(parity, active_backend()))
    return parity


def parity_line(parity: dict[str, Any], backend: str) -> str:
    """The one line that says where the files came from and how well they agree with the model."""
    line = f"Exported by a TensorFlow-backend process from the {backend} model"
    if not parity:
        return line + " (no parity check: no validation data)."
    samples = next(iter(parity.values()))["num_samples"]
    return line + f"; top-1 agreement with it on {samples} validation images: " + ", ".join(
        f"{name} {check['top1_agreement']:.4f}" for name, check in parity.items()) + "."


def _run_worker(scratch: Path) -> None:
    """Runs the worker on `scratch`'s request, its log lines passed on to this process's logger."""
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    with open(scratch / "stderr.txt", "w+") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "kerasdl.export.tf_worker", str(scratch)], env=env,
            stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
        for line in process.stdout:
            logger.info(line.rstrip("\n"))
        process.wait()
        stderr.seek(0)
        errors = [line.rstrip() for line in stderr if line.strip() and not is_native_chatter(line)]
    for line in errors:
        logger.debug("export process: %s", line)
    if process.returncode != 0 and not (scratch / RESULT_FILE).is_file():
        last = errors[-1] if errors else f"exit status {process.returncode}"
        raise ExportError(
            f"Expected the TensorFlow-backend export process to finish. Received: it failed ({last[:300]}). "
            "Export the saved model.keras with KERAS_BACKEND=tensorflow."
        )


def _read_result(path: Path) -> dict[str, Any]:
    """The worker's parity dict, or its error raised here as the same kerasdl error."""
    result = json.loads(path.read_text())
    error = result.get("error")
    if error is None:
        return result["parity"]
    if error["type"] == "ExportRejectedError":
        raise ExportRejectedError(error["message"], parity=error.get("parity"))
    error_class = getattr(kerasdl.errors, error["type"], ExportError)
    if not (isinstance(error_class, type) and issubclass(error_class, KerasdlError)):
        error_class = ExportError
    raise error_class(error["message"], argument=error.get("argument"))
