"""Decoding, the scan for bad files, splits, balance and the tf.data pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerasdl.data.load import load_data, load_labelled_files
from kerasdl.data.pipeline import decode_image, make_dataset
from kerasdl.data.scan import inspect_image, scan_images, write_skipped_csv, write_split_csv
from kerasdl.data.splits import balanced_class_weights, stratified_split, warn_if_imbalanced
from kerasdl.data.types import ImageFiles
from kerasdl.errors import DataError
from tests.support.data_samples import (
    striped,
    write_bad_files,
    write_every_format,
    write_mixed_folder,
    write_rotated_jpeg,
)


def decode(path, size=24) -> np.ndarray:
    needs_pillow, reason = inspect_image(str(path))
    assert reason is None, reason
    return decode_image(tf.constant(str(path)), tf.constant(needs_pillow), size).numpy()


# ---------------------------------------------------------------- decoding


@pytest.mark.parametrize("kind", ["jpeg", "png", "bmp", "webp", "cmyk", "rgba", "palette", "gif",
                                  "png_as_jpg"])
def test_every_colour_format_decodes_to_the_same_rgb_pixels(tmp_path, kind):
    path = write_every_format(tmp_path, 1)[kind]
    image = decode(path)
    assert image.shape == (24, 24, 3) and image.dtype == np.uint8
    if kind in ("jpeg", "cmyk"):  # lossy: compare with Pillow's decoding of the file
        expected, tolerance = np.asarray(Image.open(path).convert("RGB")), 4.0
    elif kind in ("palette", "gif"):  # quantized to a palette when written
        expected, tolerance = np.asarray(Image.open(path).convert("RGB")), 0.0
    else:
        expected, tolerance = striped(1), 0.0
    assert np.abs(image.astype(int) - expected.astype(int)).mean() <= tolerance


@pytest.mark.parametrize("kind", ["gray", "sixteen", "onebit"])
def test_grayscale_16bit_and_1bit_become_three_equal_8bit_channels(tmp_path, kind):
    path = write_every_format(tmp_path, 0)[kind]
    image = decode(path)
    assert image.shape == (24, 24, 3) and image.dtype == np.uint8
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
    gray = np.asarray(Image.fromarray(striped(0)).convert("L"), dtype=int)
    if kind != "onebit":  # 1-bit dithers; the others keep the gray levels
        assert np.abs(image[..., 0].astype(int) - gray).max() <= 1


def test_animated_gif_gives_its_first_frame(tmp_path):
    path = write_every_format(tmp_path, 0)["gif"]
    first = np.asarray(Image.open(path).convert("RGB"))
    assert np.array_equal(decode(path), first)


def test_exif_orientation_is_honoured(tmp_path):
    pixels = write_rotated_jpeg(tmp_path / "rotated.jpg", height=16, width=32)
    needs_pillow, _ = inspect_image(str(tmp_path / "rotated.jpg"))
    assert needs_pillow
    image = decode_image(tf.constant(str(tmp_path / "rotated.jpg")), tf.constant(True), 32).numpy()
    # Orientation 6 means "rotate 90 degrees clockwise to display": the stored
    # 16x32 picture becomes 32x16, its top rows becoming the right columns.
    upright = np.rot90(pixels, k=-1)
    resized = np.asarray(Image.fromarray(upright).resize((32, 32), Image.BILINEAR), dtype=int)
    assert np.abs(image.astype(int) - resized).mean() < 12


def test_the_scan_names_every_bad_file_with_its_reason(tmp_path):
    expected = write_bad_files(tmp_path)
    for name, reason in expected.items():
        needs_pillow, found = inspect_image(str(tmp_path / name))
        assert found is not None and found.startswith(reason.split(" (")[0]), (name, found)


def test_scan_keeps_order_and_separates_good_from_bad(tmp_path):
    good = write_every_format(tmp_path / "good", 0)
    bad = write_bad_files(tmp_path / "bad")
    entries = [(str(p), 0) for p in good.values()] + [(str(tmp_path / "bad" / n), 1) for n in bad]
    files, skipped = scan_images(entries, workers=2)
    assert files.paths == [str(p) for p in good.values()]
    assert {s.path for s in skipped} == {str(tmp_path / "bad" / n) for n in bad}


# ------------------------------------------------------- sources and errors


def test_mixed_folder_trains_on_what_is_readable_and_reports_the_rest(tmp_path):
    root, bad = write_mixed_folder(tmp_path / "mixed")
    with pytest.warns(UserWarning, match="Skipping 12 files"):
        data = load_data(root, image_size=16, batch_size=4, val_split=0.25, seed=1)
    assert {s.path: s.reason for s in data.skipped}.keys() == bad.keys()
    for item in data.skipped:
        assert item.reason.startswith(bad[item.path].split(" (")[0])
    kept = sum(len(files) for files in data.files.values())
    assert kept == 2 * 2 * 12  # two classes, two sets of 12 readable files
    images, labels = next(iter(data.train))
    assert images.shape == (4, 16, 16, 3) and images.dtype == tf.float32
    seen = sum(int(x.shape[0]) for x, _ in data.train) + sum(int(x.shape[0]) for x, _ in data.val)
    assert seen == kept  # every readable file reaches the pipeline; none fails to decode
    write_skipped_csv(data.skipped, tmp_path / "skipped.csv")
    assert len((tmp_path / "skipped.csv").read_text().splitlines()) == 1 + len(bad)


def test_all_unreadable_stops_before_training_with_one_line(tmp_path):
    for name in ("a", "b"):
        write_bad_files(tmp_path / "bad" / name)
    with pytest.warns(UserWarning), pytest.raises(DataError) as error:
        load_data(tmp_path / "bad", image_size=16)
    message = str(error.value)
    assert "\n" not in message and "none in" in message and "12 files skipped" in message


def test_a_class_left_without_readable_images_is_an_error(tmp_path):
    Image.fromarray(striped(0)).save((tmp_path / "d" / "a").mkdir(parents=True) or tmp_path / "d/a/1.png")
    write_bad_files(tmp_path / "d" / "b")
    with pytest.warns(UserWarning), pytest.raises(DataError, match="none in b"):
        load_labelled_files(tmp_path / "d")


@pytest.mark.parametrize("make, message", [
    (lambda root: root / "missing", "does not exist"),
    (lambda root: (root.parent / "file.txt").write_text("x") and root.parent / "file.txt", "a file"),
    (lambda root: root.mkdir(exist_ok=True) or root, "no sub-folders"),
])
def test_bad_folder_sources_give_one_line(tmp_path, make, message):
    with pytest.raises(DataError, match=message) as error:
        load_labelled_files(make(tmp_path / "root"))
    assert "\n" not in str(error.value)


def test_presplit_folder_keeps_its_splits(split_folder):
    class_names, files, skipped = load_labelled_files(split_folder)
    assert class_names == ["cat", "dog"] and set(files) == {"train", "val"} and not skipped
    assert len(files["train"]) == 12 and len(files["val"]) == 6


# ------------------------------------------------------------------ splits


def test_stratified_split_keeps_proportions_and_is_seeded():
    labels = [0] * 40 + [1] * 20 + [2] * 10
    files = ImageFiles([f"f{i}.png" for i in range(70)], labels, [False] * 70)
    split = stratified_split(files, {"val": 0.2, "test": 0.1}, seed=3, num_classes=3)
    assert split["val"].class_counts(3) == [8, 4, 2]
    assert split["test"].class_counts(3) == [4, 2, 1]
    assert split["train"].class_counts(3) == [28, 14, 7]
    all_paths = split["train"].paths + split["val"].paths + split["test"].paths
    assert sorted(all_paths) == sorted(files.paths)  # disjoint and complete
    again = stratified_split(files, {"val": 0.2, "test": 0.1}, seed=3, num_classes=3)
    other = stratified_split(files, {"val": 0.2, "test": 0.1}, seed=4, num_classes=3)
    assert again["val"].paths == split["val"].paths and other["val"].paths != split["val"].paths


def test_every_class_keeps_a_training_image_when_tiny():
    files = ImageFiles(["a", "b", "c", "d"], [0, 0, 1, 1], [False] * 4)
    split = stratified_split(files, {"val": 0.5}, seed=0, num_classes=2)
    assert split["train"].class_counts(2) == [1, 1] and split["val"].class_counts(2) == [1, 1]


def test_split_csv_records_the_split(tmp_path, three_class_folder):
    data = load_data(three_class_folder, image_size=16, batch_size=4, val_split=0.34, test_split=0.34)
    write_split_csv(data, tmp_path / "split.csv")
    rows = [line.split(",") for line in (tmp_path / "split.csv").read_text().splitlines()[1:]]
    assert len(rows) == 18 and {row[0] for row in rows} == {"train", "val", "test"}
    assert {row[2] for row in rows} == {"a", "b", "c"}
    assert data.class_counts()["test"] == {"a": 2, "b": 2, "c": 2}


# ----------------------------------------------------------------- balance


def test_balanced_class_weights():
    weights = balanced_class_weights([90, 10])
    assert weights == pytest.approx({0: 100 / 180, 1: 5.0})
    assert 90 * weights[0] + 10 * weights[1] == pytest.approx(100)


def test_imbalance_warning_above_5x():
    with pytest.warns(UserWarning, match="'b' 3 .*10.0x.*data.class_weight='auto'"):
        assert warn_if_imbalanced([30, 3], ["a", "b"]) == 10
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_imbalanced([25, 5], ["a", "b"])  # exactly 5x: no warning


# ---------------------------------------------------------------- pipeline


def test_pipeline_caches_on_disk_and_reads_the_same_images(tmp_path, image_folder):
    _, files, _ = load_labelled_files(image_folder)
    in_memory = make_dataset(files["all"], image_size=16, batch_size=4, cache="memory")
    on_disk = make_dataset(files["all"], image_size=16, batch_size=4, cache="disk",
                           cache_dir=tmp_path / "cache", cache_name="train")
    first = np.concatenate([x for x, _ in on_disk])
    assert any(p.name.startswith("train") for p in (tmp_path / "cache").iterdir())
    second = np.concatenate([x for x, _ in on_disk])  # served from the cache file
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, np.concatenate([x for x, _ in in_memory]))


def test_training_split_reshuffles_each_epoch_and_validation_does_not(image_folder):
    data = load_data(image_folder, image_size=16, batch_size=16, val_split=0.25, seed=0)
    epoch1 = np.concatenate([y for _, y in data.train])
    epoch2 = np.concatenate([y for _, y in data.train])
    order1 = np.concatenate([x[:, 0, 0, 0] for x, _ in data.train])
    order2 = np.concatenate([x[:, 0, 0, 0] for x, _ in data.train])
    assert sorted(epoch1) == sorted(epoch2) and not np.array_equal(order1, order2)
    val1 = np.concatenate([y for _, y in data.val])
    assert np.array_equal(val1, np.concatenate([y for _, y in data.val]))
    assert np.array_equal(val1, data.files["val"].labels)


def test_one_hot_labels_for_training_and_validation_data(image_folder):
    data = load_data(image_folder, image_size=16, batch_size=4, one_hot=True)
    _, labels = next(iter(data.train))
    assert labels.shape == (4, 2) and labels.dtype == tf.float32
    _, val_labels = next(iter(data.validation_data()))
    assert val_labels.shape[-1] == 2
    _, sparse = next(iter(data.val))  # evaluation keeps class indices
    assert sparse.shape.rank == 1


def test_builtin_sample_source(tmp_path, monkeypatch):
    pytest.importorskip("skimage")
    monkeypatch.setenv("KERASDL_HOME", str(tmp_path / "home"))
    class_names, files, skipped = load_labelled_files("sample")
    assert class_names == ["face", "non_face"] and not skipped
    assert files["all"].class_counts(2) == [100, 100]
    assert (tmp_path / "home" / "sample_faces" / "face").is_dir()


def test_auto_image_size_is_the_typical_shorter_side_within_the_range(tmp_path):
    from kerasdl.data.scan import typical_image_size

    for index, (width, height) in enumerate([(40, 30), (50, 36), (64, 34), (30, 60), (90, 35), (70, 34)]):
        for name in ("a", "b"):
            (tmp_path / "images" / name).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (width, height), (index * 40, 0, 0)).save(tmp_path / "images" / name / f"{index}.png")
    paths = [str(p) for p in sorted((tmp_path / "images").rglob("*.png"))]
    assert typical_image_size(paths) == 34  # shorter sides 30, 36, 34, 30, 35, 34 (twice each)
    assert typical_image_size(paths + [str(tmp_path / "missing.png")]) == 34
    within = load_data(tmp_path / "images", image_size="auto", size_range=(16, 64), batch_size=2)
    assert 30 <= within.image_size <= 36  # the training split's own median
    assert next(iter(within.train))[0].shape[1:] == (within.image_size, within.image_size, 3)
    assert load_data(tmp_path / "images", image_size="auto", size_range=(48, 64)).image_size == 48
    assert load_data(tmp_path / "images", image_size="auto", size_range=(8, 20)).image_size == 20


def test_auto_image_size_range_follows_the_backbone():
    from kerasdl.backbones.registry import image_size_range

    assert image_size_range("efficientnetlite0") == (112, 256)
    assert image_size_range("resnet50") == (112, 256)
    assert image_size_range("efficientnetlite2") == (130, 297)
