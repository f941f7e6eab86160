"""Input-pipeline benchmark (issue 4): kerasdl's tf.data pipeline vs Keras's own.

Part 1: images per second delivered, epoch 1 (scan done, decode + resize +
fill the cache) and epoch 2 (from the cache), for kerasdl's `make_dataset` and
`keras.utils.image_dataset_from_directory` (+ `.cache().prefetch()`, as the
keras.io guides do), same folder, size, batch and shuffle, in the same run.

Part 2: training speed of a frozen-backbone classifier (MobileNetV2 alpha
0.35, head only) reading JPEGs from disk every epoch (no cache) vs the same
images already decoded in memory, and with kerasdl's default (cached) pipeline.

Run:
    python bench/bench_data.py --data ../shared/data/flowers128 --image-size 160
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasdl.data import load_labelled_files, make_dataset  # noqa: E402
from kerasdl.models import build_classifier  # noqa: E402
from kerasdl.recipe import Phase  # noqa: E402
from kerasdl.training import compile_for_phase  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    """Records the seconds of each epoch."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


def images_per_second(dataset, epochs: int) -> list[float]:
    rates = []
    for _ in range(epochs):
        started, count = time.perf_counter(), 0
        for images, _ in dataset:
            count += int(images.shape[0])
        rates.append(count / (time.perf_counter() - started))
    return rates


def pipeline_throughput(root: Path, image_size: int, batch_size: int, seed: int) -> None:
    started = time.perf_counter()
    class_names, files, skipped = load_labelled_files(root)
    scan_seconds = time.perf_counter() - started
    all_files = files["all"]
    print(f"{len(all_files)} images, {len(class_names)} classes, {len(skipped)} skipped; "
          f"scan {scan_seconds:.1f} s ({len(all_files) / scan_seconds:.0f} files/s)")
    ours = make_dataset(all_files, image_size=image_size, batch_size=batch_size, training=True,
                        seed=seed, cache="memory")
    theirs = keras.utils.image_dataset_from_directory(
        root, image_size=(image_size, image_size), batch_size=batch_size, shuffle=True, seed=seed,
        interpolation="bilinear", verbose=False,
    ).cache().prefetch(tf.data.AUTOTUNE)
    for name, dataset in [("kerasdl make_dataset", ours),
                          ("keras image_dataset_from_directory", theirs)]:
        epoch1, epoch2 = images_per_second(dataset, 2)
        print(f"| {name} | {epoch1:.0f} | {epoch2:.0f} |", flush=True)


def decoded_in_memory(files, image_size: int) -> np.ndarray:
    streamed = make_dataset(files, image_size=image_size, batch_size=64, cache=False)
    return np.concatenate([images.numpy().astype(np.uint8) for images, _ in streamed])


def training_speed(root: Path, image_size: int, batch_size: int, seed: int, count: int,
                   epochs: int) -> None:
    class_names, files, _ = load_labelled_files(root)
    rng = np.random.default_rng(seed)
    subset = files["all"].subset(sorted(rng.choice(len(files["all"]), count, replace=False)))
    images = decoded_in_memory(subset, image_size)
    labels = np.asarray(subset.labels, dtype=np.int32)
    in_memory = (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .shuffle(count, seed=seed).batch(batch_size)
        .map(lambda x, y: (tf.cast(x, tf.float32), y)).prefetch(tf.data.AUTOTUNE)
    )
    pipelines = {
        "JPEGs from disk every epoch (kerasdl, cache off)": make_dataset(
            subset, image_size=image_size, batch_size=batch_size, training=True, seed=seed,
            cache=False),
        "decoded images in memory (from_tensor_slices)": in_memory,
        "kerasdl default (decode once, cache in memory)": make_dataset(
            subset, image_size=image_size, batch_size=batch_size, training=True, seed=seed),
    }
    rates = {}
    for name, dataset in pipelines.items():
        keras.utils.set_random_seed(seed)
        model = build_classifier("mobilenetv2", len(class_names), weights=None,
                                 image_size=image_size, backbone_options={"alpha": 0.35})
        compile_for_phase(model, Phase(trainable="head"), count // batch_size)
        timer = EpochTimer()
        model.fit(dataset, epochs=epochs, verbose=0, callbacks=[timer])
        seconds = timer.seconds
        # Epoch 1 traces the graph (and fills kerasdl's cache): time the rest.
        rates[name] = count / float(np.mean(seconds[1:]))
        print(f"| {name} | {rates[name]:.1f} | "
              f"{' / '.join(f'{s:.1f}' for s in seconds)} |", flush=True)
    disk, memory, default = rates.values()
    print(f"Ratio disk / memory: {disk / memory:.3f}; kerasdl default / memory: {default / memory:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data" / "flowers128"
    parser.add_argument("--data", type=Path, default=default_data, help="Class-folder tree.")
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-images", type=int, default=960,
                        help="Images of the training-speed comparison.")
    parser.add_argument("--epochs", type=int, default=4, help="Epochs per training-speed run.")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs, "
          f"{args.data}, {args.image_size} px, batch {args.batch_size}")
    if not args.skip_throughput:
        print("| pipeline | epoch 1 img/s | epoch 2 img/s |\n|---|---|---|")
        pipeline_throughput(args.data, args.image_size, args.batch_size, args.seed)
    if not args.skip_training:
        print("| input | training img/s (epochs 2+) | epoch seconds |\n|---|---|---|")
        training_speed(args.data, args.image_size, args.batch_size, args.seed,
                       args.train_images, args.epochs)


if __name__ == "__main__":
    main()
