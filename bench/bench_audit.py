"""Data-audit benchmark (issue 29): planted faults in copies of ../shared data, and how many are found.

Part `plant`: a copy of flowers128 with, all seeded and listed in
planted.json: 50 exact copies (25 into another class: label conflicts; 25
into the same class under a new name), 100 near copies (resized to 60-90%,
saved at JPEG quality 40-70, up to 5% cropped from each side, same class),
and 5% of the original images moved to another class (flipped labels).

Part `health`: the in-run checks (`kerasdl.data.health`) on the planted copy:
recall of the planted exact and near copies, the near-copy pairs reported
outside the planted list (pairs the original data already holds are listed
apart), and the time of each step.

Part `shortcut`: faces-real-ai as it is, and a copy whose `ai` images are
resized to 240 px: the file-property shortcut score of each.

Part `scale`: the streaming passes (facts, exact and near copies, shortcut
score) on 100,000 generated 24-40 px images: time and peak memory (RSS).

Part `splits`: kerasdl's own val split and 5 folds of the planted copy:
groups of copies straddling two sides, with `data.group_duplicates` on and off.

Part `audit`: `kerasdl audit` on the planted copy: the same recalls from
audit.json, label-error precision and recall on the flipped images, and its
time against one feature extraction of the same images.

Run:
    python bench/bench_audit.py --shared ../shared --work /tmp/bench_audit --parts plant,health,shortcut,splits
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import time
from itertools import combinations
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from PIL import Image  # noqa: E402

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _images(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def plant(shared: Path, work: Path, *, seed: int = 0, exact: int = 50, near: int = 100,
          flip_fraction: float = 0.05) -> Path:
    """Copies flowers128 to `work/flowers_planted` with the faults, listed in planted.json."""
    source, target = shared / "data" / "flowers128", work / "flowers_planted"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    rng = random.Random(seed)
    originals = _images(target)
    classes = sorted(p.name for p in target.iterdir() if p.is_dir())
    chosen = rng.sample(originals, exact + near + int(flip_fraction * len(originals)))
    exact_files, near_files, flipped = chosen[:exact], chosen[exact:exact + near], chosen[exact + near:]
    planted = {"exact": [], "near": [], "flipped": []}
    for index, path in enumerate(exact_files):
        other = rng.choice([c for c in classes if c != path.parent.name]) if index % 2 == 0 else path.parent.name
        copy = target / other / f"planted_exact_{index}{path.suffix}"
        shutil.copyfile(path, copy)
        planted["exact"].append([str(path), str(copy)])
    for index, path in enumerate(near_files):
        with Image.open(path) as image:
            image = image.convert("RGB")
            width, height = image.size
            crop = [rng.uniform(0, 0.05) for _ in range(4)]
            image = image.crop((int(crop[0] * width), int(crop[1] * height),
                                width - int(crop[2] * width), height - int(crop[3] * height)))
            scale = rng.uniform(0.6, 0.9)
            image = image.resize((max(8, int(image.width * scale)), max(8, int(image.height * scale))),
                                 Image.BILINEAR)
            copy = path.parent / f"planted_near_{index}.jpg"
            image.save(copy, "JPEG", quality=rng.randint(40, 70))
        planted["near"].append([str(path), str(copy)])
    for path in flipped:
        other = rng.choice([c for c in classes if c != path.parent.name])
        moved = target / other / path.name
        path.rename(moved)
        planted["flipped"].append({"path": str(moved), "true": path.parent.name, "given": other})
        # a flipped original that was also copied: its copies name the new path
        for pairs in (planted["exact"], planted["near"]):
            for pair in pairs:
                pair[:] = [str(moved) if p == str(path) else p for p in pair]
    (work / "planted.json").write_text(json.dumps(planted, indent=1))
    print(f"planted into {target}: {exact} exact copies, {near} near copies, {len(flipped)} flipped labels")
    return target


def _pairs(groups) -> set[frozenset]:
    return {frozenset(pair) for group in groups for pair in combinations(group, 2)}


def _recall(planted_pairs, found: set[frozenset]) -> float:
    return sum(frozenset(pair) in found for pair in planted_pairs) / max(1, len(planted_pairs))


def _files_of(root: Path):
    from kerasdl.data.load import load_labelled_files

    class_names, files, _ = load_labelled_files(root)
    return class_names, files["all"]


def health(shared: Path, work: Path) -> dict:
    """The in-run checks on the planted copy: recalls, extra pairs, seconds."""
    from kerasdl.data.health import exact_duplicates, near_duplicates, shortcut_score
    from kerasdl.data.image_facts import read_facts

    planted = json.loads((work / "planted.json").read_text())
    _, files = _files_of(work / "flowers_planted")
    started = time.perf_counter()
    facts = read_facts(files.paths)
    read_seconds = time.perf_counter() - started
    splits = ["all"] * len(files)
    started = time.perf_counter()
    exact = exact_duplicates(facts, files.labels, splits)
    near = near_duplicates(facts, files.labels, splits)
    group_seconds = time.perf_counter() - started
    started = time.perf_counter()
    score = shortcut_score(facts, files.labels)
    shortcut_seconds = time.perf_counter() - started
    exact_found, near_found = _pairs(g.paths for g in exact), _pairs(g.paths for g in near)
    planted_pairs = {frozenset(p) for p in planted["exact"] + planted["near"]}
    original = _original_near_pairs(shared)
    planted_files = {p for pair in planted["exact"] + planted["near"] for p in pair}
    extra = [pair for pair in near_found - planted_pairs
             if not pair <= planted_files and frozenset(_original_name(p) for p in pair) not in original]
    result = {
        "images": len(files), "read_seconds": round(read_seconds, 1), "group_seconds": round(group_seconds, 2),
        "shortcut_seconds": round(shortcut_seconds, 1),
        "exact_recall": _recall(planted["exact"], exact_found),
        "near_recall": _recall(planted["near"], near_found),
        "near_pairs_reported": len(near_found), "near_pairs_in_original_data": len(original),
        "near_pairs_outside_planted_and_original": len(extra),
        "shortcut_auc": None if score is None else round(score.auc, 3),
    }
    print(json.dumps(result, indent=1))
    return result


def _original_name(path: str) -> str:
    return Path(path).name


def _original_near_pairs(shared: Path) -> set[frozenset]:
    """Near-copy pairs the unmodified flowers128 already holds (by file name)."""
    from kerasdl.data.health import near_duplicates
    from kerasdl.data.image_facts import read_facts

    _, files = _files_of(shared / "data" / "flowers128")
    groups = near_duplicates(read_facts(files.paths), files.labels, ["all"] * len(files))
    return _pairs([_original_name(p) for p in g.paths] for g in groups)


def shortcut(shared: Path, work: Path) -> dict:
    """The shortcut score of faces-real-ai, and of a copy whose `ai` images are 240 px."""
    from kerasdl.data.health import shortcut_score
    from kerasdl.data.image_facts import read_facts

    source, target = shared / "data" / "faces-real-ai", work / "faces_resized"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    for path in _images(target / "ai"):
        with Image.open(path) as image:
            resized = image.convert("RGB").resize((240, 240), Image.BICUBIC)
        resized.save(path, "JPEG", quality=90)
    result = {}
    for name, root in (("faces", source), ("faces_ai_240px", target)):
        _, files = _files_of(root)
        score = shortcut_score(read_facts(files.paths), files.labels)
        result[name] = score.to_json()
        print(f"{name}: ROC-AUC {score.auc:.3f}, strongest {score.strongest} "
              f"({score.property_auc.get(score.strongest, 0):.3f}), flagged {score.flagged}")
    return result


def scale(shared: Path, work: Path, *, count: int = 100_000, seed: int = 0) -> dict:
    """The streaming passes on `count` small generated images: time and peak memory.

    Images are 24-40 px JPEGs and PNGs (1% exact copies), written once into `work/scale`.
    """
    import resource

    import numpy as np

    from kerasdl.data.health import exact_duplicates, near_duplicates, shortcut_score
    from kerasdl.data.image_facts import read_facts

    root = work / "scale"
    rng = np.random.default_rng(seed)
    paths, labels = [], []
    for index in range(count):
        label = index % 2
        path = root / str(label) / f"{index:06d}.{'png' if index % 5 == 0 else 'jpg'}"
        paths.append(str(path))
        labels.append(label)
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if index % 100 == 99:  # an exact copy of the image before it of the same class
            shutil.copyfile(paths[-3], path.with_suffix(Path(paths[-3]).suffix))
            paths[-1] = str(path.with_suffix(Path(paths[-3]).suffix))
            continue
        side = int(rng.integers(24, 41))
        coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((side, side), Image.BICUBIC).save(path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    timings = {}
    started = time.perf_counter()
    facts = read_facts(paths)
    timings["read_seconds"] = round(time.perf_counter() - started, 1)
    after_read = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    splits = ["all"] * len(paths)
    for name, check in (("exact", lambda: exact_duplicates(facts, labels, splits)),
                        ("near", lambda: near_duplicates(facts, labels, splits)),
                        ("shortcut", lambda: shortcut_score(facts, labels))):
        started = time.perf_counter()
        found = check()
        timings[f"{name}_seconds"] = round(time.perf_counter() - started, 1)
        if name == "exact":
            timings["exact_groups"] = len(found)
    result = {"images": len(paths), **timings, "peak_rss_mb_before": before // 1024,
              "peak_rss_mb_after_read": after_read // 1024,
              "peak_rss_mb_end": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}
    print(json.dumps(result, indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("KERASDL_SHARED", "../shared")))
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_audit"))
    parser.add_argument("--parts", default="plant,health,shortcut")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = {}
    for part in args.parts.split(","):
        if part == "plant":
            plant(args.shared, args.work, seed=args.seed)
        else:
            results[part] = {"health": health, "shortcut": shortcut, "scale": scale}[part](args.shared, args.work)
    (args.work / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
