"""An error about one argument of the Python API starts with the flag that sets it.

The library names its arguments (`output_dir`, `csv_format`); the CLI puts the
flag of this command that sets the argument in front (`Error: --output: ...`),
and the exit status stays 1.
"""

import json

import click
from click.testing import CliRunner

from kerasdl.cli.commands import _flag_of, export, main, run
from tests.support import TINY_RECIPE_FILE, write_class_folder


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_predict_names_output_for_a_folder(tmp_path):
    line = one_error_line(invoke("predict", tmp_path / "model.keras", tmp_path, "--output", tmp_path))
    assert line.startswith("Error: --output: Expected an output file. Received: ")


def test_resume_names_the_flag_that_gave_the_run_folder(tmp_path):
    images = write_class_folder(tmp_path / "images", per_class=2, size=16)
    run_dir = images / "run"  # an interrupted run with a checkpoint, inside the data
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "state.json").write_text("{}")
    (run_dir / "config.json").write_text(json.dumps({"kerasdl_run": 1, "status": "running"}))
    line = one_error_line(invoke("run", TINY_RECIPE_FILE, "--data", images, "--resume", run_dir))
    assert line.startswith("Error: --resume: Expected output_dir= apart from the data.")


def test_the_flag_of_an_argument_the_cli_names_otherwise():
    with click.Context(run):
        assert _flag_of("output_dir") == "--output"  # click.option("--output", "output_dir")
        assert _flag_of("lr_auto") == "--lr"  # --lr auto is lr_auto=True
        assert _flag_of("assignments") == "--set"
        assert _flag_of("quantize") is None  # run has no --quantize: the message stands alone
    with click.Context(export):
        assert (_flag_of("export_format"), _flag_of("data_source"), _flag_of("output")) == (
            "--format", "--data", "--output")


def test_library_words_for_arguments_read_as_flags_on_the_command_line():
    from kerasdl.cli.commands import in_flags

    @click.command()
    @click.option("--overwrite", is_flag=True)
    @click.option("--image-size", type=int)
    @click.option("--resume", metavar="DIR")
    @click.option("--monitor")
    @click.option("--tensorboard/--no-tensorboard", default=True)
    @click.option("--no-feature-cache", is_flag=True)
    def command(**_):
        pass

    with click.Context(command):
        assert in_flags("Received: x, which exists. Pass overwrite=True to replace it.") == (
            "Received: x, which exists. Pass --overwrite to replace it.")
        assert in_flags("Received: image_size=20.") == "Received: --image-size 20."
        assert in_flags("Pass resume=True to continue it") == "Pass --resume DIR to continue it"
        assert in_flags("Pass monitor='val_accuracy', or tensorboard=False.") == (
            "Pass --monitor val_accuracy, or --no-tensorboard.")
        assert in_flags("Resume on one machine (monitor=None).") == "Resume on one machine (without --monitor)."
        assert in_flags("(feature_cache=False turns it off)") == "(--no-feature-cache turns it off)"
        # Recipe fields, and names no option sets, stay as they are.
        kept = "Set phases.fine_tune.learning_rate=3e-4 or weights='none'."
        assert in_flags(kept) == kept
    assert in_flags("Pass overwrite=True.") == "Pass overwrite=True."  # no command: the Python words


def test_a_run_into_a_run_folder_says_the_flag_that_replaces_it(tmp_path):
    images = write_class_folder(tmp_path / "images", per_class=2, size=16)
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"kerasdl_run": 1, "status": "complete"}))
    line = one_error_line(invoke("run", TINY_RECIPE_FILE, "--data", images, "--output", out))
    assert "--overwrite" in line and "overwrite=True" not in line, line


def test_a_rate_from_lr_is_refused_naming_lr_and_from_set_naming_the_field(tmp_path):
    line = one_error_line(invoke("run", TINY_RECIPE_FILE, "--data", tmp_path, "--lr", "-1"))
    assert line == "Error: --lr: Expected --lr in (0, 10), e.g. 1e-3. Received: -1.0."
    line = one_error_line(invoke("run", TINY_RECIPE_FILE, "--set", "phases.head.learning_rate=-1"))
    assert line == "Error: Expected phases.head.learning_rate in (0, 10), e.g. 1e-3. Received: -1.0."


def test_cheap_checks_come_before_the_weights(tmp_path, monkeypatch):
    """`lr-find` and `run` on a missing folder fail on the path, never trying the weights."""
    import kerasdl.backbones.weights as weights

    def no_weights(*args, **kwargs):
        raise AssertionError("the weights were prepared before the path was checked")

    monkeypatch.setattr(weights, "prepare_weights", no_weights)
    for command in ("lr-find", "run"):
        line = one_error_line(invoke(command, "mobilenetv2-transfer", "--data", tmp_path / "nonexistent",
                                     "--output", tmp_path / "out"))
        assert "Received: " + str(tmp_path / "nonexistent") + ", which does not exist." in line


def test_a_time_budget_too_small_speaks_the_flag(tmp_path):
    images = write_class_folder(tmp_path / "images", per_class=2, size=16)
    result = invoke("run", TINY_RECIPE_FILE, "--data", images, "--output", tmp_path / "out", "--time-budget", "1s")
    line = result.output.strip().splitlines()[-1]  # after the data's lines: the plan needs them
    assert result.exit_code == 1 and line.startswith("Error: --time-budget: Expected a time budget of at least ")
    assert "Received: --time-budget 1. Pass --time-budget " in line and "time_budget" not in line
