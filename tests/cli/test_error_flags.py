"""An error about one argument of the Python API starts with the flag that sets it.

The library names its arguments (`output_dir`, `csv_format`); the CLI puts the
flag of this command that sets the argument in front (`Error: --output: ...`),
and the exit status stays 1.
"""

import ast
import json
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from kerasdl.cli import main
from kerasdl.cli.commands import run
from kerasdl.cli.export import export
from kerasdl.cli.flags import flag_of
from tests.support import TINY_RECIPE_FILE, write_class_folder


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_predict_names_output_for_a_folder(tmp_path):
    images = write_class_folder(tmp_path / "images", per_class=1, size=16)
    (tmp_path / "out").mkdir()
    line = one_error_line(invoke("predict", tmp_path / "model.keras", images, "--output", tmp_path / "out"))
    assert line.startswith("Error: --output: Expected an output file. Received: ")


def test_resume_names_the_flag_that_gave_the_run_folder(tmp_path):
    images = write_class_folder(tmp_path / "images", per_class=2, size=16)
    run_dir = images / "run"  # an interrupted run with a checkpoint, inside the data
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "state.json").write_text("{}")
    (run_dir / "config.json").write_text(json.dumps({"kerasdl_run": 1, "status": "running"}))
    line = one_error_line(invoke("run", TINY_RECIPE_FILE, "--data", images, "--resume", run_dir))
    assert line.startswith("Error: --resume: Expected --resume apart from the data.")


def test_the_flag_of_an_argument_the_cli_names_otherwise():
    with click.Context(run):
        assert flag_of("output_dir") == "--output"  # click.option("--output", "output_dir")
        assert flag_of("lr_auto") == "--lr"  # --lr auto is lr_auto=True
        assert flag_of("assignments") == "--set"
        assert flag_of("quantize") is None  # run has no --quantize: the message stands alone
    with click.Context(export):
        assert (flag_of("export_format"), flag_of("data_source"), flag_of("output")) == (
            "--format", "--data", "--output")


def test_library_words_for_arguments_read_as_flags_on_the_command_line():
    from kerasdl.cli.flags import in_flags

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
    assert "Received: --time-budget 1s. Pass --time-budget " in line and "time_budget" not in line


# --- the sweep: no message names what the user never typed ------------------------------------

LIBRARY = Path(__file__).resolve().parents[2] / "kerasdl"
# A snake_case name in a message, bare (`Pick another output_dir.`) or as `name=` / `name=value`.
PYTHON_NAME = re.compile(r"(?<![\w.=/-])([a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?![\w(/-]|\.\w)")
# Words of a message that are not Python arguments: names a user types or reads elsewhere.
USER_WORDS = {
    "val_auc", "val_accuracy", "val_loss",  # --monitor's values
    "saved_model", "serving_default",  # --format's value; a SavedModel's signature
}
# Messages only a Python caller meets: the argument named is one no command lets a user set
# (the CLI always passes it), so the Python name is what that caller typed.
PYTHON_ONLY = {
    "course/training_loop.py": {"fit_by_hand"}, "data/pipeline.py": {"num_classes"},
    "export/tflite.py": {"representative_images"}, "export/options.py": {"int8_search_steps"},
    "training/engine.py": {"run_dir"}, "training/multi_worker.py": {"fit_distributed"},
    "training/phase_data.py": {"load_data"}, "export/int8_search.py": {"max_steps"},
    "export/metadata.py": {"zero_point"},  # the quantization formula in metadata.json
    "_util/native_output.py": {"fully_quantize", "inference_type"},  # TensorFlow's own lines, matched
    "backbones/efficientnet_lite.py": {"include_top", "input_shape", "classifier_activation",
                                       "top_activation", "dropout_rate", "drop_connect_rate"},  # a docstring
}


