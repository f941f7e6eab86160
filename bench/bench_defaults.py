"""kerasdl's default recipe against the keras.io transfer-learning guide, per data set and seed.

For each data set and each seed (`--seeds N`: seeds 0 to N-1), one after the
other, each side in its own process:

(a) `kerasdl run efficientnet-lite0-transfer --data DIR --seed S` with nothing
    else (its defaults, export included);
(b) the keras.io guide ("Transfer learning & fine-tuning") written with plain
    Keras: the same EfficientNet-Lite0 backbone with the same converted
    ImageNet weights at its own 224 px (128 px for flowers128, whose images
    are that size), RandomFlip + RandomRotation(0.1) inside the model, 10
    epochs of the new head on the frozen backbone (Adam 1e-3, through the
    backbone every epoch), then 3 epochs of the whole network at Adam 1e-5
    with every BatchNormalization layer frozen (`trainable = False`, as
    STACK_NOTES says the guide's `training=False` alone does not keep the
    moving statistics). Softmax head, batch 32, the same split as (a)
    (kerasdl's `load_data` with seed S: stratified 80/20, or the source's own
    val/), seeded with S;
(c) with `--budget-side`: (a) again with `--time-budget` set to (b)'s wall time;
(d) each `--variant NAME=FLAGS`: (a) with those flags added, to measure an
    alternative default against the same seeds and splits.

Each side's wall time is that of its whole process (imports, reading the
images, training, evaluation; kerasdl's also its default export of a
SavedModel and a TFLite file with their parity checks). ROC-AUC and accuracy
come from the same function (`kerasdl.evaluation.metrics.compute_metrics`) on
the validation split, with their bootstrap CIs. The summary gives each side's
mean ± sd over the seeds: a default changes only on a gain larger than that
spread.

Usage (from the repository root):

    KERASDL_SHARED=../shared python bench/bench_defaults.py --runs faces,hymenoptera,flowers --seeds 3
    python bench/bench_defaults.py --runs faces --seeds 3 --no-guide --variant light="--augment light"
    python bench/bench_defaults.py --summarize /tmp/bench_defaults/results.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KERASDL_SHARED", ROOT.parent / "shared")) / "data"
RUNS = {
    # name: (data folder, the guide's image size)
    "faces": (SHARED / "faces-real-ai", 224),
    "hymenoptera": (SHARED / "hymenoptera", 224),
    "flowers": (SHARED / "flowers128", 128),
}


def guide(data_dir: str, image_size: int, out: Path, seed: int, head_epochs: int = 10,
          fine_tune_epochs: int = 3) -> None:
    """The keras.io guide's two phases in plain Keras; writes `out/guide.json`."""
    import keras
    import numpy as np

    from kerasdl.backbones.build import build_backbone
    from kerasdl.backbones.weights import prepare_weights
    from kerasdl.data.load import load_data
    from kerasdl.evaluation.metrics import compute_metrics
    from kerasdl.training.engine import PositiveClassAUC

    keras.utils.set_random_seed(seed)
    data = load_data(data_dir, image_size=image_size, batch_size=32, val_split=0.2, seed=seed)
    num_classes = len(data.class_names)
    prepare_weights("efficientnetlite0", image_size=image_size, weights="imagenet", options={})
    base = build_backbone("efficientnetlite0", image_size=image_size, weights="imagenet")
    base.trainable = False
    inputs = keras.Input((image_size, image_size, 3))
    x = keras.layers.RandomFlip("horizontal")(inputs)
    x = keras.layers.RandomRotation(0.1)(x)
    x = keras.layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0)(x)  # Lite0's input scaling
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    metrics = ["accuracy"] + ([PositiveClassAUC()] if num_classes == 2 else [])
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=metrics)
    first = model.fit(data.train, validation_data=data.val, epochs=head_epochs, verbose=2)
    base.trainable = True
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    model.compile(keras.optimizers.Adam(1e-5), "sparse_categorical_crossentropy", metrics=metrics)
    second = model.fit(data.train, validation_data=data.val, epochs=fine_tune_epochs, verbose=2)
    labels, probabilities = [], []
    for images, batch_labels in data.val:
        probabilities.append(model.predict_on_batch(images))
        labels.append(np.asarray(batch_labels))
    result = compute_metrics(np.concatenate(labels), np.concatenate(probabilities), data.class_names)
    history = {key: first.history[key] + second.history[key] for key in first.history}
    monitor = "val_auc" if num_classes == 2 else "val_accuracy"
    (out / "guide.json").write_text(json.dumps({
        "accuracy": result["accuracy"], "auc": result.get("auc"),
        "accuracy_ci95": result["accuracy_ci95"], "auc_ci95": result.get("auc_ci95"),
        "best_epoch_by_" + monitor: int(np.argmax(history[monitor]) + 1),
        "best_" + monitor: float(np.max(history[monitor])),
        "history": history,
    }, indent=1))


