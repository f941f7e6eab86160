"""XLA (`jit_compile=True`) against Keras's default on CPU: predict and train steps.

Builds the classifier `kerasdl run` trains (the default recipe's backbone,
random weights: speed does not depend on their values), compiles it as the
engine does (`compile_for_phase`, the fine-tune phase: the whole backbone,
BatchNorm frozen) once with `jit_compile=True` and once with `False` (what
Keras's `"auto"` picks on a machine without a GPU), and times the first call
(tracing and compiling) and the next calls of `predict_on_batch` and
`train_on_batch` on one batch.

Usage (from the repository root):

    python bench/bench_xla_cpu.py --image-size 224 --batch-size 32 --steps 3
"""

from __future__ import annotations

import argparse
import json
import time

import keras
import numpy as np

from kerasdl.models.classifier import build_classifier
from kerasdl.recipe import get_recipe
from kerasdl.training.engine import compile_for_phase


def timed_calls(call, steps: int) -> tuple[float, float]:
    """Seconds of the first call, and the mean of the next `steps` calls."""
    started = time.perf_counter()
    call()
    first = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(steps):
        call()
    return round(first, 2), round((time.perf_counter() - started) / steps, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="efficientnet-lite0-transfer")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    recipe = get_recipe(args.recipe)
    phase = recipe.phases[-1]
    phase.epochs = 5 if phase.epochs == "auto" else phase.epochs  # only sizes the schedule
    images = np.random.default_rng(0).uniform(0, 255, (args.batch_size, args.image_size, args.image_size, 3))
    images = images.astype("float32")
    labels = np.arange(args.batch_size) % 2
    result = {"backbone": recipe.backbone.name, "image_size": args.image_size, "batch_size": args.batch_size}
    for jit in (False, True):
        keras.utils.set_random_seed(0)
        model = build_classifier(recipe.backbone.name, 2, weights=None, image_size=args.image_size)
        compile_for_phase(model, phase, steps_per_epoch=20, jit_compile=jit, num_classes=2)
        name = "xla" if jit else "default"
        result[f"{name}_predict_s"] = timed_calls(lambda m=model: m.predict_on_batch(images), args.steps)
        result[f"{name}_train_s"] = timed_calls(lambda m=model: m.train_on_batch(images, labels), args.steps)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
