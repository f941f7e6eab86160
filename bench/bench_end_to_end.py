"""End-to-end figures of `kerasdl run`: wall time, accuracy per phase, peak memory.

Runs the CLI in a child process (as a user would) and reads the run folder.

Usage:
    python bench/bench_end_to_end.py --output bench/results/e2e -- \
        mobilenetv2-transfer --data ../shared/data/flowers128 --set backbone.alpha=0.35 \
        --weights ../shared/weights/mobilenet_v2_0.35_224_no_top_from_teachable_machine.weights.h5
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="Run folder to create (replaced).")
    parser.add_argument("run_args", nargs=argparse.REMAINDER, help="-- then `kerasdl run` arguments.")
    args = parser.parse_args()
    run_args = [a for a in args.run_args if a != "--"]
    shutil.rmtree(args.output, ignore_errors=True)
    kerasdl = Path(sys.executable).with_name("kerasdl")
    command = [str(kerasdl), "run", *run_args, "--output", args.output, "--quiet"]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    run_dir = Path(args.output)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    with open(run_dir / "history.csv") as handle:
        history = list(csv.DictReader(handle))
    print(f"command: kerasdl run {' '.join(run_args)}")
    print(f"wall time: {wall:.0f} s, peak RSS {peak_mib:.0f} MiB")
    for phase in config["training"]["phases"]:
        rows = [row for row in history if row["phase"] == phase["name"]]
        last = float(rows[-1]["val_accuracy"]) if rows else float("nan")
        print(f"phase {phase['name']}: {phase['epochs']} epochs, {phase['seconds']:.0f} s, "
              f"{phase['images_per_second']} img/s, val_accuracy after phase {last:.4f}, "
              f"best in phase {phase['best_metric']:.4f}")
    print(f"final (best model) accuracy {metrics['accuracy']:.4f} on {metrics['num_samples']} "
          f"{metrics['split']} images" + (f", AUC {metrics['auc']:.4f}" if metrics.get("auc") else ""))


if __name__ == "__main__":
    main()