def timed(command: list[str], log: Path) -> float:
    started = time.perf_counter()
    with open(log, "w") as handle:
        subprocess.run(command, check=True, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    return time.perf_counter() - started


def run_kerasdl(command: list[str], run_dir: Path) -> dict:
    """Runs one kerasdl command; returns its figures from the run folder."""
    wall_s = timed(command, run_dir.parent / f"{run_dir.name}.log")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    phases = config["training"]["phases"]
    return {"auc": metrics.get("auc"), "auc_ci95": metrics.get("auc_ci95"), "accuracy": metrics["accuracy"],
            "accuracy_ci95": metrics.get("accuracy_ci95"), "wall_s": round(wall_s, 1),
            "training_s": round(sum(phase["seconds"] for phase in phases), 1),
            "image_size": config.get("image_size"),
            "monitor": metrics.get("monitor"), "best_epoch": metrics.get("best_epoch"),
            "epochs": [phase["epochs"] for phase in phases],
            "phase_s": [round(phase["seconds"], 1) for phase in phases],
            "command": " ".join(command)}


def kerasdl_command(data_dir: Path, seed: int, output: Path, flags: list[str]) -> list[str]:
    return [sys.executable, "-m", "kerasdl.cli", "run", "efficientnet-lite0-transfer", "--data", str(data_dir),
            "--seed", str(seed), "--output", str(output), "--overwrite", "--quiet", *flags]


def run_seed(name: str, seed: int, folder: Path, args) -> dict:
    """Every side of one data set and seed; returns the JSON line."""
    data_dir, size = RUNS[name]
    line: dict = {"data": name, "seed": seed, "load_before": round(os.getloadavg()[0], 1)}
    line["kerasdl"] = run_kerasdl(kerasdl_command(data_dir, seed, folder / "kerasdl", []), folder / "kerasdl")
    if args.guide:
        guide_s = timed([sys.executable, __file__, "--guide-run", str(data_dir), str(size), str(folder),
                         str(seed)], folder / "guide.log")
        plain = json.loads((folder / "guide.json").read_text())
        line["guide"] = {key: plain[key] for key in ("auc", "auc_ci95", "accuracy", "accuracy_ci95")}
        line["guide"].update(wall_s=round(guide_s, 1), **{k: v for k, v in plain.items() if k.startswith("best")})
        if args.budget_side:
            line["kerasdl_budget"] = run_kerasdl(
                kerasdl_command(data_dir, seed, folder / "budget", ["--time-budget", f"{int(guide_s)}s"]),
                folder / "budget")
    for variant in args.variant:
        label, _, flags = variant.partition("=")
        line[f"variant:{label}"] = run_kerasdl(
            kerasdl_command(data_dir, seed, folder / f"variant_{label}", shlex.split(flags)),
            folder / f"variant_{label}")
    return line


def summarize(lines: list[dict]) -> str:
    """Mean ± sd over the seeds of each data set and side, as a Markdown table."""
    rows = ["| data | side | seeds | ROC-AUC mean ± sd | accuracy mean ± sd | wall s mean ± sd |",
            "|---|---|---|---|---|---|"]

    def spread(values):
        values = [v for v in values if v is not None]
        if not values:
            return "-"
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f} ± {sd:.3f}"

    for data in dict.fromkeys(line["data"] for line in lines):
        mine = [line for line in lines if line["data"] == data]
        sides = dict.fromkeys(key for line in mine for key in line if isinstance(line[key], dict))
        for side in sides:
            figures = [line[side] for line in mine if side in line]
            rows.append(f"| {data} | {side} | {len(figures)} | {spread([f.get('auc') for f in figures])} | "
                        f"{spread([f['accuracy'] for f in figures])} | "
                        f"{spread([f['wall_s'] for f in figures]).replace('.000', '')} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="faces,hymenoptera,flowers")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0 to N-1 for every side")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--output", default="/tmp/bench_defaults")
    parser.add_argument("--guide", action=argparse.BooleanOptionalAction, default=True,
                        help="run (b), the keras.io guide in plain Keras")
    parser.add_argument("--budget-side", action=argparse.BooleanOptionalAction, default=False,
                        help="also run (c): kerasdl with --time-budget equal to the guide's wall time")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                        help="also run kerasdl with these flags (repeatable)")
    parser.add_argument("--summarize", metavar="RESULTS_JSONL", help="only print the summary of a results file")
    parser.add_argument("--guide-run", nargs=4, metavar=("DATA", "SIZE", "OUT", "SEED"), dest="guide_args",
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.guide_args:  # the guide side, in its own process
        data_dir, size, out, seed = args.guide_args
        guide(data_dir, int(size), Path(out), int(seed))
        return
    if args.summarize:
        print(summarize([json.loads(line) for line in Path(args.summarize).read_text().splitlines()]))
        return
    output = Path(args.output)
    lines = []
    for name in args.runs.split(","):
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            folder = output / name / f"seed_{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            line = run_seed(name, seed, folder, args)
            lines.append(line)
            print(json.dumps(line), flush=True)
            with open(output / "results.jsonl", "a") as handle:
                handle.write(json.dumps(line) + "\n")
    print(summarize(lines))


if __name__ == "__main__":
    main()
