"""The learning-rate range test (Smith 2015; fastai's `lr_find`) on the head.

The backbone's features are computed once per training image (as in feature
caching); the new head then takes one optimizer step per batch while the
learning rate grows geometrically from `start` to `end`. The smoothed loss
against the learning rate shows where training is fastest; the suggestion is
the rate a tenth of the one at the lowest smoothed loss (fastai's "minimum /
10"), and the head's weights are put back afterwards.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import keras
import numpy as np

from kerasdl._util.plotting import pyplot, save_figure
from kerasdl.errors import TrainingError
from kerasdl.recipe import Phase
from kerasdl.training.feature_cache import (
    build_feature_extractor,
    build_head_model,
    extract_features,
    features_dataset,
)
from kerasdl.training.optimizers import make_optimizer

__all__ = ["LRFindResult", "find_learning_rate", "plot_lr_find"]


@dataclasses.dataclass
class LRFindResult:
    """What the range test measured.

    Attributes:
        learning_rates: The rate of each step.
        losses: The smoothed (bias-corrected exponential average) training
            loss after each step.
        suggestion: The suggested learning rate.
        min_loss_learning_rate: The rate at the lowest smoothed loss.
        stopped_early: The loss diverged (above 4x its minimum) before `end`.
    """

    learning_rates: list[float]
    losses: list[float]
    suggestion: float
    min_loss_learning_rate: float
    stopped_early: bool

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data."""
        return dataclasses.asdict(self)


def find_learning_rate(
    model: keras.Model,
    data,
    *,
    optimizer: str = "adam",
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = 300,
    seed: int = 0,
) -> LRFindResult:
    """Runs the range test on the head of a classifier, on cached features.

    Args:
        model: A classifier from `build_classifier` (its head is trained
            during the test, then restored).
        data: An `ImageData`; its training split is read once without
            augmentation.
        optimizer: The optimizer of the head phase. Defaults to `"adam"`.
        start: The first learning rate. Defaults to `1e-7`.
        end: The last learning rate. Defaults to `10.0`.
        steps: Optimizer steps from `start` to `end` (batches repeat as
            needed). Defaults to `300`.
        seed: Shuffle seed. Defaults to `0`.

    Returns:
        An `LRFindResult`.

    Raises:
        TrainingError: when the loss falls at no learning rate (it diverges
            from the first steps, or is not finite).

    Example:
    ```python
    result = find_learning_rate(model, data)
    print(result.suggestion)
    ```
    """
    if not (0 < start < end) or steps < 5:
        raise TrainingError(
            f"Expected 0 < start < end and at least 5 steps. Received: start {start}, end {end}, "
            f"{steps} steps."
        )
    source = data.train_source()
    train_images = source.unaugmented if source is not None else data.train
    features = extract_features(build_feature_extractor(model), train_images,
                                num_images=len(data.files["train"]), name="lr_find")
    head = build_head_model(model)
    saved = [w.copy() for w in head.get_weights()]
    phase = Phase(name="lr_find", epochs=1, learning_rate=start, optimizer=optimizer)
    head.compile(optimizer=make_optimizer(phase, 1), loss="sparse_categorical_crossentropy")
    batches = features_dataset(features, batch_size=data.batch_size, shuffle=True, seed=seed).repeat()
    factor = (end / start) ** (1.0 / (steps - 1))
    rates, losses = [], []
    average, best, stopped = 0.0, math.inf, False
    try:
        for step, (x, y) in enumerate(batches.take(steps).as_numpy_iterator()):
            rate = start * factor**step
            head.optimizer.learning_rate.assign(rate)
            loss = float(np.asarray(head.train_on_batch(x, y)).reshape(-1)[0])
            if not math.isfinite(loss):
                stopped = True
                break
            average = 0.98 * average + 0.02 * loss
            smoothed = average / (1 - 0.98 ** (step + 1))
            rates.append(rate)
            losses.append(smoothed)
            best = min(best, smoothed)
            if step > 5 and smoothed > 4 * best:
                stopped = True
                break
    finally:
        head.set_weights(saved)
    lowest = int(np.argmin(losses)) if losses else 0
    # The starting level: the median of the first tenth (one batch alone is noisy).
    starting = float(np.median(losses[:max(3, len(losses) // 10)])) if losses else math.nan
    if not losses or lowest == 0 or not losses[lowest] < 0.99 * starting:
        first = f"{starting:.4g}" if losses else "not finite"
        raise TrainingError(
            f"Expected the training loss to fall at some learning rate from {start:g} to {end:g}. "
            f"Received: a loss that never fell below its starting value ({first}) at any rate. "
            "Check the labels and the data, or try phases.head.optimizer='sgd'."
        )
    return LRFindResult(
        learning_rates=rates, losses=losses, suggestion=rates[lowest] / 10,
        min_loss_learning_rate=rates[lowest], stopped_early=stopped,
    )


def plot_lr_find(result: LRFindResult, path: str | os.PathLike) -> None:
    """Plots the smoothed loss against the learning rate (log axis), with the
    suggestion marked, to a PNG."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(result.learning_rates, result.losses)
    axis.set_xscale("log")
    axis.axvline(result.suggestion, color="tab:red", linestyle="--",
                 label=f"suggestion {result.suggestion:.2g}")
    axis.set_xlabel("learning rate")
    axis.set_ylabel("training loss (smoothed)")
    axis.set_title("Learning-rate range test (head on cached features)")
    axis.legend()
    figure.tight_layout()
    save_figure(figure, path)
