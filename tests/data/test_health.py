"""Data health on tiny planted faults: exact and near copies, leakage, conflicts, file-property shortcuts."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from kerasdl.data.health import check_health, exact_duplicates, near_duplicates, shortcut_score
from kerasdl.data.image_facts import read_facts, read_image_facts
from kerasdl.data.types import ImageFiles


def _photo(rng, size=64) -> Image.Image:
    """A smooth random picture: blurred noise, so resizing and JPEG keep its look (unlike pure noise)."""
    coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((size, size), Image.BICUBIC)


def _files(tmp_path, images: dict[str, Image.Image], fmt="PNG", **save) -> list[str]:
    paths = []
    for name, image in images.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, fmt, **save)
        paths.append(str(path))
    return paths


def test_facts_read_the_file_properties_and_the_look(tmp_path):
    rng = np.random.default_rng(0)
    photo = _photo(rng, 48)
    jpeg, = _files(tmp_path, {"a.jpg": photo}, "JPEG", quality=90)
    gray_rgb, = _files(tmp_path, {"g.jpg": photo.convert("L").convert("RGB")}, "JPEG", quality=95)
    rgba, = _files(tmp_path, {"r.png": photo.convert("RGBA")})
    blank, = _files(tmp_path, {"b.png": Image.new("RGB", (40, 20), (5, 5, 5))})
    facts = read_image_facts(jpeg)
    assert (facts.width, facts.height, facts.format, facts.mode) == (48, 48, "JPEG", "RGB")
    assert facts.jpeg_quality == 90 and facts.subsampling == "4:2:0" and not facts.exif
    assert not facts.grayscale and read_image_facts(gray_rgb).grayscale
    assert read_image_facts(rgba).mode == "RGBA" and read_image_facts(rgba).jpeg_quality is None
    blank_facts = read_image_facts(blank)
    assert blank_facts.aspect_ratio == 2.0 and blank_facts.information == 0.0 and blank_facts.brightness < 10
    assert blank_facts.sharpness == 0.0 < facts.sharpness
    assert blank_facts.properties()["bytes_per_pixel"] == blank_facts.bytes / 800


def test_exact_copies_are_found_whatever_their_file_and_said_by_kind(tmp_path):
    rng = np.random.default_rng(1)
    photos = [_photo(rng) for _ in range(6)]
    paths = _files(tmp_path, {f"p{i}.png": photo for i, photo in enumerate(photos)})
    paths += _files(tmp_path, {"copy_as_bmp.bmp": photos[0]}, "BMP")  # same pixels, another format
    paths += _files(tmp_path, {"copy_in_val.png": photos[1], "copy_other_class.png": photos[2]})
    labels = [0, 0, 0, 1, 1, 1, 0, 0, 1]
    splits = ["train"] * 6 + ["train", "val", "train"]
    groups = {frozenset(g.paths): g for g in exact_duplicates(read_facts(paths), labels, splits)}
    assert set(groups) == {frozenset({paths[0], paths[6]}), frozenset({paths[1], paths[7]}),
                           frozenset({paths[2], paths[8]})}
    assert [(g.across_classes, g.across_splits) for g in groups.values()] == [
        (False, False), (False, True), (True, False)]


def test_near_copies_are_clustered_and_different_images_are_not(tmp_path):
    rng = np.random.default_rng(2)
    photos = [_photo(rng, 96) for _ in range(12)]
    paths = _files(tmp_path, {f"p{i}.png": photo for i, photo in enumerate(photos)})
    smaller = photos[0].resize((70, 70), Image.BILINEAR)  # resized to 73% and re-encoded at quality 50
    cropped = photos[0].crop((2, 2, 94, 94))  # 4% cropped
    paths += _files(tmp_path, {"small.jpg": smaller}, "JPEG", quality=50)
    paths += _files(tmp_path, {"crop.jpg": cropped}, "JPEG", quality=70)
    labels, splits = [0] * 14, ["train"] * 13 + ["val"]
    groups = near_duplicates(read_facts(paths), labels, splits)
    assert [set(g.paths) for g in groups] == [{paths[0], paths[12], paths[13]}]
    assert groups[0].across_splits and not groups[0].across_classes


def test_a_file_property_that_gives_the_label_away_is_named(tmp_path):
    rng = np.random.default_rng(3)
    real = {f"real/{i}.jpg": _photo(rng, 48) for i in range(12)}
    fake = {f"fake/{i}.jpg": _photo(rng, 64) for i in range(12)}  # every generated image larger
    paths = _files(tmp_path, real, "JPEG", quality=85) + _files(tmp_path, fake, "JPEG", quality=85)
    labels = [0] * 12 + [1] * 12
    score = shortcut_score(read_facts(paths), labels)
    assert score.flagged and score.auc > 0.95
    assert {"width", "height"} <= set(score.strongest_tied) and score.property_auc["width"] > 0.95
    assert "jpeg_quality" not in score.property_auc  # the same for every image: no information
    same_size = _files(tmp_path, {f"same/{i}.jpg": _photo(rng, 48) for i in range(12)}, "JPEG", quality=85)
    honest = shortcut_score(read_facts(paths[:12] + same_size), labels)
    assert not honest.flagged
    assert shortcut_score(read_facts(paths[:14]), [0] * 12 + [1] * 2) is None  # too few to cross-validate


def test_check_health_reports_findings_in_lines_and_json(tmp_path):
    rng = np.random.default_rng(4)
    train = _files(tmp_path, {f"train/a/{i}.png": _photo(rng) for i in range(6)})
    train += _files(tmp_path, {f"train/b/{i}.png": _photo(rng) for i in range(6)})
    val = _files(tmp_path, {"val/a/leak.png": Image.open(train[0]).copy(),
                            "val/b/conflict.png": Image.open(train[1]).copy()})
    files = {"train": ImageFiles(train, [0] * 6 + [1] * 6, [False] * 12),
             "val": ImageFiles(val, [0, 1], [False, False])}
    health = check_health(files)
    lines = health.findings()
    assert any("straddle splits" in line and "leak.png" in line for line in lines)
    assert any("different labels" in line and "conflict.png" in line for line in lines)
    summary = json.loads(json.dumps(health.to_json()))
    assert summary["images"] == 14
    assert summary["exact_duplicates"]["groups"] == 2 and summary["exact_duplicates"]["across_splits"] == 2
    assert summary["exact_duplicates"]["across_classes"] == 1
    assert summary["near_duplicates"]["groups"] >= 2 and summary["shortcut"]["flagged"] is False
    assert check_health({"train": ImageFiles(train[:6], [0] * 6, [False] * 6)}).findings() == []
