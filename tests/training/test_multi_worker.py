"""`--distribute multi-worker`: two worker processes on 127.0.0.1 ports train
one model with MultiWorkerMirroredStrategy (TF_CONFIG), and the refusals."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kerasdl.cli.commands import main
from kerasdl.errors import RecipeError
from kerasdl.training.distribute import is_chief
from kerasdl.training.engine import TrainOptions
from kerasdl.training.multi_worker import (
    check_multi_worker_run,
    fit_distributed,
    local_tf_configs,
    weights_fingerprint,
)
from tests.support import TINY_RECIPE_FILE, write_class_folder

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason=f"multi-worker training is tf.distribute's, so the tensorflow backend's only "
           f"(check_distribute refuses {keras.backend.backend()})")

RECIPE = str(TINY_RECIPE_FILE)
KERASDL = [sys.executable, "-m", "kerasdl.cli"]
# No dropout, so one process and two workers take exactly the same steps.
TINY = ["--quiet", "--seed", "3", "--epochs", "2", "--fine-tune-epochs", "1", "--set", "head.dropout=0"]
TIMEOUT = 600  # a hung collective fails the test instead of blocking the suite


def tf_config(ports: list[int], index: int) -> str:
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def launch_workers(data: Path, outputs: list[Path], scratch: Path, *extra: str,
                   own: list[list[str]] | None = None) -> list[subprocess.Popen]:
    """Starts one `kerasdl run` per output folder as the workers of one cluster.

    `own` holds each worker's own extra arguments."""
    workers = []
    own = own or [[] for _ in outputs]
    for output, config, arguments in zip(outputs, local_tf_configs(len(outputs)), own, strict=True):
        # TMPDIR: where a non-chief keeps its scratch run folder (checked to be left empty).
        env = {**os.environ, "TF_CONFIG": config, "TMPDIR": str(scratch)}
        command = [*KERASDL, "run", RECIPE, "--data", str(data), "--output", str(output),
                   "--distribute", "multi-worker", *TINY, *extra, *arguments]
        workers.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True))
    return workers


def finish(workers: list[subprocess.Popen]) -> list[tuple[int, str]]:
    """Waits for the workers (killing them past TIMEOUT): (exit code, output) of each."""
    logs = []
    try:
        for worker in workers:
            logs.append(worker.communicate(timeout=TIMEOUT)[0])
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    return [(worker.returncode, log) for worker, log in zip(workers, logs)]


def start_workers(data: Path, outputs: list[Path], scratch: Path, *extra: str,
                  own: list[list[str]] | None = None) -> list[tuple[int, str]]:
    """`launch_workers`, then `finish`."""
    return finish(launch_workers(data, outputs, scratch, *extra, own=own))


def run_workers(data: Path, outputs: list[Path], scratch: Path, *extra: str) -> list[str]:
    """`start_workers`, checking that every worker succeeded; returns their output."""
    done = start_workers(data, outputs, scratch, *extra)
    for code, log in done:
        assert code == 0, log[-4000:]
    return [log for _, log in done]


def fingerprint_in(log: str) -> str:
    found = re.findall(r"Trained weights fingerprint: (\w+)", log)
    assert len(found) == 1, log[-3000:]
    return found[0]


def history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def stripes(tmp_path_factory) -> Path:
    """8 cats, 4 dogs: 9 training images, so the last batch (1 image) leaves a replica empty."""
    folder = write_class_folder(tmp_path_factory.mktemp("mw") / "stripes", per_class=8, size=24)
    for index in range(4):
        (folder / "dog" / f"dog_{index}.png").unlink()
    return folder