def _text(node) -> str | None:
    """A string or f-string as text, each `{...}` as VALUE."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) else "VALUE" for part in node.values)
    return None


def library_messages():
    """Every string of the library outside cli/ that reads as words, docstrings left out."""
    for path in sorted(LIBRARY.rglob("*.py")):
        if path.parent.name == "cli":
            continue
        tree = ast.parse(path.read_text())
        skip = {id(node.body[0].value) for node in ast.walk(tree)
                if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and node.body and isinstance(node.body[0], ast.Expr)}
        skip |= {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
        for node in ast.walk(tree):
            text = None if id(node) in skip else _text(node)
            if text and re.search(r"[A-Za-z]+ [a-z]+", text):
                yield path.relative_to(LIBRARY).as_posix(), node.lineno, text


def leaf_commands(group=main):
    for command in group.commands.values():
        yield from leaf_commands(command) if isinstance(command, click.Group) else [command]


def test_no_library_message_names_a_python_argument_the_command_line_cannot_say():
    """Each Python name in a message is a `--set` key, or a flag of some command says it instead.

    The CLI says a library message's Python arguments as the flags of the command that runs
    (`in_flags`): `Pick another output_dir.` reads `Pick another --output.`, `feature_cache=False`
    reads `--no-feature-cache`. A name no command can say is a message a user would read as it is.
    """
    from kerasdl.cli.flags import in_flags, recipe_keys

    commands = list(leaf_commands())
    unsaid = []
    for where, line, text in library_messages():
        left = set(PYTHON_NAME.findall(text)) - USER_WORDS - recipe_keys() - PYTHON_ONLY.get(where, set())
        for command in commands:
            with click.Context(command):
                left &= set(PYTHON_NAME.findall(in_flags(text)))
        unsaid += [f"{where}:{line}: {name} in {text[:80]!r}" for name in sorted(left)]
    assert unsaid == [], "\n".join(unsaid)


INTERNAL = re.compile(r"\b(output_dir|data_source|max_accuracy_drop|max_upload_bytes|feature_cache)\b|under "
                      r"(Recipe|[A-Z]\w+Config)\b|None then|\['|repeated: \)")


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory):
    """Tiny images, a file where a folder belongs, and an interrupted run of the tiny recipe."""
    from kerasdl.recipe import get_recipe

    root = tmp_path_factory.mktemp("sweep")
    write_class_folder(root / "images", per_class=2, size=16)
    (root / "a_file").write_text("not a folder")
    (root / "run" / "checkpoints").mkdir(parents=True)
    (root / "run" / "checkpoints" / "state.json").write_text("{}")
    inside = write_class_folder(root / "with_run", per_class=2, size=16) / "run"  # a run in the data
    (inside / "checkpoints").mkdir(parents=True)
    (inside / "checkpoints" / "state.json").write_text("{}")
    (inside / "config.json").write_text(json.dumps({"kerasdl_run": 1, "status": "running"}))
    recipe = get_recipe(str(TINY_RECIPE_FILE)).to_dict()
    (root / "run" / "config.json").write_text(json.dumps(
        {"kerasdl_run": 1, "status": "running", "recipe": recipe, "recipe_as_given": recipe}))
    return root


@pytest.mark.parametrize("args, said", [
    (["run", TINY_RECIPE_FILE, "--set", "data.colour=1"], "Expected a recipe key from: data.val_split, "),
    (["run", TINY_RECIPE_FILE, "--set", "colour=1"], "Expected a recipe key from: name, description, "),
    (["run", TINY_RECIPE_FILE, "--data", "{root}/images", "--output", "{root}/a_file"],
     "Error: --output: Expected an output folder. Received: {root}/a_file, a file. Pick another --output."),
    (["run", TINY_RECIPE_FILE, "--data", "{root}/images", "--resume", "{root}/run", "--class-names", "x,y"],
     "(--class-names: not given then, x,y now). Resume with the same recipe and options, or start a new "
     "run in another folder."),
    (["run", TINY_RECIPE_FILE, "--data", "{root}/images", "--class-names", ",,,"], "(all 4 names empty)"),
    (["export", "{root}/none.keras", "--output", "{root}/model.tflite"],
     "Error: --data: Expected --data with the labelled images the model was trained on"),
    (["run", TINY_RECIPE_FILE, "--data", "{root}/with_run", "--resume", "{root}/with_run/run"],
     "Error: --resume: Expected --resume apart from the data."),
])
def test_error_messages_name_only_what_the_user_typed(sweep_folder, args, said):
    line = one_error_line(invoke(*[str(arg).format(root=sweep_folder) for arg in args]))
    assert said.format(root=sweep_folder) in line, line
    assert not INTERNAL.search(line), line


def test_the_demo_says_the_flag_that_raises_its_upload_limit(monkeypatch):
    import kerasdl.app.demo as demo

    def refuse(source, options):
        raise demo.UploadError(demo._too_large("big.png", 3_000_000, options.max_upload_bytes,
                                                options.limit_setting))

    monkeypatch.setattr(demo, "make_demo_server", refuse)
    line = one_error_line(invoke("demo", "run_dir", "--max-upload-mb", "1"))
    assert line.endswith("Pick a smaller image, or start the demo with a larger --max-upload-mb."), line
