"""Seconds per fine-tuning step of kerasdl's classifier, XLA on and off, interleaved.

Builds the classifier `kerasdl run` fine-tunes (the default recipe's backbone,
random weights: speed does not depend on their values), sets the fine-tune
phase's trainable layers (the whole backbone, BatchNorm frozen), compiles it
as the engine does (`compile_for_phase`) once with `jit_compile=True` and
once with `False`, and then times `train_on_batch` on one batch in rounds
that alternate between the two, so load on a shared machine hits both alike.
The median of the rounds is reported.

Usage (from the repository root):

    python bench/bench_train_step.py --backbone efficientnetlite0 --image-size 224 --batch-size 32 --rounds 6
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import keras
import numpy as np

from kerasdl.models.classifier import build_classifier
from kerasdl.recipe import get_recipe
from kerasdl.training.engine import compile_for_phase


def compiled(backbone: str, image_size: int, jit_compile: bool, phase) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = build_classifier(backbone, 2, weights=None, image_size=image_size)
    compile_for_phase(model, phase, steps_per_epoch=20, jit_compile=jit_compile, num_classes=2)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="efficientnet-lite0-transfer")
    parser.add_argument("--backbone", default=None, help="defaults to the recipe's")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=3, help="steps per round")
    args = parser.parse_args()
    recipe = get_recipe(args.recipe)
    phase = recipe.phases[-1]
    backbone = args.backbone or recipe.backbone.name
    images = np.random.default_rng(0).uniform(0, 255, (args.batch_size, args.image_size, args.image_size, 3))
    labels = np.arange(args.batch_size) % 2
    models = {jit: compiled(backbone, args.image_size, jit, phase) for jit in (True, False)}
    for model in models.values():  # trace and compile outside the timing
        model.train_on_batch(images.astype("float32"), labels)
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.rounds):
        for jit, model in models.items():
            started = time.perf_counter()
            for _ in range(args.steps):
                model.train_on_batch(images.astype("float32"), labels)
            times[jit].append((time.perf_counter() - started) / args.steps)
    print(json.dumps({
        "backbone": backbone, "image_size": args.image_size, "batch_size": args.batch_size,
        "phase": phase.name, "trainable": phase.trainable,
        "xla_s_per_step": round(statistics.median(times[True]), 3),
        "no_xla_s_per_step": round(statistics.median(times[False]), 3),
        "rounds": {"xla": [round(t, 3) for t in times[True]], "no_xla": [round(t, 3) for t in times[False]]},
    }))


if __name__ == "__main__":
    main()