def test_two_workers_write_one_run_holding_the_weights_both_trained(stripes, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    chief, other = tmp_path / "chief", tmp_path / "other"
    # The export (and its parity check, which loads the SavedModel) runs outside the strategy.
    logs = run_workers(stripes, [chief, other], scratch, "--epochs", "1", "--export", "saved_model")

    # Only the chief writes the run; the other worker leaves nothing anywhere.
    assert not other.exists() and list(scratch.iterdir()) == []
    for name in ("metrics.json", "model.keras", "config.json", "history.csv", "report.md"):
        assert (chief / name).exists(), name
    assert not (chief / "checkpoints").exists()
    assert json.loads((chief / "export" / "parity.json").read_text())["saved_model"]["top1_agreement"] == 1.0
    rows = history(chief)
    assert [(int(row["epoch"]), row["phase"]) for row in rows] == [(1, "head"), (2, "fine_tune")]
    assert "over 2 replicas" in logs[0]

    # Both workers hold the same weights, and the chief saved them.
    assert fingerprint_in(logs[0]) == fingerprint_in(logs[1])
    saved = keras.saving.load_model(chief / "model.keras")
    assert weights_fingerprint(saved) == fingerprint_in(logs[0])
    # The other worker waited for the chief's export instead of leaving early,
    # which TensorFlow's coordination service reports as a crash.
    assert "stopped sending heartbeats" not in logs[0]


def test_a_worker_that_stops_stops_the_others_with_one_line(stripes, tmp_path):
    chief, other = tmp_path / "chief", tmp_path / "other"
    chief.mkdir()
    (chief / "config.json").write_text("{}")  # a used run folder: the chief refuses it
    (chief_code, chief_log), (other_code, other_log) = start_workers(stripes, [chief, other], tmp_path)
    assert chief_code == 1 and "Error: --output: Expected --output to be a new or empty folder" in chief_log
    assert other_code == 1, other_log[-3000:]
    assert "Error: Expected every worker named in TF_CONFIG to keep running" in other_log
    assert "Traceback" not in other_log
    assert sorted(p.name for p in chief.iterdir()) == ["config.json"] and not other.exists()


def test_workers_started_with_different_jobs_are_refused(stripes, tmp_path):
    chief, other = tmp_path / "chief", tmp_path / "other"
    done = start_workers(stripes, [chief, other], tmp_path, own=[[], ["--batch-size", "2"]])
    for code, log in done:
        assert code == 1, log[-3000:]
        assert "Error: Expected every worker to run the same job" in log
        assert "training batches [3, 5]" in log and "Traceback" not in log


@pytest.mark.slow
def test_two_workers_take_the_steps_of_one_process_with_the_global_batch(stripes, tmp_path):
    chief, other = tmp_path / "chief", tmp_path / "other"
    weighted = ["--class-weight", "auto", "--set", "phases.head.label_smoothing=0.1"]
    logs = run_workers(stripes, [chief, other], tmp_path, *weighted)
    assert fingerprint_in(logs[0]) == fingerprint_in(logs[1])
    rows = history(chief)
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]

    single = tmp_path / "single"
    done = subprocess.run([*KERASDL, "run", RECIPE, "--data", str(stripes), "--output", str(single),
                           "--no-feature-cache", *TINY, *weighted], capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for one, two in zip(history(single), rows, strict=True):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
            assert float(two[key]) == pytest.approx(float(one[key]), abs=1e-4), key
    expected = keras.saving.load_model(single / "model.keras").get_weights()
    saved = keras.saving.load_model(chief / "model.keras").get_weights()
    for a, b in zip(expected, saved, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-4)
    assert json.loads((chief / "metrics.json").read_text())["accuracy"] == \
        json.loads((single / "metrics.json").read_text())["accuracy"]


@pytest.mark.parametrize(("config", "message"), [
    ("{not json", "Expected TF_CONFIG as JSON"),
    ('{"task": {"type": "worker", "index": 0}}', "Expected TF_CONFIG as JSON"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}',
     "Expected TF_CONFIG's task index"),
])
def test_bad_tf_config_is_one_line(config, message, tmp_path):
    result = CliRunner().invoke(
        main, ["run", RECIPE, "--data", str(tmp_path), "--output", str(tmp_path / "run"),
               "--distribute", "multi-worker"],
        env={"TF_CONFIG": config},
    )
    assert result.exit_code == 1
    assert f"Error: {message}" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_resume_under_multi_worker_is_refused(tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(
        main, ["run", RECIPE, "--data", str(tmp_path), "--resume", str(run),
               "--distribute", "multi-worker"],
        env={"TF_CONFIG": tf_config([29411, 29412], 0)},
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: --resume: Expected a new run with --distribute multi-worker")
    assert "only the chief holds the checkpoint" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not run.exists()


@pytest.mark.parametrize("options", [TrainOptions(jit_compile=True), TrainOptions(steps_per_execution=4)])
def test_xla_and_steps_per_execution_are_refused_across_workers(options, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", tf_config([29411, 29412], 0))
    with pytest.raises(RecipeError, match="Expected neither jit_compile=True nor steps_per_execution above 1"):
        check_multi_worker_run("multi-worker", resume=False, training_options=options)
    check_multi_worker_run("mirrored", resume=True, training_options=options)  # not multi-worker
    check_multi_worker_run("multi-worker", resume=False, training_options=TrainOptions())


def test_fit_distributed_outside_the_strategy_is_refused():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(RecipeError, match="MultiWorkerMirroredStrategy scope"):
        fit_distributed(model, [(np.zeros((2, 2), "float32"), np.zeros(2, "int32"))])


@pytest.mark.parametrize(("cluster", "task", "chief"), [
    ({"worker": ["a:1", "b:1"]}, ("worker", 0), True),
    ({"worker": ["a:1", "b:1"]}, ("worker", 1), False),
    ({"chief": ["c:1"], "worker": ["a:1"]}, ("chief", 0), True),
    ({"chief": ["c:1"], "worker": ["a:1"]}, ("worker", 0), False),
])
def test_only_the_chief_writes_the_run(cluster, task, chief, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": task[0], "index": task[1]}}))
    assert is_chief("multi-worker") is chief
    assert is_chief("mirrored") is True


def test_local_tf_configs_name_one_cluster_of_distinct_ports():
    configs = [json.loads(text) for text in local_tf_configs(3)]
    addresses = configs[0]["cluster"]["worker"]
    assert len(set(addresses)) == 3 and all(a.startswith("127.0.0.1:") for a in addresses)
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    assert all(c["cluster"] == configs[0]["cluster"] for c in configs)


ONE_WORKER_SCRIPT = """
import json, keras, numpy as np, tensorflow as tf
from kerasdl.training.multi_worker import fit_distributed
from tests.support import TINY_RECIPE_FILE

strategy = tf.distribute.MultiWorkerMirroredStrategy()  # no TF_CONFIG: one local worker
x = np.random.default_rng(0).normal(size=(22, 4)).astype("float32")
y = (x.sum(axis=1) > 0).astype("int32")
data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)  # last batch of 6

def model_in(scope):
    with scope:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                                  keras.layers.Dense(2, activation="softmax")])
        model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(),
                      metrics=["accuracy"])
    return model

fitted = model_in(tf.distribute.get_strategy().scope())
history = fitted.fit(data, validation_data=data, epochs=3, verbose=0).history
distributed, logs = model_in(strategy.scope()), []
record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, row: logs.append(dict(row)))
with strategy.scope():
    fit_distributed(distributed, data, validation_data=data, epochs=3, callbacks=[record], verbose=0)
    nan_logs = []
    stop = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, row: nan_logs.append(row["loss"]))
    fit_distributed(model_in(strategy.scope()), data, epochs=3, callbacks=[stop], verbose=0,
                    class_weight={0: float("nan"), 1: 1.0})  # a NaN loss
print(json.dumps({
    "weights": max(float(np.abs(a - b).max())
                   for a, b in zip(fitted.get_weights(), distributed.get_weights())),
    "fit": history, "distributed": logs, "nan_epochs": len(nan_logs),
}))
"""


def test_fit_distributed_matches_fit_and_stops_on_nan():
    done = subprocess.run([sys.executable, "-c", ONE_WORKER_SCRIPT], capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["weights"] < 1e-5
    for epoch, logs in enumerate(result["distributed"]):
        for key, value in logs.items():
            assert value == pytest.approx(result["fit"][key][epoch], abs=1e-5), key
    assert result["nan_epochs"] == 1  # a NaN loss stops after the epoch, as TerminateOnNaN would


@pytest.mark.slow
def test_a_killed_multi_worker_run_resumes_on_one_machine(stripes, tmp_path):
    chief, other = tmp_path / "chief", tmp_path / "other"
    longer = ["--fine-tune-epochs", "6"]
    workers = launch_workers(stripes, [chief, other], tmp_path, *longer)
    state_file = chief / "checkpoints" / "state.json"
    try:
        while workers[0].poll() is None:
            try:
                state = json.loads(state_file.read_text())
            except (OSError, ValueError):
                state = {}
            if state.get("phase_index") == 1 and state.get("epochs_done_in_phase", 0) >= 2:
                workers[0].send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        (_, _), (other_code, other_log) = finish(workers)
    assert workers[0].returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert other_code == 1 and "Expected every worker named in TF_CONFIG to keep running" in other_log

    resumed = subprocess.run([*KERASDL, "run", RECIPE, "--data", str(stripes), "--resume", str(chief),
                              *TINY, *longer], capture_output=True, text=True, timeout=TIMEOUT)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming at epoch" in resumed.stdout
    assert [int(row["epoch"]) for row in history(chief)] == list(range(1, 9))
