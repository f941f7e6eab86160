"""`--class-names` names a label file's numbered classes in every artefact of a run."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner
from PIL import Image

from kerasdl.cli.commands import main
from tests.support import TINY_RECIPE_FILE
from tests.support.data_samples import striped

RUN = [str(TINY_RECIPE_FILE), "--epochs", "1", "--fine-tune-epochs", "0", "--quiet"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def named_run(tmp_path_factory):
    """A tiny run on an `img_name,target` file with labels 0 and 1, named real and ai; the plots' names."""
    import kerasdl.evaluation.evaluate as evaluate

    root = tmp_path_factory.mktemp("named")
    (root / "images").mkdir()
    rows = []
    for i in range(16):
        Image.fromarray(striped(i % 2, seed=i)).save(root / "images" / f"{i}.jpg")
        rows.append(f"{i}.jpg,{i % 2}\n")
    labels = root / "images" / "trainset_label.txt"
    labels.write_text("img_name,target\n" + "".join(rows))
    drawn = {}
    with pytest.MonkeyPatch.context() as patch:
        confusion, roc = evaluate.plot_confusion_matrix, evaluate.plot_roc
        patch.setattr(evaluate, "plot_confusion_matrix",
                      lambda matrix, names, path: (drawn.update(confusion=list(names)), confusion(matrix, names, path)))
        patch.setattr(evaluate, "plot_roc", lambda *a, **k: (drawn.update(roc=k["positive_class"]), roc(*a, **k)))
        result = invoke("run", *RUN, "--data", f"csv:{labels}", "--class-names", "real, ai",
                        "--export", "tflite", "--output", root / "run")
    assert result.exit_code == 0, result.output
    return root, labels, root / "run", drawn


def test_every_artefact_of_the_run_names_the_classes(named_run):
    _, _, run, drawn = named_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["class_names"] == ["real", "ai"] and list(metrics["per_class"]) == ["real", "ai"]
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["class_names"] == ["real", "ai"]
    assert config["recipe"]["data"]["class_names"] == ["real", "ai"]
    assert "- classes (2): real, ai" in (run / "report.md").read_text()
    assert drawn == {"confusion": ["real", "ai"], "roc": "ai"}
    assert (run / "export" / "labels.txt").read_text() == "real\nai\n"
    assert json.loads((run / "export" / "metadata.json").read_text())["class_names"] == ["real", "ai"]
    assert {row["label"] for row in csv.DictReader(open(run / "split.csv"))} == {"real", "ai"}


def test_predict_and_the_demo_name_the_classes_and_a_submission_keeps_its_columns(named_run, tmp_path):
    from kerasdl.app.demo import DemoApp

    root, _, run, _ = named_run
    result = invoke("predict", run / "export" / "model.tflite", root / "images" / "0.jpg",
                    "--output", tmp_path / "table.csv")
    assert result.exit_code == 0, result.output
    header, row = (tmp_path / "table.csv").read_text().splitlines()
    assert header == "path,predicted,real,ai" and row.split(",")[1] in ("real", "ai")
    result = invoke("predict", run / "model.keras", root / "images" / "0.jpg", "--format", "submission",
                    "--output", tmp_path / "submission.csv")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "submission.csv").read_text().splitlines()[0] == "img_name,y_pred"
    app = DemoApp(run)
    assert app.info()["class_names"] == ["real", "ai"]
    with open(root / "images" / "1.jpg", "rb") as image:
        assert set(app.predict_bytes(image.read())["probabilities"]) == {"real", "ai"}


def test_evaluate_takes_the_names_and_says_so_without_them(named_run, tmp_path):
    _, labels, run, _ = named_run
    result = invoke("evaluate", run / "model.keras", "--data", f"csv:{labels}", "--output", tmp_path / "plain")
    assert result.exit_code == 1
    assert "Pass --class-names real,ai if the data numbers the model's classes." in result.output
    result = invoke("evaluate", run / "model.keras", "--data", f"csv:{labels}", "--class-names", "real,ai",
                    "--output", tmp_path / "named")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "named" / "metrics.json").read_text())["class_names"] == ["real", "ai"]


def test_a_name_count_that_does_not_match_is_one_line_before_anything_runs(named_run, image_folder, tmp_path):
    _, labels, _, _ = named_run
    for source in (image_folder, f"csv:{labels}"):  # a folder's classes are counted before the weights
        result = invoke("run", *RUN, "--data", source, "--class-names", "a,b,c", "--output", tmp_path / "out")
        assert result.exit_code == 1
        assert result.output.startswith("Error: --class-names: Expected 2 names in --class-names, one per "
                                        "class of "), result.output
        assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


@pytest.mark.parametrize("given, said", [
    (",,,", "Received: ',,,' (all 4 names empty)."),
    ("a,,b", "Received: 'a,,b' (1 of 3 names empty)."),
    ("a,b,a", "Received: 'a,b,a' (repeated: a)."),
    ("a", "Received: 'a' (one name)."),
])
def test_bad_class_names_say_what_is_wrong_with_them(tmp_path, given, said):
    result = invoke("run", *RUN, "--data", tmp_path, "--class-names", given)
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert result.output.startswith("Error: --class-names: Expected --class-names to be two or more")
    assert said in result.output and "repeated: )" not in result.output
