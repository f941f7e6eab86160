"""Never lose a user's files (issue #14).

Each probe of the issue, through the CLI: a refusal is one line and exit
status 1, and the user's files are byte-for-byte what they were (a hash of
the whole tree before and after). Then what `--overwrite` may delete, label
files that are not UTF-8, huge images, and a fuzz test of the data scan.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import warnings
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import tests.support.training_tiny_recipe  # noqa: F401 - registers the tiny_cnn backbone
from kerasdl._util.run_folder import MANIFEST, RunFolder
from kerasdl.cli.commands import main
from kerasdl.errors import DataError, KerasdlError, RunFolderError
from tests.support import TINY_RECIPE_FILE, write_class_folder, write_tiny_classifier

RECIPE = str(TINY_RECIPE_FILE)
TINY = ["--epochs", "1", "--fine-tune-epochs", "0", "--export", "none", "--quiet"]


def tree_hash(root: Path) -> dict[str, str]:
    """`{relative path: sha256 of the bytes (or the link's target)}` of everything under `root`."""
    found = {}
    if not os.path.lexists(root):
        return found
    for folder, folders, files in os.walk(root):
        for name in files + folders:
            path = Path(folder, name)
            key = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[key] = "link -> " + os.readlink(path)
            elif path.is_file():
                found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                found[key + "/"] = "folder"
    return found


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, *fragments):
    """Exit 1 and the error as one `Error:` line, last on stderr (after kerasdl's own status
    lines and warnings), with no traceback."""
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and result.stderr.strip().splitlines()[-1] == errors[0], result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def user_files(folder: Path) -> Path:
    """A folder of the user's own: a note, a photo, a sub-folder."""
    (folder / "drafts").mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes\n")
    (folder / "drafts" / "chapter1.md").write_text("# one\n")
    Image.new("RGB", (8, 8), "red").save(folder / "photo.png")
    return folder


@pytest.fixture
def photos(tmp_path) -> Path:
    return write_class_folder(tmp_path / "photos", per_class=6, size=16)


# ---------------------------------------------------------------- the probes


@pytest.mark.parametrize("output", [".", "run", "cat"])
def test_output_in_the_data_folder_is_refused_and_the_images_stay(photos, output):
    before = tree_hash(photos.parent)
    result = invoke("run", RECIPE, "--data", photos, "--output", photos / output, "--overwrite", *TINY)
    assert_one_line_error(result, "Error: --output: Expected --output apart from the data")
    assert tree_hash(photos.parent) == before


