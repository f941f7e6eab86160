"""Input-pipeline benchmark (issue 4): kerasdl's tf.data pipeline vs Keras's own.

Part 1: images per second delivered, epoch 1 (scan done, decode + resize +
fill the cache) and epoch 2 (from the cache), for kerasdl's `make_dataset` and
`keras.utils.image_dataset_from_directory` (+ `.cache().prefetch()`, as the
keras.io guides do), same folder, size, batch and shuffle, in the same run.

Part 2: training speed of a frozen-backbone classifier (MobileNetV2 alpha
0.35, head only) reading JPEGs from disk every epoch (no cache) vs the same
images already decoded in memory, and with kerasdl's default (cached) pipeline;
after one warm-up epoch each, the inputs take turns, one epoch at a time.

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

from kerasdl.data.load import load_labelled_files
from kerasdl.data.pipeline import make_dataset  # noqa: E402
from kerasdl.models.classifier import build_classifier  # noqa: E402
from kerasdl.recipe import Phase  # noqa: E402
from kerasdl.training.engine import compile_for_phase  # noqa: E402


def images_per_second(dataset, epochs: int) -> list[float]:
    rates = []
    for _ in range(epochs):
        started, count = time.perf_counter(), 0
        for images, _ in dataset:
            count += int(images.shape[0])
        rates.append(count / (time.perf_counter() - started))
    return rates


def pipeline_throughput(root: Path, image_size: int, batch_size: int, seed: int, repeats: int) -> None:
    started = time.perf_counter()
    class_names, files, skipped = load_labelled_files(root)
    scan_seconds = time.perf_counter() - started
    all_files = files["all"]
    print(f"{len(all_files)} images, {len(class_names)} classes, {len(skipped)} skipped; "
          f"scan {scan_seconds:.1f} s ({len(all_files) / scan_seconds:.0f} files/s)")
    for repeat in range(1, repeats + 1):  # fresh pipelines each time; the machine is noisy
        ours = make_dataset(all_files, image_size=image_size, batch_size=batch_size, training=True,
                            seed=seed, cache="memory")
        theirs = keras.utils.image_dataset_from_directory(
            root, image_size=(image_size, image_size), batch_size=batch_size, shuffle=True,
            seed=seed, interpolation="bilinear", verbose=False,
        ).cache().prefetch(tf.data.AUTOTUNE)
        for name, dataset in [("kerasdl make_dataset", ours),
                              ("keras image_dataset_from_directory + cache + prefetch", theirs)]:
            epoch1, epoch2 = images_per_second(dataset, 2)
            print(f"| {repeat} | {name} | {epoch1:.0f} | {epoch2:.0f} |", flush=True)


def decoded_in_memory(files, image_size: int) -> np.ndarray:
    streamed = make_dataset(files, image_size=image_size, batch_size=64, cache=False)
    return np.concatenate([images.numpy().astype(np.uint8) for images, _ in streamed])


def training_speed(root: Path, image_size: int, batch_size: int, seed: int, count: int,
                   rounds: int) -> None:
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
    models = {}
    for name, dataset in pipelines.items():
        keras.utils.set_random_seed(seed)
        model = build_classifier("mobilenetv2", len(class_names), weights=None,
                                 image_size=image_size, backbone_options={"alpha": 0.35})
        compile_for_phase(model, Phase(trainable="head"), count // batch_size)
        model.fit(dataset, epochs=1, verbose=0)  # traces the graph, fills kerasdl's cache
        models[name] = model
    # One epoch of each input in turn, so that the other jobs on the machine
    # slow them alike; the median over rounds.
    seconds = {name: [] for name in pipelines}
    for _ in range(rounds):
        for name, dataset in pipelines.items():
            started = time.perf_counter()
            models[name].fit(dataset, epochs=1, verbose=0)
            seconds[name].append(time.perf_counter() - started)
    rates = {name: count / float(np.median(times)) for name, times in seconds.items()}
    for name, times in seconds.items():
        print(f"| {name} | {rates[name]:.1f} | {' / '.join(f'{s:.1f}' for s in times)} |")
    disk, memory, default = (np.asarray(times) for times in seconds.values())
    print(f"Ratio of speeds, median over rounds: disk / memory {np.median(memory / disk):.3f}; "
          f"kerasdl default / memory {np.median(memory / default):.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data" / "flowers128"
    parser.add_argument("--data", type=Path, default=default_data, help="Class-folder tree.")
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-images", type=int, default=1280,
                        help="Images of the training-speed comparison.")
    parser.add_argument("--rounds", type=int, default=5,
                        help="Timed epochs of each input, taken in turn.")
    parser.add_argument("--repeats", type=int, default=3, help="Runs of the throughput comparison.")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs, "
          f"{args.data}, {args.image_size} px, batch {args.batch_size}")
    if not args.skip_throughput:
        print("| run | pipeline | epoch 1 img/s | epoch 2 img/s |\n|---|---|---|---|")
        pipeline_throughput(args.data, args.image_size, args.batch_size, args.seed, args.repeats)
    if not args.skip_training:
        print("| input | training img/s (median) | seconds of each timed epoch |\n|---|---|---|")
        training_speed(args.data, args.image_size, args.batch_size, args.seed,
                       args.train_images, args.rounds)


if __name__ == "__main__":
    main()
