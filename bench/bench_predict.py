"""Peak memory of prediction over many small images: kerasdl's streaming
`predict_files` against the plain-Keras way (load every image into one array,
then `model.predict`).

Each measurement runs in a fresh Python process and reports its peak resident
set size (`ru_maxrss`), its peak just after loading the model (the baseline:
Python, TensorFlow and the model), and the wall time.

Usage:
    python bench/bench_predict.py [--counts 1000 10000] [--image-size 64] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def write_images(folder: Path, count: int, size: int) -> list[str]:
    """Writes `count` random-noise JPEGs (1.5x the model's input size)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        path = folder / f"{index:05d}.jpg"
        if not path.exists():
            Image.fromarray(rng.integers(0, 255, (size * 3 // 2, size * 3 // 2, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def write_model(path: Path, size: int) -> None:
    from kerasdl.models.classifier import build_classifier

    model = build_classifier("mobilenetv2", 2, weights=None, image_size=size, backbone_options={"alpha": 0.35})
    model.save(path)
    (path.parent / "labels.txt").write_text("real\nfake\n")


def child_kerasdl(model_path: str, list_file: str, output: str) -> dict:
    from kerasdl.inference.predict import load_model_file, predict_files

    model = load_model_file(model_path)
    baseline = peak_rss_mb()
    counts = predict_files(model, f"@{list_file}", output, batch_size=32, progress=False)
    return {"baseline_mb": baseline, "predicted": counts["predicted"]}


def child_plain_keras(model_path: str, list_file: str, output: str) -> dict:
    import keras

    model = keras.saving.load_model(model_path, compile=False)
    baseline = peak_rss_mb()
    size = int(model.input_shape[1])
    paths = Path(list_file).read_text().split()
    images = np.stack([keras.utils.img_to_array(keras.utils.load_img(p, target_size=(size, size)))
                       for p in paths])
    probabilities = model.predict(images, batch_size=32, verbose=0)
    with open(output, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "real", "fake"])
        writer.writerows([p, *row] for p, row in zip(paths, probabilities, strict=True))
    return {"baseline_mb": baseline, "predicted": len(paths)}


def measure(way: str, model_path: Path, list_file: Path, output: Path) -> dict:
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, __file__, "--child", way, str(model_path), str(list_file), str(output)],
        capture_output=True, text=True, check=True,
    )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--image-size", type=int, default=64, help="Model input size in pixels.")
    parser.add_argument("--workdir", type=Path, default=None, help="Where images and the model go.")
    parser.add_argument("--child", nargs=4, metavar=("WAY", "MODEL", "LIST", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        way, model_path, list_file, output = args.child
        result = {"kerasdl": child_kerasdl, "plain_keras": child_plain_keras}[way](model_path, list_file, output)
        result["peak_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_predict_"))
    images = write_images(workdir / "images", max(args.counts), args.image_size)
    model_path = workdir / "model.keras"
    if not model_path.exists():
        write_model(model_path, args.image_size)
    print(f"MobileNetV2 alpha 0.35, {args.image_size} px input, random {args.image_size * 3 // 2} px JPEGs, "
          "batch 32; peak RSS of a fresh process")
    print("| images | way | peak RSS MB | after model load MB | growth MB | seconds | images/s |")
    print("|---|---|---|---|---|---|---|")
    for count in args.counts:
        list_file = workdir / f"list_{count}.txt"
        list_file.write_text("\n".join(images[:count]) + "\n")
        for way in ("kerasdl", "plain_keras"):
            result = measure(way, model_path, list_file, workdir / f"{way}_{count}.csv")
            assert result["predicted"] == count, result
            growth = result["peak_mb"] - result["baseline_mb"]
            print(f"| {count:,} | {way} | {result['peak_mb']:.0f} | {result['baseline_mb']:.0f} | {growth:.0f} | "
                  f"{result['seconds']} | {count / result['seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
