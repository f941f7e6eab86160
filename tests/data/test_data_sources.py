"""Label-file (csv:) and TensorFlow Datasets (tfds:) sources."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from kerasdl.data import sources
from kerasdl.data.load import load_data, load_labelled_files
from kerasdl.data.types import count_left_out, describe_skipped
from kerasdl.errors import DataError
from tests.support.data_samples import striped, write_bad_files


def write_images(folder, count, kind, prefix="img", suffix=".jpg"):
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        name = f"{prefix}_{kind}_{i}{suffix}"
        Image.fromarray(striped(kind, seed=i)).save(folder / name)
        names.append(name)
    return names


@pytest.fixture
def competition(tmp_path):
    """A deepfake-style trainset_label.txt: `img_name,target`, 0 real / 1 fake."""
    root = tmp_path / "faces"
    rows = [(name, 0) for name in write_images(root / "trainset", 6, 0)]
    rows += [(name, 1) for name in write_images(root / "trainset", 6, 1)]
    text = "img_name,target\n" + "".join(f"trainset/{name},{label}\n" for name, label in rows)
    (root / "trainset_label.txt").write_text(text)
    return root


def test_competition_label_file_with_header_detected(competition):
    class_names, files, skipped = load_labelled_files(f"csv:{competition / 'trainset_label.txt'}")
    assert class_names == ["0", "1"] and list(files) == ["all"] and skipped == []
    assert files["all"].class_counts(2) == [6, 6]
    assert all(path.startswith(str(competition / "trainset")) for path in files["all"].paths)


def test_label_file_trains_through_load_data(competition):
    data = load_data(f"csv:{competition / 'trainset_label.txt'}", image_size=16, batch_size=4,
                     val_split=0.25, seed=0)
    assert data.class_counts() == {"train": {"0": 4, "1": 4}, "val": {"0": 2, "1": 2}}
    images, labels = next(iter(data.train))
    assert images.shape == (4, 16, 16, 3)


def test_tsv_without_header_ids_without_suffix_and_numeric_label_order(tmp_path):
    names = write_images(tmp_path, 3, 0, suffix=".png") + write_images(tmp_path, 3, 1, suffix=".png")
    labels = ["2"] * 3 + ["10"] * 3
    (tmp_path / "labels.tsv").write_text(
        "".join(f"{name[:-4]}\t{label}\n" for name, label in zip(names, labels, strict=True)))
    class_names, files, skipped = load_labelled_files(f"csv:{tmp_path / 'labels.tsv'}")
    assert class_names == ["2", "10"] and not skipped
    assert sorted(files["all"].paths) == sorted(str(tmp_path / name) for name in names)


def test_columns_given_by_name(tmp_path):
    names = write_images(tmp_path / "imgs", 2, 0) + write_images(tmp_path / "imgs", 2, 1)
    text = "id;file;kind;label\n" + "".join(
        f"{i};imgs/{name};{'a' if i < 2 else 'b'};x\n" for i, name in enumerate(names))
    (tmp_path / "meta.csv").write_text(text)
    class_names, files, _ = load_labelled_files(
        f"csv:{tmp_path / 'meta.csv'}", path_column="file", label_column="kind")
    assert class_names == ["a", "b"] and len(files["all"]) == 4
    with pytest.raises(DataError, match="Expected a column 'species'.*Received: columns id, file, kind"):
        load_labelled_files(f"csv:{tmp_path / 'meta.csv'}", label_column="species")


def test_columns_detected_by_their_values(tmp_path):
    names = write_images(tmp_path, 2, 0) + write_images(tmp_path, 2, 1)
    (tmp_path / "meta.csv").write_text("split,picture,verdict\n" + "".join(
        f"x,{name},{'no' if i < 2 else 'yes'}\n" for i, name in enumerate(names)))
    with pytest.raises(DataError, match="Expected a label column.*Set data.label_column=NAME"):
        load_labelled_files(f"csv:{tmp_path / 'meta.csv'}")
    class_names, files, _ = load_labelled_files(f"csv:{tmp_path / 'meta.csv'}", label_column="verdict")
    assert class_names == ["no", "yes"] and len(files["all"]) == 4


def test_one_skipped_row_is_said_in_the_singular(tmp_path):
    names = write_images(tmp_path, 2, 0) + write_images(tmp_path, 2, 1)
    lines = ["path,label"] + [f"{name},{'real' if i < 2 else 'fake'}" for i, name in enumerate(names)]
    (tmp_path / "labels.csv").write_text("\n".join(lines + ["missing.jpg,real"]) + "\n")
    with pytest.warns(UserWarning) as warned:
        load_labelled_files(f"csv:{tmp_path / 'labels.csv'}")
    assert str(warned[0].message).splitlines()[0] == f"Skipping 1 file or row of csv:{tmp_path / 'labels.csv'}:"


def test_bad_rows_are_each_reported_never_dropped_silently(tmp_path):
    names = write_images(tmp_path, 3, 0) + write_images(tmp_path, 3, 1)
    bad = write_bad_files(tmp_path)
    lines = ["path,label"]
    lines += [f"{name},{'real' if i < 3 else 'fake'}" for i, name in enumerate(names)]
    lines += [
        "missing.jpg,real",              # 8: file not found
        f"{names[0]},real",              # 9: duplicate of line 2
        f"{names[1]},fake",              # 10: conflicts with line 3 -> both out
        f"{names[4]},",                  # 11: empty label
        ",fake",                         # 12: empty path
        "empty.jpg,real",                # 13: listed, but an empty file (found by the scan)
        "truncated.jpg,fake",            # 14: truncated
    ]
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    assert "empty.jpg" in bad
    with pytest.warns(UserWarning) as warned:
        class_names, files, skipped = load_labelled_files(f"csv:{tmp_path / 'labels.csv'}")
    said = [str(warning.message) for warning in warned]
    # duplicates and conflicts apart from the files and rows that cannot be used
    assert [line.splitlines()[0] for line in said] == [
        f"Skipping 5 files or rows of csv:{tmp_path / 'labels.csv'}:",
        f"Leaving out 1 file of csv:{tmp_path / 'labels.csv'} whose label rows conflict (every row of each):"]
    assert said[1].count(names[1]) == 2 and "duplicate" not in " ".join(said)
    reasons = {item.reason.split(" (")[0] for item in skipped}
    assert reasons == {"file not found", "duplicate of line 2", "conflicting labels 'real'",
                       "empty label", "empty path cell", "empty file", "corrupt or truncated"}
    assert len(skipped) == 8  # the two lines with conflicting labels are both reported
    assert str(tmp_path / names[1]) not in files["all"].paths
    assert files["all"].class_counts(2) == [3, 2]  # fake 3; real 3 less the conflicting one
    assert class_names == ["fake", "real"]
    assert describe_skipped(skipped) == [
        "Skipped 5 unreadable files or label rows.",
        "Kept 1 file listed more than once with the same label once (1 duplicate row).",
        f"Left out 1 file whose label rows conflict: {tmp_path / names[1]}."]
    assert count_left_out(skipped) == 6  # the duplicate's file is kept; the conflicting one counts once


def test_separate_validation_file_and_unknown_labels(tmp_path):
    names = write_images(tmp_path / "train", 3, 0) + write_images(tmp_path / "train", 3, 1)
    (tmp_path / "train.csv").write_text("image,label\n" + "".join(
        f"train/{name},{'cat' if i < 3 else 'dog'}\n" for i, name in enumerate(names)))
    val = write_images(tmp_path / "val", 2, 0) + write_images(tmp_path / "val", 2, 1)
    (tmp_path / "val.csv").write_text("image,label\n" + "".join(
        f"val/{name},{label}\n" for name, label in zip(val, ["cat", "dog", "dog", "bird"], strict=True)))
    source = f"csv:{tmp_path / 'train.csv'},val={tmp_path / 'val.csv'}"
    with pytest.warns(UserWarning, match="not in the training labels"):
        data = load_data(source, image_size=16, batch_size=2)
    assert data.class_counts() == {"train": {"cat": 3, "dog": 3}, "val": {"cat": 1, "dog": 2}}
    assert [item.reason.split(" (")[0] for item in data.skipped] == [
        "label 'bird' not in the training labels"]


@pytest.mark.parametrize("source, message", [
    ("csv:{tmp}/nope.csv", "does not exist"),
    ("csv:{tmp}/one.csv,val={tmp}/nope.csv", "nope.csv, which does not exist"),
    ("csv:{tmp}/one.csv", "at least two classes"),
    ("csv:{tmp}/empty.csv", "an empty file"),
    ("csv:{tmp}/unusable.csv", "no usable row"),
])
def test_bad_label_files_give_one_line(tmp_path, source, message):
    write_images(tmp_path, 2, 0)
    (tmp_path / "one.csv").write_text("path,label\nimg_0_0.jpg,a\nimg_0_1.jpg,a\n")
    (tmp_path / "empty.csv").write_text("\n")
    (tmp_path / "unusable.csv").write_text("path,label\nghost.jpg,a\n")
    with pytest.raises(DataError, match=message) as error:
        load_labelled_files(source.format(tmp=tmp_path))
    assert "\n" not in str(error.value)


# --------------------------------------------------------------------- tfds


def test_tfds_source_with_mock_data(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setenv("KERASDL_HOME", str(tmp_path / "home"))
    # mock_data makes download_and_prepare a no-op; only the reachability check needs faking.
    monkeypatch.setattr(sources, "_online", lambda host=sources.TFDS_HOST: True)
    with tfds.testing.mock_data(num_examples=12):
        class_names, files, skipped = load_labelled_files("tfds:beans:train")
        assert class_names == ["angular_leaf_spot", "bean_rust", "healthy"]
        assert list(files) == ["all"] and len(files["all"]) == 12 and not skipped
        written = sorted((tmp_path / "home" / "tfds" / "beans").rglob("*.png"))
        assert len(written) == 12
        data = load_data("tfds:beans:train", image_size=16, batch_size=4, val_split=0.25)
    images, labels = next(iter(data.train))
    assert images.shape[1:] == (16, 16, 3) and np.all(np.asarray(labels) < 3)


def test_tfds_unknown_name_and_not_image_classification(monkeypatch):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DataError, match="'no_such_set', which TFDS does not know") as error:
        load_labelled_files("tfds:no_such_set")
    assert "\n" not in str(error.value)


def test_tfds_offline_and_not_prepared_is_one_line(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow_datasets")
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.setattr(sources, "_online", lambda host=sources.TFDS_HOST: False)
    with pytest.raises(DataError, match="Expected TFDS data set 'beans' prepared in") as error:
        load_labelled_files("tfds:beans")
    assert "\n" not in str(error.value) and "tfds build beans" in str(error.value)


def test_tfds_source_parsing():
    assert sources.parse_tfds_source("tfds:beans") == ("beans", None)
    assert sources.parse_tfds_source("tfds:beans:train[:50%]") == ("beans", "train[:50%]")
    with pytest.raises(DataError):
        sources.parse_tfds_source("tfds:")


def test_a_run_reports_duplicate_and_conflicting_rows_apart_from_unreadable_files(caplog):
    """The run's status line: a duplicate row keeps its file; conflicting rows drop theirs, named."""
    import logging
    from types import SimpleNamespace

    from kerasdl.app.run_steps import print_class_counts
    from kerasdl.data.types import SkippedFile

    skipped = [SkippedFile("a.jpg", "duplicate of line 2 (l.csv line 5)", kind="duplicate"),
               SkippedFile("b.jpg", "conflicting labels '0' (line 3) and '1' (l.csv line 6)", kind="conflict"),
               SkippedFile("b.jpg", "conflicting labels ...; line 3 left out", kind="conflict"),
               SkippedFile("c.jpg", "empty file")]
    data = SimpleNamespace(skipped=skipped, class_counts=lambda: {"train": {"0": 3, "1": 2}})
    with caplog.at_level(logging.INFO, logger="kerasdl"):
        logging.getLogger("kerasdl").addHandler(caplog.handler)
        try:
            print_class_counts(data)
        finally:
            logging.getLogger("kerasdl").removeHandler(caplog.handler)
    assert caplog.messages[-1] == (
        "Skipped 1 unreadable file or label row. Kept 1 file listed more than once with the same label "
        "once (1 duplicate row). Left out 1 file whose label rows conflict: b.jpg. Every row is listed "
        "in skipped.csv.")