def test_output_above_the_data_or_linked_to_it_is_refused(photos, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(photos, target_is_directory=True)
    before = tree_hash(tmp_path)
    result = invoke("run", RECIPE, "--data", photos, "--output", tmp_path, "--overwrite", *TINY)
    assert_one_line_error(result, "holds the data folder")
    result = invoke("run", RECIPE, "--data", photos, "--output", link, "--overwrite", *TINY)
    assert_one_line_error(result, "is the data folder")
    result = invoke("run", RECIPE, "--data", link, "--output", photos / "run", *TINY)
    assert_one_line_error(result, "is inside the data folder")
    assert tree_hash(tmp_path) == before


def test_the_label_files_folder_counts_as_data(photos, tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    rows = [f"{p.relative_to(tmp_path).as_posix()},{p.parent.name}" for p in sorted(photos.rglob("*.png"))]
    (labels / "train.csv").write_text("path,label\n" + "\n".join(f"../{row}" for row in rows) + "\n")
    before = tree_hash(tmp_path)
    result = invoke("run", RECIPE, "--data", f"csv:{labels / 'train.csv'}", "--output", labels,
                    "--overwrite", *TINY)
    assert_one_line_error(result, "apart from the data", "is the data folder")
    assert tree_hash(tmp_path) == before


def test_images_a_label_file_lists_inside_the_output_are_refused_after_the_scan(tmp_path):
    run = old_run(tmp_path / "run")
    pictures = write_class_folder(run / "pictures", per_class=4, size=16)  # the user's, in a run folder
    (labels := tmp_path / "labels").mkdir()
    (labels / "train.csv").write_text("path,label\n" + "".join(
        f"{p},{p.parent.name}\n" for p in sorted(pictures.rglob("*.png"))))
    before = tree_hash(tmp_path)
    result = invoke("run", RECIPE, "--data", f"csv:{labels / 'train.csv'}", "--output", run,
                    "--overwrite", *TINY)
    assert_one_line_error(result, "Expected the images of csv:", "outside the output folder")
    assert tree_hash(tmp_path) == before


def test_overwrite_refuses_a_folder_of_the_users_files(photos, tmp_path):
    docs = user_files(tmp_path / "docs")
    before = tree_hash(docs)
    result = invoke("run", RECIPE, "--data", photos, "--output", docs, "--overwrite", *TINY)
    assert_one_line_error(result, "holds 3 entries (drafts/, notes.txt, photo.png) and no kerasdl run")
    assert tree_hash(docs) == before


def test_a_new_run_refuses_a_folder_of_the_users_files(photos, tmp_path):
    docs = user_files(tmp_path / "docs")
    before = tree_hash(docs)
    result = invoke("run", RECIPE, "--data", photos, "--output", docs, *TINY)
    assert_one_line_error(result, "Error: --output: Expected --output to be a new or empty folder", "notes.txt")
    assert tree_hash(docs) == before


def test_evaluate_refuses_a_folder_of_the_users_files(photos, tmp_path):
    docs = user_files(tmp_path / "docs")
    (tmp_path / "model.keras").write_bytes(b"not opened: the output is checked first")
    before = tree_hash(tmp_path)
    result = invoke("evaluate", tmp_path / "model.keras", "--data", photos, "--output", docs)
    assert_one_line_error(result, "Error: --output: ", "or an earlier evaluation", "notes.txt")
    result = invoke("evaluate", tmp_path / "model.keras", "--data", photos, "--output", photos / "eval")
    assert_one_line_error(result, "apart from the data")
    assert tree_hash(tmp_path) == before


@pytest.fixture
def tiny_model(tmp_path) -> Path:
    """A tiny two-class model.keras (with labels.txt) in a folder of its own."""
    (tmp_path / "model").mkdir()
    write_tiny_classifier(tmp_path / "model")
    return tmp_path / "model" / "model.keras"


def test_every_command_that_writes_refuses_an_output_among_its_images(photos, tiny_model, tmp_path):
    """The one line `run` gives, from each command, before anything is written (issue #27)."""
    from kerasdl.backbones.build import build_backbone

    build_backbone("tiny_cnn", image_size=32, weights=None).save_weights(tmp_path / "tiny.weights.h5")
    (tmp_path / "list.txt").write_text("photos/cat/cat_0.png\n")
    before = tree_hash(photos)
    cat = photos / "cat" / "cat_0.png"
    for args in (
        ["explain", tiny_model, cat, "--output", photos / "cams"],  # beside the class folders
        ["explain", tiny_model, photos / "cat", "--output", photos / "cat" / "cams"],
        ["explain", tiny_model, f"@{tmp_path / 'list.txt'}", "--output", photos / "dog" / "cams"],
        ["predict", tiny_model, cat, "--output", photos / "cat" / "predictions.csv"],
        ["predict", tiny_model, photos, "--output", photos / "predictions.csv"],
        ["export", tiny_model, "--data", photos, "--output", photos / "model.tflite"],
        ["lr-find", RECIPE, "--data", photos, "--output", photos / "lr", "--steps", "30"],
        ["experiment", "transfer-vs-scratch", "--data", photos, "--backbone", "tiny_cnn", "--weights",
         tmp_path / "tiny.weights.h5", "--image-size", "32", "--output", photos / "tvs"],
        ["evaluate", tiny_model, "--data", photos, "--output", photos / "evaluation"],
        ["run", RECIPE, "--data", photos, "--output", photos / "run", *TINY],
    ):
        result = invoke(*args)
        assert_one_line_error(result, "Error: --output: Expected --output apart from the data. Received: ",
                              f"Pick --output outside {photos}")
        assert tree_hash(photos) == before, args[:2]


def test_evaluate_writes_into_the_run_folder_under_a_new_name_each_time(photos, tiny_model, tmp_path):
    runs = {}
    for name in ("hym", "kf3/folds/fold_1"):  # a run, and one fold of a k-fold run
        runs[name] = tmp_path / "runs" / name
        runs[name].mkdir(parents=True)
        shutil.copy(tiny_model, runs[name] / "model.keras")
        shutil.copy(tiny_model.with_name("labels.txt"), runs[name] / "labels.txt")
        (runs[name] / "config.json").write_text(json.dumps({"kerasdl_run": 1}))
    hym = runs["hym"]
    for expected in ("evaluation", "evaluation_2"):  # never over the first one
        result = invoke("evaluate", hym, "--data", photos, "--batch-size", "4")
        assert result.exit_code == 0, result.output
        assert f"Wrote {hym / expected / 'metrics.json'}" in result.output
    first = tree_hash(hym / "evaluation")
    result = invoke("evaluate", runs["kf3/folds/fold_1"], "--data", photos)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "runs" / "kf3" / "folds").iterdir()) == ["fold_1"]
    assert (runs["kf3/folds/fold_1"] / "evaluation" / "metrics.json").is_file()
    assert not (tmp_path / "runs" / "evaluation").exists()  # nothing beside the runs
    assert tree_hash(hym / "evaluation") == first

    result = invoke("evaluate", hym, "--data", photos, "--output", hym / "evaluation")
    assert_one_line_error(result, "Error: --output: ", "holds an earlier evaluation. Pass --overwrite")
    assert tree_hash(hym / "evaluation") == first
    (hym / "evaluation" / "notes.txt").write_text("mine")  # the user's, beside kerasdl's files
    result = invoke("evaluate", hym / "model.keras", "--data", photos, "--overwrite")
    assert result.exit_code == 0, result.output
    assert f"Wrote {hym / 'evaluation' / 'metrics.json'}" in result.output  # the model file's run
    assert (hym / "evaluation" / "notes.txt").read_text() == "mine"
    assert not (hym / "evaluation_3").exists()

    (photos / "cat" / "bad.png").write_bytes(b"not a picture")
    result = invoke("evaluate", hym, "--data", photos, "--output", tmp_path / "with_bad")
    assert result.exit_code == 0, result.output
    assert result.output.count("bad.png: not an image") == 1  # said once
    (photos / "cat" / "bad.png").unlink()

    user = user_files(tmp_path / "plain" / "evaluation")  # no run: beside the model, never over files
    shutil.copy(tiny_model, tmp_path / "plain" / "model.keras")
    shutil.copy(tiny_model.with_name("labels.txt"), tmp_path / "plain" / "labels.txt")
    before = tree_hash(user)
    result = invoke("evaluate", tmp_path / "plain" / "model.keras", "--data", photos, "--overwrite")
    assert result.exit_code == 0, result.output
    assert f"Wrote {tmp_path / 'plain' / 'evaluation_2' / 'metrics.json'}" in result.output
    assert tree_hash(user) == before


