"""`kerasdl` end to end through click's CliRunner: run, evaluate, predict,
export, and every bad input of the end-to-end issue."""

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from kerasdl.cli.commands import main
from tests.support import write_class_folder

TINY = ["--weights", "none", "--image-size", "32", "--batch-size", "4", "--epochs", "1",
        "--fine-tune-epochs", "1", "--set", "backbone.alpha=0.35", "--augment", "none", "--quiet"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One tiny run of mobilenetv2-transfer with a corrupt file among the images."""
    root = tmp_path_factory.mktemp("cli")
    images = write_class_folder(root / "images", per_class=8)
    (images / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    run_dir = root / "run"
    result = invoke("run", "mobilenetv2-transfer", "--data", images, "--output", run_dir,
                    "--export", "saved_model,tflite", *TINY)
    assert result.exit_code == 0, result.output
    return images, run_dir, result.output


def test_run_writes_the_run_folder_of_the_design(finished_run):
    _, run_dir, output = finished_run
    for name in ("config.json", "history.csv", "model.keras", "metrics.json", "curves.png",
                 "confusion_matrix.png", "roc.png", "report.md", "split.csv", "skipped.csv",
                 "export/saved_model/saved_model.pb", "export/model.tflite", "export/labels.txt"):
        assert (run_dir / name).exists(), name
    assert "Done: accuracy" in output and "Phase head" in output and "Phase fine_tune" in output


def test_metrics_json_follows_the_contract_and_counts_skipped_files(finished_run):
    _, run_dir, _ = finished_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("accuracy", "loss", "num_samples", "class_names", "per_class", "confusion_matrix", "auc"):
        assert key in metrics
    assert metrics["class_names"] == ["cat", "dog"]
    assert set(metrics["per_class"]["cat"]) == {"precision", "recall", "f1", "support"}
    assert metrics["skipped_files"] == 1
    assert np.asarray(metrics["confusion_matrix"]).sum() == metrics["num_samples"]
    skipped = list(csv.DictReader(open(run_dir / "skipped.csv")))
    assert skipped[0]["path"].endswith("broken.jpg")


def test_history_has_one_row_per_epoch_with_the_phase(finished_run):
    _, run_dir, _ = finished_run
    rows = list(csv.DictReader(open(run_dir / "history.csv")))
    assert [(row["epoch"], row["phase"]) for row in rows] == [("1", "head"), ("2", "fine_tune")]
    assert "val_accuracy" in rows[0]


def test_config_records_recipe_seed_and_versions(finished_run):
    _, run_dir, _ = finished_run
    config = json.loads((run_dir / "config.json").read_text())
    assert config["status"] == "complete"
    assert config["recipe"]["backbone"]["options"] == {"alpha": 0.35}
    assert config["seed"] == 0 and config["environment"]["keras"].startswith("3.")
    assert config["command"].startswith("kerasdl run mobilenetv2-transfer")


def test_saved_model_serves_probabilities(finished_run):
    import tensorflow as tf

    _, run_dir, _ = finished_run
    loaded = tf.saved_model.load(str(run_dir / "export" / "saved_model"))
    images = tf.random.uniform((3, 32, 32, 3), 0, 255)
    outputs = loaded.signatures["serving_default"](images)
    probabilities = list(outputs.values())[0].numpy()
    assert probabilities.shape == (3, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_tflite_gives_the_keras_top1_on_the_validation_split(finished_run):
    _, run_dir, _ = finished_run
    parity = json.loads((run_dir / "export" / "parity.json").read_text())
    assert parity["model.tflite"]["top1_agreement"] == 1.0
    assert parity["model.tflite"]["max_abs_probability_difference"] < 1e-4


def test_evaluate_predict_and_export_work_on_the_saved_model(finished_run, tmp_path):
    images, run_dir, _ = finished_run
    result = invoke("evaluate", run_dir / "model.keras", "--data", images, "--output", tmp_path / "eval")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["num_samples"] == 16

    predictions = tmp_path / "preds.csv"
    result = invoke("predict", run_dir / "model.keras", images, "--output", predictions)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(predictions)))
    assert len(rows) == 16 and set(rows[0]) == {"path", "predicted", "cat", "dog"}
    assert all(abs(float(r["cat"]) + float(r["dog"]) - 1) < 1e-4 for r in rows)

    exported = tmp_path / "model.tflite"
    result = invoke("export", run_dir / "model.keras", "--format", "tflite", "--output", exported,
                    "--data", images)
    assert result.exit_code == 0, result.output
    assert exported.stat().st_size > 0 and "top-1 agreement 1.0000" in result.output


def test_export_takes_a_run_folder_as_every_other_command_does(finished_run, tmp_path):
    images, run_dir, _ = finished_run
    result = invoke("export", run_dir, "--output", tmp_path / "model.tflite")  # its data: the run's own
    assert result.exit_code == 0, result.output
    assert f"Wrote {tmp_path / 'model.tflite'}" in result.output and "top-1 agreement 1.0000" in result.output
    assert "MODEL (a .keras file or a run folder)" in invoke("export", "--help").output


def test_list_and_show(finished_run):
    result = invoke("list")
    assert result.exit_code == 0 and "resnet50-transfer" in result.output
    result = invoke("show", "mobilenetv2-transfer", "--set", "head.dropout=0.3")
    assert result.exit_code == 0
    assert json.loads(result.output)["head"]["dropout"] == 0.3


# ----------------------------------------------------------- bad input


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: ")
    for fragment in fragments:
        assert fragment in last, last


@pytest.mark.parametrize("make_source, fragments", [
    (lambda root: root / "missing", ["does not exist"]),
    (lambda root: (root / "flat").mkdir() or root / "flat", ["no sub-folders"]),
    (lambda root: write_class_folder(root / "one", classes=("only",)), ["at least two classes"]),
])
def test_bad_sources_fail_before_training_without_a_run_folder(tmp_path, make_source, fragments):
    source = make_source(tmp_path)
    output = tmp_path / "out"
    result = invoke("run", "mobilenetv2-transfer", "--data", source, "--output", output, *TINY)
    assert_one_line_error(result, *fragments)
    assert not output.exists()


def test_an_empty_class_folder_is_named(tmp_path):
    source = write_class_folder(tmp_path / "images")
    (source / "bird").mkdir()
    result = invoke("run", "mobilenetv2-transfer", "--data", source, "--output", tmp_path / "o", *TINY)
    assert_one_line_error(result, "bird", "with none")


def test_all_unreadable_images_stop_before_training(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "bad" / name).mkdir(parents=True)
        (tmp_path / "bad" / name / "x.jpg").write_text("nope")
    result = invoke("run", "mobilenetv2-transfer", "--data", tmp_path / "bad", "--output", tmp_path / "o", *TINY)
    assert_one_line_error(result, "Expected readable images", "2 files skipped")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, fragments", [
    (["no-such-recipe"], ["resnet50-transfer", "mobilenetv2-transfer"]),
    (["mobilenetv2-transfer", "--set", "backbone.name=resnet5"], ["resnet50", "resnet5'"]),
    (["mobilenetv2-transfer", "--epochs", "-1"], ["non-negative"]),
    (["mobilenetv2-transfer", "--epochs", "0", "--fine-tune-epochs", "0"], ["at least one phase"]),
    (["mobilenetv2-transfer", "--image-size", "0"], ["image size from 1 to 1024", "--image-size"]),
    (["mobilenetv2-transfer", "--image-size", "-5"], ["--image-size -5"]),
])
def test_bad_recipes_and_flags_fail_with_one_line(image_folder, tmp_path, args, fragments):
    recipe_args = TINY + args[1:] if len(args) > 1 else TINY
    result = invoke("run", args[0], "--data", image_folder, "--output", tmp_path / "o", *recipe_args)
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "o").exists()


def test_an_output_folder_holding_a_run_is_refused(finished_run):
    images, run_dir, _ = finished_run
    before = (run_dir / "metrics.json").read_text()
    result = invoke("run", "mobilenetv2-transfer", "--data", images, "--output", run_dir, *TINY)
    assert_one_line_error(result, "Error: --output: ", "holds a run", "--overwrite")
    assert (run_dir / "metrics.json").read_text() == before


def test_bad_flag_value_is_a_usage_error(image_folder):
    result = CliRunner().invoke(main, ["run", "mobilenetv2-transfer", "--epochs", "many"])
    assert result.exit_code == 2


def test_run_help_lists_the_recipe_choices_and_its_real_defaults():
    """`--augment`, `--monitor` and `--tta` say what the recipe and the library hold, not a copy."""
    from kerasdl.data.augment import AUGMENTATIONS
    from kerasdl.recipe import AUGMENT_PRESETS, MONITORS, TTA_MODES, transfer_recipe

    assert tuple(AUGMENTATIONS) == AUGMENT_PRESETS
    result = CliRunner().invoke(main, ["run", "--help"], terminal_width=1000)
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: " ".join(line.split()) for line in result.output.splitlines()
             if line.strip().startswith("--")}
    recipe = transfer_recipe("any", "mobilenetv2", description="")
    head, fine_tune = (recipe.phases[0].augment or recipe.augment), (recipe.phases[1].augment or recipe.augment)
    assert f"preset of every phase: {', '.join(AUGMENTATIONS)} " in lines["--augment"]
    assert f"transfer recipes: {head} while the backbone is frozen" in lines["--augment"]
    assert f"then {fine_tune})" in lines["--augment"], lines["--augment"]
    assert f"[{'|'.join(MONITORS)}]" in lines["--monitor"]
    assert f"[{'|'.join(TTA_MODES)}]" in lines["--tta"]
