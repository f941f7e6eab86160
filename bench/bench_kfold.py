"""k-fold cross-validation against a single run, scored on the same held-out test split.

Both sides hold out the same stratified test split (`--set data.test_split=0.2`,
seed S), which neither trains nor selects on:

(a) a single run: `kerasdl run efficientnet-lite0-transfer --data DIR --seed S
    --set data.test_split=0.2`, validated on 20% of the rest, evaluated on the test split;
(b) `--folds K` on the same data: K runs over the rest, each validating on
    one fold; metrics.json's `ensemble_test` scores the K models averaged on
    the test split, and `fold_metrics` each fold's model alone on it.

Printed and appended to `OUTPUT/results.jsonl`: test ROC-AUC and accuracy
with their bootstrap 95% CIs, the out-of-fold metrics, and wall times.

Usage (from the repository root):

    KERASDL_SHARED=../shared python bench/bench_kfold.py --data faces --folds 5 --output /tmp/bench_kfold
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KERASDL_SHARED", ROOT.parent / "shared")) / "data"
DATA = {"faces": SHARED / "faces-real-ai", "hymenoptera": SHARED / "hymenoptera", "flowers": SHARED / "flowers128"}


def run(flags: list[str], output: Path) -> float:
    command = [sys.executable, "-m", "kerasdl.cli", "run", "efficientnet-lite0-transfer", *flags,
               "--output", str(output), "--overwrite", "--quiet"]
    started = time.perf_counter()
    with open(output.parent / f"{output.name}.log", "w") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    return round(time.perf_counter() - started, 1)


def scored(metrics: dict) -> dict:
    return {key: metrics.get(key) for key in ("auc", "auc_ci95", "accuracy", "accuracy_ci95", "num_samples")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="faces", choices=sorted(DATA))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-split", type=float, default=0.2)
    parser.add_argument("--output", default="/tmp/bench_kfold")
    args = parser.parse_args()
    output = Path(args.output) / f"{args.data}_seed{args.seed}"
    output.mkdir(parents=True, exist_ok=True)
    common = ["--data", str(DATA[args.data]), "--seed", str(args.seed), "--set", f"data.test_split={args.test_split}"]
    single_s = run(common, output / "single")
    kfold_s = run([*common, "--folds", str(args.folds)], output / "kfold")
    single = json.loads((output / "single" / "metrics.json").read_text())
    kfold = json.loads((output / "kfold" / "metrics.json").read_text())
    line = {
        "data": args.data, "seed": args.seed, "folds": args.folds, "test_split": args.test_split,
        "single": {"test": scored(single), "wall_s": single_s},
        "kfold": {"ensemble_test": scored(kfold["ensemble_test"]), "out_of_fold": scored(kfold),
                  "fold_tests": [fold["test"] for fold in kfold["fold_metrics"]], "wall_s": kfold_s},
    }
    print(json.dumps(line, indent=1), flush=True)
    with open(Path(args.output) / "results.jsonl", "a") as handle:
        handle.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