def test_lr_find_writes_beside_the_users_files_but_never_over_them(photos, tmp_path):
    docs = user_files(tmp_path / "docs")
    (docs / "lr_find.png").write_bytes(b"the user's own plot")
    before = tree_hash(docs)
    result = invoke("lr-find", RECIPE, "--data", photos, "--output", docs, "--steps", "30")
    assert_one_line_error(result, "Error: --output: ", "lr_find.png was not written by kerasdl lr-find")
    assert tree_hash(docs) == before

    (docs / "lr_find.png").unlink()
    for _ in range(2):  # a second range test replaces the first one's files
        result = invoke("lr-find", RECIPE, "--data", photos, "--output", docs, "--steps", "30")
        assert result.exit_code == 0, result.output
    after = tree_hash(docs)
    assert {key: value for key, value in after.items() if not key.startswith("lr_find.")} == {
        key: value for key, value in before.items() if key != "lr_find.png"}
    assert json.loads((docs / "lr_find.json").read_text())["suggestion"] > 0


def test_a_latin1_label_file_is_one_line_naming_the_byte(photos, tmp_path):
    (tmp_path / "labels").mkdir()
    label_file = tmp_path / "labels" / "labels.csv"
    text = "path,label\n" + "".join(f"{p},café_{p.parent.name}\n" for p in sorted(photos.rglob("*.png")))
    label_file.write_bytes(text.encode("latin-1"))
    offset = text.encode("latin-1").index(b"\xe9")
    before = tree_hash(tmp_path)
    result = invoke("run", RECIPE, "--data", f"csv:{label_file}", "--output", tmp_path / "out", *TINY)
    assert_one_line_error(result, str(label_file), f"byte 0xe9 at byte offset {offset}",
                          "data.encoding='latin-1'")
    assert tree_hash(tmp_path) == before


