"""The training engine through `kerasdl run` in subprocesses: SIGKILL and
--resume, --deterministic, refusals, and distribution (slow: each process
starts TensorFlow)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import TINY_RECIPE_FILE, write_class_folder

RECIPE = str(TINY_RECIPE_FILE)
KERASDL = [sys.executable, "-m", "kerasdl.cli"]

pytestmark = pytest.mark.slow


def kerasdl_run(data, output, *extra, env=None, check=True):
    command = [*KERASDL, "run", RECIPE, "--data", str(data), "--output", str(output), "--quiet",
               "--seed", "3", "--deterministic", "--fine-tune-epochs", "8", *extra]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    if check:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def history_epochs(run_dir: Path) -> list[int]:
    with open(run_dir / "history.csv", newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def stripes(tmp_path_factory) -> Path:
    return write_class_folder(tmp_path_factory.mktemp("cli") / "stripes", per_class=8, size=24)


@pytest.fixture(scope="module")
def whole_run(stripes, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("whole") / "run"
    kerasdl_run(stripes, output)
    return output


def test_deterministic_runs_write_identical_metrics(stripes, whole_run, tmp_path):
    kerasdl_run(stripes, tmp_path / "again")
    assert (tmp_path / "again" / "metrics.json").read_text() == (whole_run / "metrics.json").read_text()
    config = json.loads((whole_run / "config.json").read_text())
    assert config["seed"] == 3 and config["options"]["deterministic"] is True
    assert config["environment"]["packages"]["tensorflow"] and config["environment"]["devices"]


def test_sigkill_in_second_phase_then_resume_matches_the_whole_run(stripes, whole_run, tmp_path):
    output = tmp_path / "killed"
    command = [*KERASDL, "run", RECIPE, "--data", str(stripes), "--output", str(output), "--quiet",
               "--seed", "3", "--deterministic", "--fine-tune-epochs", "8"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_file = output / "checkpoints" / "state.json"
    try:
        while process.poll() is None:
            try:
                state = json.loads(state_file.read_text())
            except (OSError, ValueError):
                state = {}
            if state.get("phase_index") == 1 and state.get("epochs_done_in_phase", 0) >= 2:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (output / "metrics.json").exists()

    refused = kerasdl_run(stripes, output, check=False)
    assert refused.returncode == 1
    assert "Error: --output: " in refused.stderr
    assert "--resume DIR" in refused.stderr and "--overwrite" in refused.stderr

    command = [*KERASDL, "run", RECIPE, "--data", str(stripes), "--resume", str(output), "--quiet",
               "--seed", "3", "--deterministic", "--fine-tune-epochs", "8"]
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming at epoch" in resumed.stdout
    assert history_epochs(output) == list(range(1, 11)) == history_epochs(whole_run)
    assert json.loads((output / "metrics.json").read_text()) == json.loads(
        (whole_run / "metrics.json").read_text()
    )


def test_resume_without_a_checkpoint_is_one_clear_error(stripes, tmp_path):
    output = tmp_path / "run"
    output.mkdir()
    (output / "config.json").write_text(json.dumps({"status": "running"}))
    done = kerasdl_run(stripes, output, "--resume", str(output), check=False)
    assert done.returncode == 1
    assert "Error: Expected a checkpoint" in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in output.iterdir()) == ["config.json"]  # nothing written


def test_mirrored_over_two_logical_cpus(stripes, tmp_path):
    env = {**os.environ, "KERASDL_CPU_DEVICES": "2"}
    command = [*KERASDL, "run", RECIPE, "--data", str(stripes), "--output", str(tmp_path / "run"),
               "--quiet", "--distribute", "mirrored", "--epochs", "1", "--fine-tune-epochs", "1"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "over 2 replicas" in done.stdout
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["num_samples"] > 0


def test_jax_backend_data_parallel_over_two_cpu_devices(stripes, tmp_path):
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    command = [*KERASDL, "run", RECIPE, "--data", str(stripes), "--output", str(tmp_path / "run"),
               "--quiet", "--distribute", "mirrored", "--epochs", "1", "--fine-tune-epochs", "1"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "DataParallel) over 2 devices" in done.stdout
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["environment"]["backend"] == "jax" and len(config["environment"]["devices"]) == 2


def test_mixed_precision_run_saves_and_exports_float32(stripes, tmp_path):
    command = [*KERASDL, "run", RECIPE, "--data", str(stripes), "--output", str(tmp_path / "run"),
               "--quiet", "--mixed-precision", "--export", "tflite", "--epochs", "1",
               "--fine-tune-epochs", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Mixed precision" in done.stdout or "mixed" in done.stdout.lower()
    assert (tmp_path / "run" / "export" / "model.tflite").is_file()
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["options"]["dtype_policy"].startswith("mixed_")
