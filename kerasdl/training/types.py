"""What `train` takes besides the recipe (`TrainOptions`) and what it returns."""


from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["PhaseSummary", "TrainOptions", "TrainingResult"]


@dataclasses.dataclass
class PhaseSummary:
    """What one phase did.

    Attributes:
        name: The phase's name.
        epochs: Epochs run.
        seconds: Wall time of the phase.
        images_per_second: Training images processed per second.
        trainable_parameters: Trainable parameters during the phase.
        best_metric: Best validation metric reached in the phase.
        augment: The augmentation preset the phase trained with.
        feature_cache: Whether it trained on cached backbone features.
    """

    name: str
    epochs: int
    seconds: float
    images_per_second: float
    trainable_parameters: int
    best_metric: float | None
    augment: str = "none"
    feature_cache: bool = False


@dataclasses.dataclass
class TrainingResult:
    """The outcome of `train`.

    Attributes:
        history: One dict per epoch, all phases, with a `phase` key.
        phases: A `PhaseSummary` per phase run.
        best_metric: The best validation metric over all epochs.
        best_epoch: The (1-based) epoch that reached it.
        monitor: The name of that metric.
    """

    history: list[dict[str, Any]]
    phases: list[PhaseSummary]
    best_metric: float | None
    best_epoch: int | None
    monitor: str


@dataclasses.dataclass
class TrainOptions:
    """How `train` runs the phases (not what it trains: that is the recipe).

    Attributes:
        feature_cache: Train a frozen-backbone phase without pixel
            augmentation on backbone features computed once per image
            (see `kerasdl.training.feature_cache`); `False` always runs the full model.
        jit_compile: XLA compilation of the train step (`True`, `False` or
            `"auto"`, as `model.compile` takes it).
        steps_per_execution: Batches run per compiled call.
        checkpoints: Write a checkpoint after every epoch (needs a run folder).
        tensorboard: Write TensorBoard logs to `<run_dir>/logs/<phase>/`
            (`train/` and `validation/` scalars per epoch, the learning
            rate, the model's graph); needs a run folder. Not written by the
            multi-worker loop.
        deadline: A `time.perf_counter()` value by which training must end
            (`run_recipe(time_budget=...)`): a phase stops after an epoch when another
            epoch as long would pass it. `None` for no deadline.
    """

    feature_cache: bool = True
    jit_compile: bool | str = "auto"
    steps_per_execution: int = 1
    checkpoints: bool = True
    tensorboard: bool = True
    deadline: float | None = None