def test_a_declared_encoding_reads_the_label_file(photos, tmp_path):
    from kerasdl.data.load import load_labelled_files

    label_file = tmp_path / "labels.csv"
    label_file.write_bytes(("path,label\n" + "".join(
        f"{p},café_{p.parent.name}\n" for p in sorted(photos.rglob("*.png")))).encode("latin-1"))
    class_names, files, skipped = load_labelled_files(f"csv:{label_file}", encoding="latin-1")
    assert class_names == ["café_cat", "café_dog"] and len(files["all"]) == 12 and not skipped
    utf8 = tmp_path / "utf8.csv"
    utf8.write_bytes(b"\xef\xbb\xbf" + label_file.read_bytes().decode("latin-1").encode("utf-8"))
    assert load_labelled_files(f"csv:{utf8}", encoding="latin-1")[0] == class_names  # UTF-8 first
    with pytest.raises(DataError, match="byte 0xe9 at byte offset .* .not ascii"):
        load_labelled_files(f"csv:{label_file}", encoding="ascii")


def test_an_unknown_encoding_is_one_line(photos, tmp_path):
    result = invoke("run", RECIPE, "--data", photos, "--output", tmp_path / "out",
                    "--set", "data.encoding=klingon", *TINY)
    assert_one_line_error(result, "data.encoding", "Python knows", "'klingon'")
    assert not (tmp_path / "out").exists()


def test_a_binary_file_as_csv_is_one_line_naming_the_byte(photos, tmp_path):
    before = tree_hash(tmp_path)
    png = next(photos.rglob("*.png"))
    result = invoke("run", RECIPE, "--data", f"csv:{png}", "--output", tmp_path / "out", *TINY)
    assert_one_line_error(result, str(png), "binary data", f"byte offset {png.read_bytes().index(0)}")
    assert tree_hash(tmp_path) == before


def test_a_huge_image_size_is_refused_before_the_scan(photos, tmp_path, monkeypatch):
    def no_scan(*args, **kwargs):
        raise AssertionError("the data was scanned")

    monkeypatch.setattr("kerasdl.data.load.scan_images", no_scan)
    result = invoke("run", RECIPE, "--data", photos, "--output", tmp_path / "out", "--image-size",
                    "100000", *TINY)
    assert_one_line_error(result, "from 1 to 1024 px", "--image-size 100000", "--image-size")
    assert not (tmp_path / "out").exists()


def write_huge_png(path: Path, width: int = 12000, height: int = 12000) -> Path:
    """A valid 1-bit PNG of `width x height` pixels (about 20 kB on disk, 144 MP decoded)."""
    Image.new("1", (width, height)).save(path)
    return path


