"""Fitting a recipe's phases with `model.fit`.

Each phase sets what is trainable, compiles a fresh optimizer, and runs
`model.fit` for its epochs; epochs are numbered on across phases. The best
model by the recipe's validation metric is kept (in memory and, with a run
folder, as `model.keras`), and restored at the end.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasdl.data import ImageData, balanced_class_weights
from kerasdl.errors import RecipeError
from kerasdl.models import count_parameters, set_trainable
from kerasdl.recipe import Phase, Recipe

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "step")


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
    """

    name: str
    epochs: int
    seconds: float
    images_per_second: float
    trainable_parameters: int
    best_metric: float | None


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


def make_optimizer(phase: Phase, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Returns the phase's optimizer with its learning-rate schedule.

    Args:
        phase: The phase.
        steps_per_epoch: Batches per epoch, to turn epochs into steps.

    Returns:
        A Keras optimizer.

    Raises:
        RecipeError: for an unknown optimizer or schedule name.
    """
    if phase.optimizer not in OPTIMIZERS:
        raise RecipeError(
            f"Expected an optimizer from: {', '.join(OPTIMIZERS)}. Received: {phase.optimizer!r}."
        )
    if phase.schedule not in SCHEDULES:
        raise RecipeError(
            f"Expected a schedule from: {', '.join(SCHEDULES)}. Received: {phase.schedule!r}."
        )
    total_steps = max(1, phase.epochs * steps_per_epoch)
    warmup_steps = min(phase.warmup_epochs * steps_per_epoch, total_steps - 1)
    learning_rate: Any = phase.learning_rate
    if phase.schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=phase.learning_rate / 100 if warmup_steps else phase.learning_rate,
            decay_steps=total_steps - warmup_steps,
            warmup_target=phase.learning_rate if warmup_steps else None,
            warmup_steps=warmup_steps,
        )
    elif phase.schedule == "step":
        boundaries = [int(total_steps * f) for f in (1 / 3, 2 / 3)]
        learning_rate = keras.optimizers.schedules.PiecewiseConstantDecay(
            boundaries, [phase.learning_rate * f for f in (1.0, 0.1, 0.01)]
        )
    common = {"learning_rate": learning_rate}
    if phase.clipnorm:
        common["clipnorm"] = phase.clipnorm
    if phase.optimizer == "adam":
        return keras.optimizers.Adam(**common)
    if phase.optimizer == "adamw":
        return keras.optimizers.AdamW(weight_decay=phase.weight_decay or 1e-4, **common)
    if phase.optimizer == "sgd":
        return keras.optimizers.SGD(momentum=0.9, nesterov=True, **common)
    return keras.optimizers.RMSprop(**common)


def compile_for_phase(
    model: keras.Model, phase: Phase, steps_per_epoch: int, *, one_hot_labels: bool = False
) -> None:
    """Sets the phase's trainable layers and compiles the model for it.

    The loss follows the label format: class indices take a sparse
    cross-entropy, one-hot (or MixUp/CutMix-mixed) labels a categorical one
    with the phase's label smoothing.
    """
    set_trainable(model, phase.trainable)
    if one_hot_labels:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=phase.label_smoothing)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
    model.compile(
        optimizer=make_optimizer(phase, steps_per_epoch),
        loss=loss,
        metrics=["accuracy"],
    )


class BestModelKeeper(keras.callbacks.Callback):
    """Keeps the weights of the best epoch (across phases), and saves them.

    Args:
        monitor: A validation metric, e.g. `"val_accuracy"` or `"val_loss"`.
        path: Where to save the best model as `.keras`, written to a
            temporary name then renamed. Defaults to `None` (memory only).
    """

    def __init__(self, monitor: str = "val_accuracy", path: str | os.PathLike | None = None):
        super().__init__()
        self.monitor = monitor
        self.path = Path(path) if path else None
        self.lower_is_better = monitor.endswith("loss")
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_weights: list[np.ndarray] | None = None

    def is_better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value < self.best if self.lower_is_better else value > self.best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or math.isnan(value) or not self.is_better(value):
            return
        self.best, self.best_epoch = float(value), epoch + 1
        self.best_weights = self.model.get_weights()
        if self.path:
            temporary = self.path.with_name(f".{self.path.stem}.tmp.keras")
            self.model.save(temporary)
            os.replace(temporary, self.path)

    def restore(self, model: keras.Model) -> None:
        """Loads the best weights into `model` (no-op if none were kept)."""
        if self.best_weights is not None:
            model.set_weights(self.best_weights)


class HistoryWriter(keras.callbacks.Callback):
    """Appends one row per epoch, with a `phase` column, to a list and a CSV."""

    def __init__(self, rows: list[dict[str, Any]], path: str | os.PathLike | None = None):
        super().__init__()
        self.rows = rows
        self.path = Path(path) if path else None
        self.phase = ""
        self.started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "phase": self.phase}
        row.update({key: float(value) for key, value in (logs or {}).items()})
        row["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row["seconds"] = round(time.perf_counter() - self.started, 3)
        self.rows.append(row)
        if self.path:
            write_history_csv(self.rows, self.path)


def write_history_csv(rows: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """Writes history rows to CSV; columns are the union over all rows."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    temporary = Path(path).with_suffix(".csv.tmp")
    with open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


def fit_class_weight(mode: str | None, data: ImageData) -> dict[int, float] | None:
    """`model.fit`'s `class_weight` for `data.class_weight` (`None` or `"auto"`).

    Raises:
        RecipeError: for another value.
    """
    if mode in (None, "none"):
        return None
    if mode != "auto":
        raise RecipeError(f"Expected data.class_weight auto or none. Received: {mode!r}.")
    counts = data.files["train"].class_counts(len(data.class_names))
    weights = balanced_class_weights(counts)
    print("Class weights: " + ", ".join(
        f"{name} {weights[i]:.3f}" for i, name in enumerate(data.class_names)))
    return weights


def train(
    model: keras.Model,
    data: ImageData,
    recipe: Recipe,
    *,
    run_dir: str | os.PathLike | None = None,
    verbose: int | str = "auto",
) -> TrainingResult:
    """Fits the recipe's phases in order and restores the best weights.

    Args:
        model: A classifier from `build_classifier`.
        data: The `ImageData` to train on (`train` and `val`).
        recipe: The recipe whose phases to run.
        run_dir: A run folder to write `history.csv` and `model.keras` into.
            Defaults to `None` (write nothing).
        verbose: `model.fit`'s verbosity. Defaults to `"auto"`.

    Returns:
        A `TrainingResult`.

    Example:
    ```python
    result = train(model, data, get_recipe("mobilenetv2-transfer"))
    ```
    """
    run_dir = Path(run_dir) if run_dir else None
    rows: list[dict[str, Any]] = []
    keeper = BestModelKeeper(recipe.monitor, run_dir / "model.keras" if run_dir else None)
    writer = HistoryWriter(rows, run_dir / "history.csv" if run_dir else None)
    steps_per_epoch = max(1, math.ceil(len(data.files["train"]) / data.batch_size))
    class_weight = fit_class_weight(recipe.data.class_weight, data)
    summaries: list[PhaseSummary] = []
    epoch = 0
    for phase in recipe.phases:
        if phase.epochs == 0:
            continue
        compile_for_phase(model, phase, steps_per_epoch, one_hot_labels=data.one_hot)
        trainable = count_parameters(model)["trainable"]
        print(
            f"Phase {phase.name}: trainable={phase.trainable} ({trainable:,} parameters), "
            f"{phase.epochs} epochs, {phase.optimizer} lr={phase.learning_rate:g}",
            flush=True,
        )
        writer.phase = phase.name
        best_before = keeper.best
        callbacks = [writer, keeper, keras.callbacks.TerminateOnNaN()]
        if phase.early_stopping:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    recipe.monitor, patience=phase.early_stopping,
                    mode="min" if keeper.lower_is_better else "max",
                )
            )
        started = time.perf_counter()
        model.fit(
            data.train, validation_data=data.validation_data(), initial_epoch=epoch,
            epochs=epoch + phase.epochs, callbacks=callbacks, verbose=verbose,
            class_weight=class_weight,
        )
        seconds = time.perf_counter() - started
        ran = sum(1 for row in rows if row["phase"] == phase.name)
        epoch += ran
        phase_values = [row.get(recipe.monitor) for row in rows if row["phase"] == phase.name]
        phase_values = [v for v in phase_values if v is not None]
        summaries.append(
            PhaseSummary(
                name=phase.name, epochs=ran, seconds=round(seconds, 2),
                images_per_second=round(ran * len(data.files["train"]) / max(seconds, 1e-9), 1),
                trainable_parameters=trainable,
                best_metric=(min if keeper.lower_is_better else max)(phase_values) if phase_values else None,
            )
        )
        if keeper.best is not None and keeper.best != best_before:
            print(f"Best {recipe.monitor} so far: {keeper.best:.4f} (epoch {keeper.best_epoch})")
    keeper.restore(model)
    return TrainingResult(
        history=rows, phases=summaries, best_metric=keeper.best,
        best_epoch=keeper.best_epoch, monitor=recipe.monitor,
    )
