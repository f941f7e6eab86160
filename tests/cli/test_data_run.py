"""`kerasdl run` on a label file with bad rows: what it skipped is in the run folder."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner
from PIL import Image

from kerasdl.cli.commands import main
from tests.support.data_samples import striped, write_bad_files

TINY = ["mobilenetv2-transfer", "--weights", "none", "--image-size", "32", "--epochs", "1",
        "--fine-tune-epochs", "0", "--batch-size", "4", "--export", "none",
        "--set", "backbone.alpha=0.35", "--quiet"]


@pytest.fixture
def label_file(tmp_path):
    """An imbalanced `img_name,target` file (12 real, 2 fake) with bad rows and files."""
    folder = tmp_path / "trainset"
    folder.mkdir()
    rows = []
    for i in range(14):
        target = 0 if i < 12 else 1
        Image.fromarray(striped(target, seed=i)).save(folder / f"{i}.jpg")
        rows.append((f"{i}.jpg", target))
    write_bad_files(folder)
    rows += [("missing.jpg", 0), ("0.jpg", 0), ("empty.jpg", 1), ("truncated.png", 0), ("5.jpg", "")]
    (folder / "trainset_label.txt").write_text(
        "img_name,target\n" + "".join(f"{name},{target}\n" for name, target in rows))
    return folder / "trainset_label.txt"


@pytest.mark.slow  # a whole run: about 30-80 s on two shared cores
def test_run_on_a_label_file_reports_every_skipped_row(tmp_path, label_file):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", *TINY, "--data", f"csv:{label_file}",
                                       "--class-weight", "auto", "--augment", "mixup",
                                       "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "Class weights: 0 " in result.output and "train:" in result.output
    with open(out / "skipped.csv") as handle:
        skipped = list(csv.DictReader(handle))
    assert [row["reason"].split(" (")[0] for row in skipped] == [
        "file not found", "duplicate of line 2", "empty label", "empty file", "corrupt or truncated"]
    metrics = json.loads((out / "metrics.json").read_text())
    config = json.loads((out / "config.json").read_text())
    # the duplicate row's file is kept, once: 4 left out, and the run says so apart
    assert metrics["skipped_files"] == 4 and config["data"]["skipped_files"] == 4
    assert "Skipped 4 unreadable files or label rows. Kept 1 file listed more than once" in result.output
    assert config["recipe"]["data"]["class_weight"] == "auto" and config["recipe"]["augment"] == "mixup"
    split_rows = (out / "split.csv").read_text().splitlines()
    assert len(split_rows) == 1 + 14


@pytest.mark.slow  # two whole runs
def test_run_with_images_cached_on_disk_and_overwrite(tmp_path, image_folder, monkeypatch):
    from kerasdl.data import pipeline

    monkeypatch.setattr(pipeline, "MEMORY_CACHE_FRACTION", 0.0)  # nothing fits in memory
    out = tmp_path / "run"
    for extra in ([], ["--overwrite"]):
        result = CliRunner().invoke(main, ["run", *TINY, "--data", str(image_folder),
                                           "--output", str(out), *extra])
        assert result.exit_code == 0, result.output
        assert not (out / "cache").exists()  # the disk cache is removed at the end


def test_run_stops_before_training_when_nothing_is_readable(tmp_path):
    folder = tmp_path / "bad"
    for name in ("a", "b"):
        write_bad_files(folder / name)
    result = CliRunner().invoke(main, ["run", *TINY, "--data", str(folder),
                                       "--output", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert result.output.count("Error:") == 1 and "Expected readable images" in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flags, code, message", [
    (["--class-weight", "balanced"], 2, "'balanced' is not one of 'auto', 'none'"),
    (["--augment", "heavy"], 1, "Error: --augment: Expected an augmentation preset from"),
    (["--set", "data.class_weight=sometimes"], 1, "Expected data.class_weight auto or none"),
])
def test_bad_data_options_fail_before_any_work(image_folder, tmp_path, flags, code, message):
    result = CliRunner().invoke(main, ["run", *TINY, "--data", str(image_folder), *flags,
                                       "--output", str(tmp_path / "run")])
    assert result.exit_code == code and message in result.output
    assert not (tmp_path / "run").exists()
