"""Benchmark: a frozen-backbone head phase with feature caching vs plain `model.fit`.

Both train the same classifier (the same backbone weights, head, optimizer,
data and epochs) in the same process. The decoded images are cached in
memory before either is timed, so neither pays for JPEG decoding.

Run:
    python bench/bench_feature_cache.py --data ../shared/data/flowers128 \
        --weights ../shared/weights/mobilenet_v2_0.35_224_no_top_from_teachable_machine.weights.h5
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import keras

from kerasdl.data.load import load_data
from kerasdl.models.classifier import build_classifier, set_trainable
from kerasdl.recipe import transfer_recipe
from kerasdl.training.engine import TrainOptions, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="Class-folder tree.")
    parser.add_argument("--weights", required=True, help="Backbone weights file.")
    parser.add_argument("--backbone", default="mobilenetv2")
    parser.add_argument("--alpha", type=float, default=0.35)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = load_data(args.data, image_size=args.image_size, batch_size=args.batch_size, seed=args.seed)
    started = time.perf_counter()
    for split in (data.train, data.val):  # fill the in-memory image cache for both runs
        for _ in split:
            pass
    print(f"decoded and cached {len(data.files['train'])} + {len(data.files['val'])} images "
          f"in {time.perf_counter() - started:.1f} s")

    def classifier():
        keras.utils.set_random_seed(args.seed)
        return build_classifier(
            args.backbone, len(data.class_names), weights=args.weights, image_size=args.image_size,
            backbone_options={"alpha": args.alpha},
        )

    recipe = transfer_recipe(
        "bench", args.backbone, description="benchmark", image_size=args.image_size,
        head_epochs=args.epochs, fine_tune_epochs=0, batch_size=args.batch_size, augment="none",
        seed=args.seed,
    )

    model = classifier()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        result = train(model, data, recipe, run_dir=run_dir, verbose=2,
                       options=TrainOptions(feature_cache=True))
    kerasdl_seconds = time.perf_counter() - started
    kerasdl_acc = [row["val_accuracy"] for row in result.history]

    model = classifier()
    set_trainable(model, "head")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["accuracy"])
    started = time.perf_counter()
    history = model.fit(data.train, validation_data=data.val, epochs=args.epochs, verbose=2)
    plain_seconds = time.perf_counter() - started
    plain_acc = history.history["val_accuracy"]

    summary = {
        "images": {"train": len(data.files["train"]), "val": len(data.files["val"])},
        "kerasdl_seconds": round(kerasdl_seconds, 1),
        "plain_fit_seconds": round(plain_seconds, 1),
        "speedup": round(plain_seconds / kerasdl_seconds, 2),
        "kerasdl_val_accuracy": {"last": round(kerasdl_acc[-1], 4), "best": round(max(kerasdl_acc), 4)},
        "plain_val_accuracy": {"last": round(plain_acc[-1], 4), "best": round(max(plain_acc), 4)},
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
