"""Every command on the JAX and PyTorch backends (issue 22): `kerasdl --backend`, and the
run folder, exports and commands a run there gives.

The checks of the flag run in this process. A backend is fixed when Keras first loads,
so each other backend runs in subprocesses; one that is not installed skips, saying so.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kerasdl.cli.commands import main
from tests.support import TINY_RECIPE_FILE, write_class_folder

KERASDL = [sys.executable, "-m", "kerasdl.cli"]
ROOT = Path(__file__).resolve().parents[2]


def _environment(**extra) -> dict[str, str]:
    """This process's environment without a backend choice, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    return {**env, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def _require(backend: str) -> None:
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (pip install 'kerasdl[{backend}]'), so the "
                    f"--backend {backend} path cannot run here")


# ------------------------------------------------------------------ the flag


def test_an_unknown_backend_is_one_line():
    result = CliRunner().invoke(main, ["--backend", "mxnet", "list"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: Expected backend from: tensorflow, jax, torch. Received: --backend mxnet."]


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_an_uninstalled_backend_names_its_extra(backend, monkeypatch):
    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == backend else found(name, *a))
    result = CliRunner().invoke(main, ["--backend", backend, "list"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: Expected the {backend} backend to be installed. Received: --backend {backend}, but the "
        f"{backend} package is not installed. Run `pip install 'kerasdl[{backend}]'`."]
    monkeypatch.setenv("KERAS_BACKEND", backend)  # the variable is checked the same way
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 1 and f"Received: KERAS_BACKEND={backend}, but" in result.output
    assert f"kerasdl[{backend}]" in result.output


def test_the_backend_is_chosen_before_keras_loads(monkeypatch):
    import keras

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())  # "installed"
    other = "jax" if keras.backend.backend() != "jax" else "torch"
    result = CliRunner().invoke(main, ["--backend", other, "list"])
    assert result.exit_code == 1
    assert f"Keras is loaded here with {keras.backend.backend()}" in result.output
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    assert CliRunner().invoke(main, ["--backend", keras.backend.backend(), "list"]).exit_code == 0


def test_the_flag_starts_no_framework():
    code = ("import sys; from click.testing import CliRunner; from kerasdl.cli import main; "
            "result = CliRunner().invoke(main, ['--backend', 'tensorflow', 'list']); "
            "assert result.exit_code == 0, result.output; "
            "import os; print(os.environ['KERAS_BACKEND'], 'keras' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_environment())
    assert done.stdout.split() == ["tensorflow", "False"], done.stderr[-2000:]


# ------------------------------------------------------------ runs and commands


@pytest.fixture(scope="module")
def stripes(tmp_path_factory) -> Path:
    return write_class_folder(tmp_path_factory.mktemp("backends") / "stripes", per_class=8, size=24)


@pytest.fixture(scope="module", params=["jax", "torch"])
def backend_run(request, stripes, tmp_path_factory):
    """`kerasdl --backend B run` of the tiny recipe: both phases (the head on cached features,
    then layer-wise rates with early stopping), with a TFLite and SavedModel export."""
    backend = request.param
    _require(backend)
    output = tmp_path_factory.mktemp(f"run_{backend}") / "run"
    command = [*KERASDL, "--backend", backend, "run", str(TINY_RECIPE_FILE), "--data", str(stripes),
               "--output", str(output), "--quiet", "--epochs", "1", "--fine-tune-epochs", "2",
               "--set", "phases.fine_tune.early_stopping=1", "--steps-per-execution", "2",
               "--set", "head.pooling=auto",  # the transfer recipes' probe heads, as a default run has
               "--export", "tflite,saved_model"]
    done = subprocess.run(command, capture_output=True, text=True, env=_environment(), timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return backend, output, done.stdout


def test_a_run_on_another_backend_gives_the_whole_run_folder(backend_run):
    backend, output, stdout = backend_run
    config = json.loads((output / "config.json").read_text())
    assert config["status"] == "complete" and config["environment"]["backend"] == backend
    assert [phase["name"] for phase in config["training"]["phases"]] == ["head", "fine_tune"]
    assert config["training"]["phases"][0]["feature_cache"] is True
    assert config["head_pooling"]["chosen"] in ("top", "blocks")
    assert f"on the {backend} backend" in (output / "report.md").read_text()
    assert "x0.85 per block toward the input" in stdout  # layer-wise rates
    if backend == "torch":
        assert "steps_per_execution=2: the torch backend runs one batch per call" in stdout
    assert (output / "export" / "model.tflite").is_file()
    assert (output / "export" / "saved_model" / "saved_model.pb").is_file()
    parity = json.loads((output / "export" / "parity.json").read_text())
    assert set(parity) == {"model.tflite", "saved_model"}
    for check in parity.values():
        assert check["top1_agreement"] == 1.0 and check["max_abs_probability_difference"] < 1e-4
    assert (f"Exported by a TensorFlow-backend process from the {backend} model; top-1 agreement with "
            f"it on 4 validation images: model.tflite 1.0000, saved_model 1.0000.") in stdout


_COMMANDS = """
import json, sys, threading, urllib.request
from pathlib import Path
import keras
from click.testing import CliRunner
from kerasdl.cli.commands import main
import tests.support.training_tiny_recipe  # registers its tiny backbone for the experiment
from kerasdl.backbones.build import build_backbone

run, data, scratch = map(Path, sys.argv[1:4])
assert keras.backend.backend() == sys.argv[4], keras.backend.backend()
build_backbone("tiny_cnn", image_size=32, weights=None).save_weights(scratch / "tiny.weights.h5")
commands = {
    "evaluate": ["evaluate", str(run / "model.keras"), "--data", str(data), "--output", str(scratch / "eval")],
    "predict": ["predict", str(run / "model.keras"), str(data), "--output", str(scratch / "keras.csv")],
    "predict-tflite": ["predict", str(run / "export" / "model.tflite"), str(data),
                       "--output", str(scratch / "tflite.csv")],
    "export": ["export", str(run / "model.keras"), "--format", "tflite", "--quantize", "float16",
               "--output", str(scratch / "model_fp16.tflite")],
    "lr-find": ["lr-find", sys.argv[5], "--data", str(data), "--steps", "20", "--output", str(scratch / "lr")],
    "experiment": ["experiment", "transfer-vs-scratch", "--data", str(data), "--backbone", "tiny_cnn",
                   "--weights", str(scratch / "tiny.weights.h5"), "--fractions", "1", "--image-size", "32",
                   "--epochs", "1", "--batch-size", "4", "--output", str(scratch / "tvs")],
}
for name, args in commands.items():
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, (name, result.output, result.exception)
    print(name, "ok:", " | ".join(result.output.strip().splitlines()[-2:]))

from kerasdl.app.demo import DemoOptions, make_demo_server
server = make_demo_server(run / "model.keras", DemoOptions(port=0))
threading.Thread(target=server.serve_forever, daemon=True).start()
image = next(data.rglob("*.png")).read_bytes()
request = urllib.request.Request(f"http://127.0.0.1:{server.server_address[1]}/predict", data=image,
                                 method="POST", headers={"X-File-Name": "a.png"})
with urllib.request.urlopen(request, timeout=60) as response:
    print("demo ok:", sorted(json.loads(response.read())))
server.shutdown()
"""


@pytest.mark.slow  # minutes per backend; `tox -e jax` and `tox -e torch` run it
def test_every_command_runs_on_another_backend(backend_run, stripes, tmp_path):
    backend, output, _ = backend_run
    done = subprocess.run(
        [sys.executable, "-c", _COMMANDS, str(output), str(stripes), str(tmp_path), backend,
         str(TINY_RECIPE_FILE)],
        capture_output=True, text=True, cwd=ROOT, env=_environment(KERAS_BACKEND=backend), timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in ("evaluate", "predict", "predict-tflite", "export", "lr-find", "experiment", "demo"):
        assert f"{name} ok:" in done.stdout, done.stdout
    assert f"from the {backend} model" in done.stdout  # the export ran in a TensorFlow process
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["num_samples"] == 16
    assert (tmp_path / "model_fp16.tflite").is_file() and (tmp_path / "tvs" / "transfer_vs_scratch.csv").is_file()


@pytest.mark.slow  # minutes per backend; `tox -e jax` and `tox -e torch` run it
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_k_fold_run_on_another_backend_ships_its_ensemble(backend, stripes, tmp_path):
    _require(backend)
    output = tmp_path / "run"
    command = [*KERASDL, "--backend", backend, "run", str(TINY_RECIPE_FILE), "--data", str(stripes),
               "--output", str(output), "--quiet", "--folds", "2", "--epochs", "1", "--fine-tune-epochs", "1",
               "--export", "tflite"]
    done = subprocess.run(command, capture_output=True, text=True, env=_environment(), timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["folds"] == 2 and len(metrics["fold_metrics"]) == 2 and metrics["num_samples"] == 16
    assert (output / "oof_predictions.csv").is_file()
    for fold in (1, 2):
        fold_config = json.loads((output / "folds" / f"fold_{fold}" / "config.json").read_text())
        assert fold_config["environment"]["backend"] == backend
    parity = json.loads((output / "export" / "parity.json").read_text())["model.tflite"]
    assert parity["top1_agreement"] == 1.0  # the averaged fold models, exported by TensorFlow
    assert f"from the {backend} model" in done.stdout
