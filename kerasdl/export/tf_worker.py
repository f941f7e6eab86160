"""`python -m kerasdl.export.tf_worker SCRATCH`: the TensorFlow-backend side of
`kerasdl.export.tf_process`.

It reads `SCRATCH/request.json` (the saved model, formats, class names,
options, and the folders of batches the other process wrote), runs
`export_job`, and writes `SCRATCH/result.json`: `{"parity": ...}`, or
`{"error": {"type", "message", "argument", "parity"}}` for a kerasdl error,
which the other process raises as the same error.
"""


from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import numpy as np

import kerasdl.models.activations  # noqa: F401 - registers kerasdl's own layers for loading
from kerasdl.errors import ExportError, ExportRejectedError, KerasdlError
from kerasdl.export.exporter import export_job
from kerasdl.export.options import ExportJob
from kerasdl.export.tf_process import REQUEST_FILE, RESULT_FILE, BatchFolder


def export_request(scratch: Path) -> dict:
    """Runs the request in `scratch` on this process's (TensorFlow) backend.

    Returns:
        `export_job`'s `{file name: parity dict}`.

    Raises:
        ExportError: when Keras here is not on the TensorFlow backend, and
            what `export_job` raises.
    """
    if keras.backend.backend() != "tensorflow":
        raise ExportError(f"Expected KERAS_BACKEND=tensorflow in the export process. "
                          f"Received: {keras.backend.backend()}. Unset KERAS_BACKEND there.")
    request = json.loads((scratch / REQUEST_FILE).read_text())
    model = keras.saving.load_model(request["model"], compile=False)
    reference = None
    if request["parity"] is not None:
        with np.load(scratch / "reference.npz") as arrays:
            reference = (arrays["labels"], arrays["probabilities"])
    job = ExportJob.from_json(
        request["job"], parity_data=BatchFolder(request["parity"]) if request["parity"] else None,
        representative_images=BatchFolder(request["representative"]) if request["representative"] else None,
        reference=reference)
    return export_job(model, job)


def main(scratch: str) -> int:
    """Exports, and writes the result or the kerasdl error to `result.json`; 0 when it is written."""
    scratch_dir = Path(scratch)
    try:
        result: dict = {"parity": export_request(scratch_dir)}
    except KerasdlError as error:
        result = {"error": {"type": type(error).__name__, "message": str(error), "argument": error.argument,
                            "parity": error.parity if isinstance(error, ExportRejectedError) else None}}
    (scratch_dir / RESULT_FILE).write_text(json.dumps(result, default=_plain))
    return 0


def _plain(value):
    """NumPy numbers in the parity dicts as Python numbers."""
    return value.item() if isinstance(value, np.generic) else str(value)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
