"""One `kerasdl run` as one process, then as two multi-worker processes on this machine.

Both runs are the same job (recipe, data, seed, global batch); the feature
cache is off in both, since multi-worker training turns it off. On one
machine the two workers share its cores, so this shows that the distributed
path trains the same model and what its overhead is, not a speedup.

Usage:
    python bench/bench_multi_worker.py --output bench/results/multi_worker -- \
        mobilenetv2-transfer --data ../shared/data/hymenoptera --set backbone.alpha=0.35 \
        --weights ../shared/weights/mobilenet_v2_0.35_224_no_top_from_teachable_machine.weights.h5 \
        --image-size 96 --batch-size 16 --epochs 2 --fine-tune-epochs 1 --seed 0
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from kerasdl.training.multi_worker import local_tf_configs


def run_once(run_args: list[str], output: Path, configs: list[str | None]) -> tuple[float, list[str]]:
    """Starts one `kerasdl run` per TF_CONFIG (None: no distribution); returns wall time and logs."""
    kerasdl = Path(sys.executable).with_name("kerasdl")
    processes = []
    started = time.perf_counter()
    for index, config in enumerate(configs):
        env = dict(os.environ)
        extra = ["--no-feature-cache"]
        if config is not None:
            env["TF_CONFIG"] = config
            extra = ["--distribute", "multi-worker"]
        target = output if index == 0 else output.with_name(f"{output.name}-worker{index}")
        command = [str(kerasdl), "run", *run_args, "--output", str(target), "--quiet", *extra]
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
    logs = [process.communicate(timeout=3600)[0] for process in processes]
    wall = time.perf_counter() - started
    for process, log in zip(processes, logs):
        if process.returncode:
            sys.exit(f"kerasdl run failed:\n{log[-3000:]}")
    return wall, logs


def summary(run_dir: Path, wall: float) -> dict:
    with open(run_dir / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "wall_s": round(wall, 1),
        "epoch_s": [round(float(row["seconds"]), 1) for row in rows],
        "train_loss": [round(float(row["loss"]), 4) for row in rows],
        "val_accuracy": [round(float(row["val_accuracy"]), 4) for row in rows],
        "test_accuracy": metrics["accuracy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="Everything after -- goes to `kerasdl run`.")
    parser.add_argument("--output", type=Path, required=True,
                        help="Folder for the two run folders (replaced).")
    args, rest = parser.parse_known_args()
    run_args, output = [a for a in rest if a != "--"], args.output
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    print(f"load average before: {os.getloadavg()[0]:.1f}", flush=True)

    wall, _ = run_once(run_args, output / "one_process", [None])
    results = {"one process": summary(output / "one_process", wall)}
    wall, logs = run_once(run_args, output / "two_workers", local_tf_configs(2))
    results["two workers"] = summary(output / "two_workers", wall)
    fingerprints = [re.findall(r"Trained weights fingerprint: (\w+)", log) for log in logs]
    results["two workers"]["same weights on both"] = fingerprints[0] == fingerprints[1] != []
    results["two workers"]["other worker left a folder"] = (output / "two_workers-worker1").exists()
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(json.dumps(results, indent=2))
    (output / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