def test_a_huge_image_is_skipped_unread_and_listed(tmp_path, monkeypatch):
    from PIL import ImageFile

    from kerasdl.data.load import load_labelled_files
    from kerasdl.data.scan import inspect_image

    data = write_class_folder(tmp_path / "photos", per_class=4, size=16)
    huge = write_huge_png(data / "cat" / "huge.png")
    loaded = []
    real_load = ImageFile.ImageFile.load

    def load(image):
        loaded.append(image.size)
        return real_load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        class_names, files, skipped = load_labelled_files(data)
    assert [(item.path, item.reason) for item in skipped] == [(str(huge), "too large (12000 x 12000)")]
    assert str(huge) not in files["all"].paths and len(files["all"]) == 8
    assert (12000, 12000) not in loaded  # its pixels were never decoded
    with pytest.raises(DataError, match="Expected readable images"):
        load_labelled_files(data, max_image_pixels=200)  # 16 x 16 = 256 px: every image too large
    assert inspect_image(str(data / "cat" / "cat_0.png"), max_pixels=200) == (False, "too large (16 x 16)")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One tiny run on images with a 12000 x 12000 PNG among them."""
    root = tmp_path_factory.mktemp("finished")
    data = write_class_folder(root / "photos", per_class=6, size=16)
    huge = write_huge_png(data / "dog" / "huge.png")
    before = tree_hash(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)
        result = invoke("run", RECIPE, "--data", data, "--output", root / "run", *TINY)
    assert result.exit_code == 0, result.output
    assert tree_hash(data) == before
    return data, huge, root / "run"


def test_a_run_skips_a_huge_image_and_lists_it_in_skipped_csv(finished_run):
    _, huge, run = finished_run
    skipped = (run / "skipped.csv").read_text().splitlines()
    assert skipped == ["path,reason", f"{huge},too large (12000 x 12000)"]


def test_a_pixel_limit_above_pillows_still_never_warns(tmp_path, monkeypatch):
    from kerasdl.data.scan import scan_images

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow warns above 1000 px, errs above 2000
    paths = [tmp_path / "warned.png", tmp_path / "refused.png"]
    Image.new("RGB", (40, 40)).save(paths[0])
    Image.new("RGB", (50, 50)).save(paths[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        readable, skipped = scan_images([(str(p), 0) for p in paths], max_pixels=1_000_000)
    assert readable.paths == [str(paths[0])]  # allowed by ours, read without Pillow's warning
    assert [item.reason for item in skipped] == ["too large (50 x 50)"]  # beyond Pillow's own limit


@pytest.mark.parametrize("value", ["0", "-5", "many", "true"])
def test_a_bad_pixel_limit_is_one_line(photos, tmp_path, value):
    result = invoke("run", RECIPE, "--data", photos, "--output", tmp_path / "out",
                    "--set", f"data.max_image_pixels={value}", *TINY)
    assert_one_line_error(result, "data.max_image_pixels")


# ---------------------------------------------------- what --overwrite deletes


def old_run(folder: Path) -> Path:
    """A run folder as kerasdl wrote it before manifests: config.json without the marker."""
    (folder / "export").mkdir(parents=True)
    config = {"status": "complete", "command": "kerasdl run x", "recipe": {"name": "x"}, "seed": 0,
              "environment": {"kerasdl": "0.1"}}
    (folder / "config.json").write_text(json.dumps(config))
    for name in ("history.csv", "model.keras", "metrics.json", "report.md", "export/model.tflite"):
        (folder / name).write_text(name)
    return folder


def test_replacing_an_old_run_deletes_only_the_run_folder_names(tmp_path):
    run = old_run(tmp_path / "run")
    user_files(run)
    folder = RunFolder(run)
    assert folder.holds_run() and not folder.has_manifest
    with pytest.raises(RunFolderError, match="holds a run. Pass resume=True"):
        folder.check_new_run()
    mine = {k: v for k, v in tree_hash(run).items() if k.split("/")[0] in ("drafts", "notes.txt", "photo.png")}
    folder.check_new_run(overwrite=True)
    assert folder.clear() == ["drafts/", "notes.txt", "photo.png"]
    assert tree_hash(run) == mine


def test_replacing_a_run_deletes_only_its_manifests_files(tmp_path):
    run = tmp_path / "run"
    folder = RunFolder(run)
    folder.start()
    (run / "config.json").write_text(json.dumps({"kerasdl_run": 1}))
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "epoch_1.npz").write_bytes(b"x")  # written before any record: claimed
    (run / "notes.txt").write_text("added by the user, during the run")
    manifest = json.loads((run / MANIFEST).read_text())
    assert "checkpoints" in manifest["folders"] and "notes.txt" not in manifest["files"]
    (tmp_path / "outside.txt").write_text("outside")
    manifest["files"].append("../outside.txt")  # a damaged manifest cannot reach out
    (run / MANIFEST).write_text(json.dumps(manifest))
    assert RunFolder(run).clear() == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["notes.txt", "outside.txt", "run"]


def test_a_run_killed_in_training_can_be_overwritten(photos, tmp_path):
    """What a run killed mid-training leaves (an empty cache/, TensorBoard's logs/ written
    after the last record) is kerasdl's: --overwrite replaces it, and the user's file stays."""
    run = tmp_path / "run"
    folder = RunFolder(run)
    folder.start()
    (run / "config.json").write_text(json.dumps({"kerasdl_run": 1, "status": "running"}))
    folder.record()
    (run / "cache").mkdir()
    (run / "logs" / "head" / "train").mkdir(parents=True)
    (run / "logs" / "head" / "train" / "events.out.tfevents.1.vm.2.v2").write_bytes(b"x")
    (run / "notes.txt").write_text("the user's")
    assert RunFolder(run).foreign_entries() == ["notes.txt"]
    result = invoke("run", RECIPE, "--data", photos, "--output", run, "--overwrite", *TINY)
    assert result.exit_code == 0, result.output
    assert (run / "notes.txt").read_text() == "the user's"
    assert not (run / "logs" / "head" / "train" / "events.out.tfevents.1.vm.2.v2").exists()


def test_replacing_a_run_never_follows_links(tmp_path):
    mine = user_files(tmp_path / "mine")
    before = tree_hash(mine)
    run = old_run(tmp_path / "run")
    (run / "checkpoints").symlink_to(mine, target_is_directory=True)
    (run / "export" / "link.png").symlink_to(mine / "photo.png")
    assert RunFolder(run).clear() == []
    assert not run.exists() and tree_hash(mine) == before


def test_overwrite_keeps_the_users_files_in_a_run_and_says_so(finished_run, tmp_path):
    photos, _, finished = finished_run
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    manifest = json.loads((run / MANIFEST).read_text())
    assert json.loads((run / "config.json").read_text())["kerasdl_run"] == 1
    assert set(manifest["files"]) == {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()}
    assert manifest["folders"] == []  # complete: every file is listed
    user_files(run / "mine")
    mine = {k: v for k, v in tree_hash(run).items() if k.startswith("mine")}
    (run / "report.md").write_text("the old run's report")
    result = invoke("run", RECIPE, "--data", photos, "--output", run, "--overwrite", *TINY)
    assert result.exit_code == 0, result.output
    said = [line for line in result.stderr.splitlines() if "kerasdl did not write" in line]
    assert len(said) == 1 and said[0].startswith("Warning: ") and said[0].endswith(
        "kept 1 entry kerasdl did not write: mine/."), result.stderr
    assert {k: v for k, v in tree_hash(run).items() if k.startswith("mine")} == mine
    assert (run / "report.md").read_text() != "the old run's report"


def test_a_users_file_with_a_run_files_name_blocks_overwrite(tmp_path):
    run = tmp_path / "run"
    RunFolder(run).start()
    (run / "config.json").write_text(json.dumps({"kerasdl_run": 1}))
    RunFolder(run).record(complete=True)
    (run / "notes.txt").write_text("mine")
    RunFolder(run).check_new_run(overwrite=True)
    (run / "history.csv").write_text("mine too: a new run would write over it")
    with pytest.raises(RunFolderError, match="history.csv was not written by kerasdl"):
        RunFolder(run).check_new_run(overwrite=True)


def test_a_refused_overwrite_deletes_nothing(photos, tmp_path):
    run = old_run(tmp_path / "run")
    bad = tmp_path / "bad"
    for name in ("a", "b"):
        (bad / name).mkdir(parents=True)
        (bad / name / "x.jpg").write_text("not an image")
    before = tree_hash(run)
    result = invoke("run", RECIPE, "--data", bad, "--output", run, "--overwrite", *TINY)
    assert_one_line_error(result, "Expected readable images")
    assert tree_hash(run) == before


def test_a_folder_of_empty_folders_counts_as_empty(tmp_path):
    (tmp_path / "out" / "cache").mkdir(parents=True)  # what a failed run's disk cache leaves
    RunFolder(tmp_path / "out").check_new_run()
    RunFolder(tmp_path / "out").check_evaluation()


# --------------------------------------------------------------------- fuzz


def _mutations(rng: random.Random, data: bytes) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:  # truncated
        return data[: rng.randrange(len(data))]
    if kind == 1:  # flipped bytes
        data = bytearray(data)
        for _ in range(rng.randrange(1, 12)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if kind == 2:  # a slice removed or repeated
        start, end = sorted(rng.randrange(len(data)) for _ in range(2))
        return data[:start] + data[end:] if rng.random() < 0.5 else data[:end] + data[start:]
    if kind == 3:  # the header, then noise
        return data[:rng.randrange(4, 40)] + rng.randbytes(rng.randrange(200))
    return rng.randbytes(rng.randrange(1, 300))


def _seed_images(folder: Path) -> list[bytes]:
    """Good files of every format, and two small ones whose headers claim 60000 x 60000 px."""
    from tests.support.data_samples import write_every_format

    written = write_every_format(folder / "_seeds", kind=0)
    seeds = {name: path.read_bytes() for name, path in written.items()}
    for path in written.values():
        path.unlink()
    (folder / "_seeds").rmdir()
    png = bytearray(seeds["png"])  # the signature, then the IHDR chunk: its width and height at 16
    png[16:24] = (60000).to_bytes(4, "big") * 2
    png[29:33] = zlib.crc32(bytes(png[12:29])).to_bytes(4, "big")
    gif = bytearray(seeds["gif"])  # the logical screen's width and height at 6
    gif[6:10] = (60000).to_bytes(2, "little") * 2
    return [*seeds.values(), bytes(png), bytes(gif)]


def test_fuzzed_images_and_label_files_are_read_or_skipped_with_a_reason(tmp_path):
    from kerasdl.data.load import load_labelled_files

    rng = random.Random(14)
    data, out_parent = tmp_path / "data", tmp_path / "outputs"
    write_class_folder(data, per_class=3, size=16)
    seeds = _seed_images(data)
    suffixes = [".jpg", ".png", ".gif", ".bmp", ".webp", ".tif", ""]
    for index in range(240):
        (data / ("cat", "dog")[index % 2] / f"fuzz_{index}{rng.choice(suffixes)}").write_bytes(
            _mutations(rng, rng.choice(seeds)))
    images = sorted(str(p) for p in data.rglob("*") if p.is_file())
    text = "path,label\n" + "".join(f"{Path(p).relative_to(data)},{Path(p).parent.name}\n" for p in images)
    texts = [text.encode(), text.encode("utf-16"), ("\ufeff" + text.replace("cat", "chât")).encode(),
             b"img\ttarget\nx.jpg\t1\n", b"path,label\n" + b"x" * 140000 + b",1\n"]
    for index in range(60):
        (data / f"labels_{index}.csv").write_bytes(_mutations(rng, rng.choice(texts)))
    (out_parent / "mine").mkdir(parents=True)
    (out_parent / "mine" / "keep.txt").write_text("mine")
    data_before, outputs_before = tree_hash(data), tree_hash(out_parent)

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)  # the skipped files' summary
        class_names, files, skipped = load_labelled_files(data)
        reasons = {item.path: item.reason for item in skipped}
        assert sorted([*files["all"].paths, *reasons]) == images  # each file read or skipped
        assert all(reasons.values())
        assert sum(reason.startswith("too large") for reason in reasons.values()) >= 1
        outcomes = {"read": 0, "refused": 0}
        for label_file in sorted(data.glob("labels_*.csv")):
            try:
                _, listed, rows_skipped = load_labelled_files(f"csv:{label_file}")
            except KerasdlError as error:
                assert len(str(error).splitlines()) == 1 and str(error).startswith("Expected"), error
                outcomes["refused"] += 1
            else:
                assert all(item.reason for item in rows_skipped)
                outcomes["read"] += 1
    assert outcomes["read"] and outcomes["refused"]
    result = invoke("run", RECIPE, "--data", data, "--output", out_parent / "run", *TINY)
    assert result.exit_code == 0, result.output
    listed = (out_parent / "run" / "skipped.csv").read_text().splitlines()[1:]
    assert len(listed) == len(skipped)
    assert tree_hash(data) == data_before
    after = tree_hash(out_parent)
    assert {k: v for k, v in after.items() if not k.startswith("run")} == outputs_before


def test_resume_accepts_a_run_started_before_the_new_data_fields(tmp_path):
    from kerasdl.errors import CheckpointError
    from kerasdl.recipe import get_recipe
    from kerasdl.training.checkpoints import check_same_recipe

    recipe = get_recipe("mobilenetv2-transfer")
    recorded = recipe.to_dict()
    del recorded["data"]["encoding"], recorded["data"]["max_image_pixels"]
    (tmp_path / "config.json").write_text(json.dumps({"recipe": recorded}))
    check_same_recipe(tmp_path, recipe)  # the defaults are what that run used
    recipe.data.max_image_pixels = 1000
    with pytest.raises(CheckpointError, match="data.max_image_pixels: 40000000 then, 1000 now"):
        check_same_recipe(tmp_path, recipe)


def test_a_resume_refuses_other_images_and_rewrites_nothing_but_accepts_them_moved(photos, tmp_path, monkeypatch):
    """Issue 27: a resume compares the file list (relative paths, classes, sizes) before any costly work."""
    from tests.training.test_training import Interrupted, stop_after_checkpoint

    run = tmp_path / "run"
    flags = ["run", RECIPE, "--data", photos, "--epochs", "1", "--fine-tune-epochs", "1", "--export", "none",
             "--quiet"]
    with stop_after_checkpoint(monkeypatch, (0, 1)), pytest.raises(Interrupted):
        invoke(*flags, "--output", run)
    before = tree_hash(run)

    other = tmp_path / "other"  # the same class counts, one image bigger
    shutil.copytree(photos, other)
    Image.new("RGB", (40, 40), "blue").save(other / "cat" / "cat_2.png")
    result = invoke(*flags, "--data", other, "--resume", run)
    assert_one_line_error(result, "--data: Expected the images the run in",
                          "Received: other files: 1 file changed size (first: cat/cat_2.png).")
    assert tree_hash(run) == before
    result = invoke(*flags, "--folds", "2", "--resume", run)
    assert_one_line_error(result, "Error: --folds: ", "this run is a single run: resume it without folds.")
    assert tree_hash(run) == before

    moved = tmp_path / "moved"  # the same images in another folder are the same data
    shutil.move(photos, moved)
    result = invoke(*flags, "--data", moved, "--resume", run)
    assert result.exit_code == 0, result.output
    assert "Epoch 2/2" in result.output and "Epoch 1/2" not in result.output  # resumed, not restarted


def test_a_run_from_before_the_file_list_resumes_with_a_warning(photos, tmp_path, caplog):
    from kerasdl.data.file_list import list_source_files
    from kerasdl.training.checkpoints import check_same_files

    with caplog.at_level("WARNING", logger="kerasdl"):
        check_same_files(tmp_path, {"data": {"source": str(photos)}}, list_source_files(photos))
    assert "without checking that its images are the ones it started with" in caplog.text
