"""The default recipe on each Keras backend: step times and whole runs, side by side.

For each backend asked for (TensorFlow, JAX, PyTorch; one not installed is
left out), each in processes of its own:

(a) step times of `efficientnet-lite0-transfer`'s two phases at 224 px,
    batch 32, on random images (`--steps`; the median step after one warm-up
    step, which also traces or compiles it):
    - head phase: the frozen backbone's forward pass over a batch (the
      feature cache computes it once per image), and a train step of the
      head on cached features;
    - fine-tuning phase: a train step of the whole network at the recipe's
      layer-wise rates, compiled by kerasdl's `compile_for_phase` as `run`
      compiles it (`jit_compile="auto"`: XLA on JAX, none on TensorFlow's
      CPU, eager on PyTorch);
(b) whole default runs, `kerasdl --backend B run efficientnet-lite0-transfer
    --data DIR --seed S` with nothing else, for each data set and seed:
    wall time of the process, the phases' times, accuracy and ROC-AUC on the
    validation split, and the exported TFLite file's parity.

Usage (from the repository root):

    python bench/bench_backends.py --output /tmp/bench_backends
    python bench/bench_backends.py --runs hymenoptera --seeds 0,1,2 --no-steps --output /tmp/bench_b2

Results: one JSON line per measurement in OUTPUT/results.jsonl, printed too.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KERASDL_SHARED", ROOT.parent / "shared")) / "data"
DATA = {"faces": SHARED / "faces-real-ai", "hymenoptera": SHARED / "hymenoptera"}
RECIPE = "efficientnet-lite0-transfer"


def step_times(steps: int, batch_size: int = 32, image_size: int = 224) -> dict:
    """(a) in this process, on its backend: seconds per step of each phase."""
    import keras
    import numpy as np

    from kerasdl.models.classifier import build_classifier
    from kerasdl.recipe import get_recipe
    from kerasdl.training.compile import compile_for_phase
    from kerasdl.training.feature_cache import build_feature_extractor, build_head_model

    recipe = get_recipe(RECIPE)
    head_phase, fine_tune = recipe.phases
    fine_tune.epochs = 6
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size, image_size, image_size, 3)).astype("float32")
    labels = rng.integers(0, 2, batch_size)
    keras.utils.set_random_seed(0)
    model = build_classifier("efficientnetlite0", 2, weights=None, image_size=image_size, trainable="head")
    extractor = build_feature_extractor(model)
    features = np.asarray(extractor.predict_on_batch(images))
    head = build_head_model(model)
    compile_for_phase(model, head_phase, 20, fit_model=head, num_classes=2)
    compile_for_phase(model, fine_tune, 20, num_classes=2)  # trainable all, layer-wise rates
    return {
        "features_per_batch_s": _median_time(lambda: extractor.predict_on_batch(images), steps),
        "head_step_cached_s": _median_time(lambda: head.train_on_batch(features, labels), steps),
        "fine_tune_step_s": _median_time(lambda: model.train_on_batch(images, labels), steps),
        "jit_compile": bool(model.jit_compile),
    }


def _median_time(call, steps: int) -> float:
    call()  # traces / compiles
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 4)


def run_default(backend: str, data: str, seed: int, output: Path) -> dict:
    """(b): one whole default run in its own process; its figures from the run folder."""
    run_dir = output / f"{data}_{backend}_seed{seed}"
    command = [sys.executable, "-m", "kerasdl.cli", "--backend", backend, "run", RECIPE, "--data",
               str(DATA[data]), "--seed", str(seed), "--output", str(run_dir), "--overwrite", "--quiet"]
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with open(output / f"{run_dir.name}.log", "w") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                       env=_environment(backend))
    wall = time.perf_counter() - started
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    parity = json.loads((run_dir / "export" / "parity.json").read_text())
    phases = config["training"]["phases"]
    return {
        "kind": "run", "backend": backend, "data": data, "seed": seed, "load_before": round(load, 1),
        "accuracy": metrics["accuracy"], "auc": metrics.get("auc"), "wall_s": round(wall, 1),
        "training_s": round(sum(phase["seconds"] for phase in phases), 1),
        "phase_s": [round(phase["seconds"], 1) for phase in phases],
        "epochs": [phase["epochs"] for phase in phases], "best_epoch": metrics.get("best_epoch"),
        "tflite_top1_agreement": parity["model.tflite"]["top1_agreement"],
        "command": " ".join(command[2:]),
    }


def _environment(backend: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    return {**env, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--runs", default="faces", help="data sets of the whole runs: faces, hymenoptera")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per phase (0: no step times)")
    parser.add_argument("--output", default="/tmp/bench_backends")
    parser.add_argument("--step-times", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step_times:  # the child of (a)
        print(json.dumps(step_times(args.steps)))
        return
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    backends = [b for b in args.backends.split(",")
                if b == "tensorflow" or importlib.util.find_spec(b) is not None]
    for backend in backends if args.steps else []:
        load = os.getloadavg()[0]
        done = subprocess.run([sys.executable, __file__, "--step-times", "--steps", str(args.steps)],
                              check=True, capture_output=True, text=True, cwd=ROOT, env=_environment(backend))
        _record({"kind": "steps", "backend": backend, "load_before": round(load, 1),
                 **json.loads(done.stdout.strip().splitlines()[-1])}, output)
    for data in args.runs.split(","):  # the backends take turns, so a change of load hits each alike
        for seed in map(int, args.seeds.split(",")):
            for backend in backends:
                _record(run_default(backend, data, seed, output), output)


def _record(line: dict, output: Path) -> None:
    print(json.dumps(line), flush=True)
    with open(output / "results.jsonl", "a") as handle:
        handle.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
