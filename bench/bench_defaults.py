"""kerasdl's default recipe against the keras.io transfer-learning guide, per data set.

For each data set, one after the other in this process's order:

(a) `kerasdl run efficientnet-lite0-transfer --data DIR` with nothing else
    (plus `--image-size` where the bench downscales), in its own process;
(b) the keras.io guide ("Transfer learning & fine-tuning") written with plain
    Keras, in its own process: the same EfficientNet-Lite0 backbone with the
    same converted ImageNet weights, RandomFlip + RandomRotation(0.1) inside
    the model, 10 epochs of the new head on the frozen backbone (Adam 1e-3,
    through the backbone every epoch), then 3 epochs of the whole network at
    Adam 1e-5 with every BatchNormalization layer frozen (`trainable = False`,
    as STACK_NOTES says the guide's `training=False` alone does not keep the
    moving statistics). Softmax head, batch 32, the same split (kerasdl's
    `load_data`: stratified 80/20 with seed 0, or the source's own val/);
(c) (a) again with `--time-budget` set to (b)'s wall time (`--budget-side`).

Each side's wall time is that of its whole process (imports, reading the
images, training, evaluation; kerasdl's also includes its default export of
a SavedModel and a TFLite file with their parity checks). ROC-AUC and accuracy
are computed by the same function (`kerasdl.evaluation.metrics.compute_metrics`)
on the validation split. The guide reports its last epoch; its best epoch by
validation (what kerasdl keeps) is also printed, to show the selection effect.

Usage (from the repository root):

    python bench/bench_defaults.py --runs faces,hymenoptera,flowers --output /tmp/bench_defaults
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
RUNS = {
    # name: (data folder, extra kerasdl flags, image size of both sides)
    "faces": (SHARED / "faces-real-ai", [], 224),
    "hymenoptera": (SHARED / "hymenoptera", [], 224),
    "flowers": (SHARED / "flowers128", ["--image-size", "128"], 128),
}


def guide(data_dir: str, image_size: int, out: Path, head_epochs: int = 10, fine_tune_epochs: int = 3) -> None:
    """The keras.io guide's two phases in plain Keras; writes `out/guide.json`."""
    import keras
    import numpy as np

    from kerasdl.backbones.weights import build_backbone, prepare_weights
    from kerasdl.data.load import load_data
    from kerasdl.evaluation.metrics import compute_metrics
    from kerasdl.training.engine import PositiveClassAUC

    keras.utils.set_random_seed(0)
    data = load_data(data_dir, image_size=image_size, batch_size=32, val_split=0.2, seed=0)
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
    second = model.fit(data.train, validation_data=data.val,
                       epochs=fine_tune_epochs, verbose=2)
    labels, probabilities = [], []
    for images, batch_labels in data.val:
        probabilities.append(model.predict_on_batch(images))
        labels.append(np.asarray(batch_labels))
    result = compute_metrics(np.concatenate(labels), np.concatenate(probabilities), data.class_names)
    history = {key: first.history[key] + second.history[key] for key in first.history}
    monitor = "val_auc" if num_classes == 2 else "val_accuracy"
    (out / "guide.json").write_text(json.dumps({
        "accuracy": result["accuracy"], "auc": result.get("auc"),
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
    return {"auc": metrics.get("auc"), "accuracy": metrics["accuracy"], "wall_s": round(wall_s, 1),
            "training_s": round(sum(phase["seconds"] for phase in phases), 1),
            "monitor": metrics.get("monitor"), "best_epoch": metrics.get("best_epoch"),
            "epochs": [phase["epochs"] for phase in phases],
            "phase_s": [round(phase["seconds"], 1) for phase in phases],
            "command": " ".join(command)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="faces,hymenoptera,flowers")
    parser.add_argument("--output", default="/tmp/bench_defaults")
    parser.add_argument("--budget-side", action=argparse.BooleanOptionalAction, default=True,
                        help="also run (c): kerasdl with --time-budget equal to the guide's wall time")
    parser.add_argument("--guide", nargs=3, metavar=("DATA", "SIZE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.guide:
        guide(args.guide[0], int(args.guide[1]), Path(args.guide[2]))
        return
    output = Path(args.output)
    for name in args.runs.split(","):
        data_dir, flags, size = RUNS[name]
        folder = output / name
        folder.mkdir(parents=True, exist_ok=True)
        load = os.getloadavg()[0]
        command = [sys.executable, "-m", "kerasdl.cli", "run", "efficientnet-lite0-transfer",
                   "--data", str(data_dir), *flags, "--output", str(folder / "kerasdl"), "--overwrite",
                   "--quiet"]
        defaults = run_kerasdl(command, folder / "kerasdl")
        guide_s = timed([sys.executable, __file__, "--guide", str(data_dir), str(size), str(folder)],
                        folder / "guide.log")
        plain = json.loads((folder / "guide.json").read_text())
        line = {
            "data": name, "image_size": size, "load_before": round(load, 1),
            "kerasdl": defaults,
            "guide": {"auc": plain["auc"], "accuracy": plain["accuracy"], "wall_s": round(guide_s, 1),
                      **{k: v for k, v in plain.items() if k.startswith("best")}},
        }
        if args.budget_side:
            budget = [*command[:-4], "--output", str(folder / "budget"), "--overwrite", "--quiet",
                      "--time-budget", f"{int(guide_s)}s"]
            line["kerasdl_budget"] = run_kerasdl(budget, folder / "budget")
        print(json.dumps(line), flush=True)
        with open(output / "results.jsonl", "a") as handle:
            handle.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
