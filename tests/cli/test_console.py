"""What a user sees in the terminal: the quick start in a subprocess (real stderr), from the
first line to the summary; TensorBoard logs in the run folder; the console's parts one by one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What TensorFlow, absl, CUDA and oneDNN print on their own, and Python source locations.
NOISE = re.compile(r"I0000|W0000|E0000|absl::|oneDNN|cuda|cuInit|XNNPACK|\.py:\d*|Traceback")


def user_environment() -> dict[str, str]:
    """The environment of a user who set no TensorFlow variable (the test suite sets some)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "KERAS_BACKEND"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.fixture(scope="module")
def quick_start(tmp_path_factory):
    """The README quick start with tiny settings, as a user runs it: stdout and stderr apart."""
    run_dir = tmp_path_factory.mktemp("console") / "quickstart"
    command = [sys.executable, "-m", "kerasdl.cli", "run", "mobilenetv2-transfer", "--data", "sample",
               "--image-size", "32", "--epochs", "1", "--fine-tune-epochs", "0", "--weights", "none",
               "--set", "backbone.alpha=0.35", "--output", str(run_dir), "--overwrite"]
    done = subprocess.run(command, capture_output=True, text=True, env=user_environment(), timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return run_dir, done


def test_quick_start_shows_no_tensorflow_chatter_and_no_source_paths(quick_start):
    _, done = quick_start
    lines = (done.stdout + done.stderr).splitlines()
    noisy = [line for line in lines if NOISE.search(line)]
    assert noisy == [], "\n".join(noisy)
    assert done.stderr.strip() == "", done.stderr
    out = done.stdout.splitlines()
    assert out[0] == "Checking 200 files of sample ..."  # bad input stays a one-line error: no line before
    for status in ("computing the frozen backbone's features",
                   "Evaluating on 40 val images", "Exporting saved_model, tflite"):
        assert any(status in line for line in out), status
    # the library's words for its arguments read as the flags the user types
    assert "--no-feature-cache turns it off" in done.stdout and "feature_cache=" not in done.stdout


def test_a_run_logged_to_a_file_has_one_plain_line_per_epoch(quick_start):
    _, done = quick_start  # stdout is a pipe here, as in `kerasdl run ... > train.log`
    for code in ("\x1b", "\r", "\b"):
        assert code not in done.stdout, repr(code)
    epochs = [line for line in done.stdout.splitlines() if line.startswith("Epoch ")]
    assert len(epochs) == 1, epochs
    assert re.fullmatch(r"Epoch 1/1 - [\d.]+s - .*loss: [\d.]+ - .*val_loss: [\d.]+", epochs[0]), epochs[0]
    assert ", 1 epoch, " in done.stdout  # the phase line, in the singular


def test_progress_off_a_terminal_is_plain_and_on_one_live(capsys, monkeypatch):
    from kerasdl._util import console
    from kerasdl.training.progress import EpochLines, fit_progress

    bar = console.progress_bar(300, unit_name="file")  # the scan's "Checking 300 files ..." bar
    for done in (100, 200, 300):
        bar.update(done)
    out = capsys.readouterr().out
    assert out.startswith("300/300 - ") and out.count("\n") == 1 and "\x1b" not in out and "\r" not in out
    verbose, callbacks = fit_progress("auto")
    assert verbose == 0 and [type(c) for c in callbacks] == [EpochLines]
    assert fit_progress(0) == (0, []) and fit_progress(1) == (1, [])
    monkeypatch.setattr(console, "stdout_is_interactive", lambda: True)
    assert console.progress_bar(3).verbose == 1


def test_the_file_check_off_a_terminal_says_what_it_counted_in_one_line(tmp_path, capsys):
    """A source split into train/ and val/: one line for all its files, not a bare count per part."""
    from kerasdl.data.load import load_labelled_files
    from tests.support import write_class_folder

    for split, count in (("train", 112), ("val", 16)):
        write_class_folder(tmp_path / split, per_class=count, size=8)
    capsys.readouterr()
    load_labelled_files(tmp_path, progress=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"Checking 256 files of {tmp_path} ..."
    assert len(lines) == 2 and re.fullmatch(r"Checked 256 files in [\d.]+ s\.", lines[1]), lines


def test_quick_start_ends_with_a_summary(quick_start):
    run_dir, done = quick_start
    out = done.stdout.splitlines()
    done_at = next(i for i, line in enumerate(out) if line.startswith("Done: accuracy"))
    summary = "\n".join(out[done_at:])
    assert re.search(r"best val_auc: \d\.\d{4} \(epoch \d+\)", summary), summary
    assert f"report:   {run_dir / 'report.md'}" in summary
    assert re.search(r"files: +model\.keras \([\d.]+ [KM]B\), export/model\.tflite \([\d.]+ [KM]B\), "
                     r"export/saved_model/ \([\d.]+ [KM]B\)", summary), summary
    assert out[-1] == f"  logs:     tensorboard --logdir {run_dir / 'logs'}"


def event_tags(folder: Path) -> set[str]:
    import tensorflow as tf

    tags = set()
    files = sorted(folder.glob("events.out.tfevents.*"))
    assert files, f"no event file in {folder}"
    for path in files:
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            tags.update(value.tag for value in event.summary.value)
    return tags


def test_quick_start_writes_tensorboard_logs(quick_start):
    run_dir, _ = quick_start
    logs = run_dir / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["evaluation", "head"]  # --fine-tune-epochs 0
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= event_tags(logs / "head" / "train")
    assert {"epoch_loss", "epoch_accuracy"} <= event_tags(logs / "head" / "validation")
    evaluation = event_tags(logs / "evaluation")
    assert {"evaluation/accuracy", "evaluation/roc_auc", "evaluation/confusion_matrix",
            "evaluation/roc"} <= evaluation


def test_no_tensorboard_writes_no_logs(tmp_path, tiny_recipe, image_folder):
    from kerasdl.app.run import run_recipe
    from kerasdl.training.engine import TrainOptions

    tiny_recipe.phases[1].epochs = 0
    result = run_recipe(tiny_recipe, str(image_folder), output_dir=tmp_path / "run", verbose=0,
                        training_options=TrainOptions(tensorboard=False))
    assert not (result.run_dir / "logs").exists()
    assert result.run_dir.joinpath("model.keras").is_file()


def test_every_phase_has_its_own_log_folder(tmp_path, tiny_recipe, image_folder):
    from kerasdl.data.load import load_data
    from kerasdl.models.classifier import build_classifier
    from kerasdl.training.engine import TrainOptions, train

    data = load_data(image_folder, image_size=32, batch_size=4)
    model = build_classifier("mobilenetv2", 2, image_size=32, weights=None, backbone_options={"alpha": 0.35})
    train(model, data, tiny_recipe, run_dir=tmp_path, verbose=0, options=TrainOptions(checkpoints=False))
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["fine_tune", "head"]
    steps = {}
    import tensorflow as tf

    for phase in ("head", "fine_tune"):
        for path in (tmp_path / "logs" / phase / "validation").glob("events.out.tfevents.*"):
            for event in tf.compat.v1.train.summary_iterator(str(path)):
                if any(v.tag == "epoch_accuracy" for v in event.summary.value):
                    steps[phase] = event.step
    assert steps == {"head": 0, "fine_tune": 1}  # run-wide epoch numbers: one axis for both phases


# --- the parts --------------------------------------------------------------------------------

def test_held_stderr_keeps_kerasdl_lines_and_drops_native_notes(capfd):
    from kerasdl._util.native_output import held_stderr

    with held_stderr():
        os.write(2, b"I0000 00:00:1796172819.883749   17361 port.cc:153] oneDNN custom operations are on.\n")
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"a line of our own\n")
    assert capfd.readouterr().err == "a line of our own\n"


def test_held_stderr_gives_everything_back_when_the_block_fails(capfd):
    from kerasdl._util.native_output import held_stderr

    with pytest.raises(RuntimeError), held_stderr():
        os.write(2, b"E0000 00:00:1.0 cuda_platform.cc:52] failed call to cuInit\n")
        raise RuntimeError("import failed")
    assert "cuInit" in capfd.readouterr().err


def test_warnings_are_one_readable_line_and_framework_warnings_are_dropped(capsys):
    from kerasdl.cli.console import ConsoleOptions, setup_console

    with warnings.catch_warnings():
        setup_console(ConsoleOptions(), user_tf_log_level="2")
        warnings.warn_explicit("Skipping 3 files of data/: not an image", UserWarning,
                               "/somewhere/kerasdl/data/load.py", 86, module="kerasdl.data.load")
        warnings.warn_explicit("`build()` was called on layer", UserWarning,
                               "/site-packages/keras/src/layers/layer.py", 400, module="keras.src.layers.layer")
        warnings.warn_explicit("old API", DeprecationWarning, "/x/kerasdl/y.py", 1, module="kerasdl.y")
    err = capsys.readouterr().err
    assert err == "Warning: Skipping 3 files of data/: not an image\n"


@pytest.mark.parametrize("verbose", [False, True])
def test_framework_warnings_pass_only_with_verbose(verbose):
    from kerasdl.cli.console import ConsoleOptions, setup_console

    with warnings.catch_warnings():
        setup_console(ConsoleOptions(verbose=verbose), user_tf_log_level="2")
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn_explicit("`build()` was called on layer", UserWarning,
                                   "/site-packages/keras/src/layers/layer.py", 400,
                                   module="keras.src.layers.layer")
    assert len(caught) == (1 if verbose else 0)


def test_the_first_tensorflow_import_is_held():
    """In a fresh process: set up the console, import TensorFlow, nothing reaches stderr."""
    code = ("from kerasdl.cli.console import ConsoleOptions, setup_console; "
            "import importlib.util; importlib.util.find_spec('tensorflow'); "  # a look is not the import
            "setup_console(ConsoleOptions()); import tensorflow as tf; tf.constant(1) + 1; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=user_environment(), timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok" and done.stderr == ""


def test_verbose_and_quiet_exclude_each_other():
    from click.testing import CliRunner

    from kerasdl.cli.commands import main

    result = CliRunner().invoke(main, ["--verbose", "--quiet", "list"])
    assert result.exit_code == 2 and "pick one" in result.output


def test_the_recorded_command_keeps_no_tensorboard():
    import click

    from kerasdl.cli import main
    from kerasdl.cli.flags import reproducing_command

    command = main.commands["run"]
    with click.Context(command, info_name="run") as context:
        context.params = {param.name: param.get_default(context) for param in command.params}
        context.params.update(recipe="tiny", tensorboard=False, quiet=True)
        assert reproducing_command(context) == "kerasdl run tiny --quiet --no-tensorboard"
        context.params.update(tensorboard=True)
        assert reproducing_command(context) == "kerasdl run tiny --quiet"


def test_quiet_predict_prints_only_its_result(tmp_path, image_folder):
    import keras
    from click.testing import CliRunner

    from kerasdl.cli.commands import main

    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2, activation="softmax")])
    model.save(tmp_path / "model.keras")
    result = CliRunner().invoke(main, ["--quiet", "predict", str(tmp_path / "model.keras"), str(image_folder),
                                       "--output", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    assert result.output == f"Predicted 16 images (0 skipped). Wrote {tmp_path / 'p.csv'}\n"
