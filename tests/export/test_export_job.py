"""`ExportJob`: export_model's arguments as one record, the same on both sides of the
TensorFlow-backend subprocess; `export_to_path` on a model the caller loaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kerasdl.errors import ExportError
from kerasdl.export.exporter import export_to_path
from kerasdl.export.options import ExportJob, ExportOptions, ExportTarget
from kerasdl.export.tf_process import export_in_tensorflow_process
from tests.support import write_tiny_classifier


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny 32 px two-class model and eight labelled images in two batches."""
    model = write_tiny_classifier(tmp_path_factory.mktemp("tiny"))
    rng = np.random.default_rng(0)
    batches = [(rng.integers(0, 256, (4, 32, 32, 3)).astype("float32"), np.array([0, 1, 0, 1]))
               for _ in range(2)]
    return model, batches


def test_an_export_job_survives_its_json_round_trip(tmp_path):
    job = ExportJob(output_dir=tmp_path, formats=[("tflite", "int8"), ExportTarget.saved_model()],
                    class_names=("cat", "dog"), options=ExportOptions(int8_io="float", seed=3),
                    file_names={("tflite", "int8"): "small.tflite"})
    back = ExportJob.from_json(json.loads(json.dumps(job.to_json())), reference=None)
    assert back == job and back.formats == [ExportTarget("tflite", "int8"), ExportTarget("saved_model")]
    assert back.path(("tflite", "int8")) == tmp_path / "small.tflite"
    assert back.path(("saved_model", "none")) == tmp_path / "saved_model"
    assert ExportJob(output_dir=tmp_path, formats=[], class_names=["a"], options=None).options == ExportOptions()


def test_the_tensorflow_process_exports_the_same_job(tiny, tmp_path):
    model, batches = tiny
    job = ExportJob(output_dir=tmp_path / "export", formats=[("tflite", "none")], class_names=["cat", "dog"],
                    parity_data=batches, file_names={("tflite", "none"): "m.tflite"})
    parity = export_in_tensorflow_process(model, job)
    assert parity["m.tflite"]["top1_agreement"] == 1.0 and parity["m.tflite"]["num_samples"] == 8
    assert (tmp_path / "export" / "labels.txt").read_text() == "cat\ndog\n"
    assert "m.tflite" in json.loads((tmp_path / "export" / "metadata.json").read_text())["files"]


def test_export_to_path_takes_the_model_and_its_batches(tiny, tmp_path):
    model, batches = tiny
    parity = export_to_path(model, tmp_path / "tiny.tflite", class_names=["cat", "dog"], parity_data=batches)
    assert parity["tiny.tflite"]["top1_agreement"] == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.txt", "metadata.json", "parity.json", "tiny.tflite"]
    with pytest.raises(ExportError, match="Expected a new output path"):
        export_to_path(model, tmp_path / "tiny.tflite", class_names=["cat", "dog"], parity_data=batches)
    with pytest.raises(ExportError, match="Expected an output file ending in .onnx"):
        export_to_path(model, tmp_path / "m.tflite", class_names=["cat", "dog"], parity_data=batches,
                       export_format="onnx")
    assert not Path(tmp_path / "m.tflite").exists()
