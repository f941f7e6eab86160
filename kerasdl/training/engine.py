"""Fitting a recipe's phases with `model.fit`.

Each phase sets what is trainable, compiles a fresh optimizer, and runs
`model.fit` for its epochs; epochs are numbered on across phases. The best
model by the recipe's validation metric is kept (in memory and, with a run
folder, as `model.keras`), and restored at the end.
"""


from __future__ import annotations

import csv
import dataclasses
import functools
import logging
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasdl._util.console import plural
from kerasdl.data.augment import get_augmentation
from kerasdl.data.pipeline import augment_batches
from kerasdl.data.scan import balanced_class_weights
from kerasdl.data.types import ImageData
from kerasdl.errors import CheckpointError, RecipeError, TrainingError
from kerasdl.models.classifier import block_name, count_parameters, get_backbone_layer, set_trainable
from kerasdl.recipe import (
    OPTIMIZERS,
    SCHEDULES,
    Phase,
    Recipe,
    phase_augmentation,
    resolve_epochs,
    resolve_monitor,
)
from kerasdl.training.checkpoints import (
    PassCountingDataset,
    TrainingState,
    best_weights_of,
    checkpoint_dir,
    read_checkpoint,
    restore_model,
    restore_optimizer,
    write_checkpoint,
)
from kerasdl.training.distribute import (
    check_batch_splits,
    even_batches,
    fit_replicas,
    multi_worker_strategy,
)
from kerasdl.training.feature_cache import (
    build_feature_extractor,
    build_head_model,
    extract_features,
    feature_cache_applies,
    features_dataset,
)
from kerasdl.training.multi_worker import fit_distributed
from kerasdl.training.progress import fit_progress

logger = logging.getLogger(__name__)

__all__ = [
    "BestModelKeeper", "PositiveClassAUC", "TrainOptions", "TrainingResult", "compile_for_phase",
    "layer_lr_multipliers", "make_optimizer", "save_model", "train",
]


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


@keras.saving.register_keras_serializable(package="kerasdl")
class PositiveClassAUC(keras.metrics.AUC):
    """ROC-AUC of a two-class softmax model: the second class's probability
    scored against the labels (class indices or one-hot), as `metrics.json`'s
    `auc` is computed, approximated over `num_thresholds` thresholds.

    Args:
        name: The metric's name; validation logs prefix it with `val_`.
            Defaults to `"auc"`.
        **kwargs: `keras.metrics.AUC`'s other arguments.

    Example:
    ```python
    model.compile("adam", "sparse_categorical_crossentropy", metrics=[PositiveClassAUC()])
    ```
    """

    def __init__(self, name: str = "auc", **kwargs):
        kwargs.setdefault("num_thresholds", 500)
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if len(y_true.shape) == 2 and y_true.shape[-1] == 2:  # one-hot
            y_true = y_true[:, 1]
        y_true = keras.ops.reshape(y_true, (-1,))
        return super().update_state(y_true, y_pred[:, 1], sample_weight=sample_weight)


class _LayerwiseRates:
    """Mixin: scales each variable's learning rate by its multiplier.

    The multipliers (`{id(variable): factor}`, missing ones 1) are applied in
    `update_step`, which Keras 3's optimizers call once per variable with the
    step's learning rate, so momentum and Adam's moments stay those of the
    unscaled optimizer and only the step size changes (scaling the gradient
    instead would cancel out in Adam). Tested on TensorFlow and JAX
    (tests/training/test_defaults.py -k layer; `tox -e jax`); the PyTorch
    backend's fused optimizers bypass `update_step`, so the multipliers
    would not apply there.
    """

    def __init__(self, *args, lr_multipliers: dict[int, float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._lr_multipliers = dict(lr_multipliers or {})
        self._multiplier_by_index: list[float] = []

    def build(self, variables):
        super().build(variables)
        self._multiplier_by_index = [self._lr_multipliers.get(id(v), 1.0) for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        factor = self._multiplier_by_index[self._get_variable_index(variable)]
        if factor != 1.0:
            learning_rate = learning_rate * factor
        return super().update_step(gradient, variable, learning_rate)


class LayerwiseAdam(_LayerwiseRates, keras.optimizers.Adam):
    pass


class LayerwiseAdamW(_LayerwiseRates, keras.optimizers.AdamW):
    pass


class LayerwiseSGD(_LayerwiseRates, keras.optimizers.SGD):
    pass


class LayerwiseRMSprop(_LayerwiseRates, keras.optimizers.RMSprop):
    pass


def layer_lr_multipliers(model: keras.Model, layer_decay: float) -> dict[int, float]:
    """Per-variable learning-rate multipliers, lower toward the input.

    The backbone's trainable variables are grouped by block (`block_name`);
    the top block gets `layer_decay`, the one below `layer_decay**2`, and so
    on; the head's variables (not listed) keep 1.

    Args:
        model: A classifier from `build_classifier`, with its trainable
            layers already set.
        layer_decay: The factor per block, in (0, 1].

    Returns:
        `{id(variable): multiplier}` for the backbone's trainable variables.

    Example:
    ```python
    set_trainable(model, "all")
    multipliers = layer_lr_multipliers(model, 0.8)
    ```
    """
    if layer_decay == 1.0:
        return {}
    base = get_backbone_layer(model)
    blocks: list[list[Any]] = []
    last = None
    for layer in base.layers:
        variables = layer.trainable_weights if base.trainable else []
        if not variables:
            continue
        key = block_name(layer.name)
        if key != last:
            blocks.append([])
            last = key
        blocks[-1].extend(variables)
    multipliers = {}
    for depth, variables in enumerate(reversed(blocks), start=1):
        for variable in variables:
            multipliers[id(variable)] = float(layer_decay) ** depth
    return multipliers


def multipliers_used(phase: Phase) -> bool:
    """Whether the phase trains backbone blocks at layer-wise learning rates."""
    return phase.layer_decay != 1.0 and phase.trainable not in ("head", "none")


def make_optimizer(
    phase: Phase, steps_per_epoch: int, *, lr_multipliers: dict[int, float] | None = None,
    budget_schedule: bool = False,
) -> keras.optimizers.Optimizer:
    """Returns the phase's optimizer with its learning-rate schedule.

    Args:
        phase: The phase.
        steps_per_epoch: Batches per epoch, to turn epochs into steps.
        lr_multipliers: `{id(variable): factor}` scaling the learning rate
            of single variables (`layer_lr_multipliers`). Defaults to `None`
            (one rate for all).
        budget_schedule: Make a cosine schedule a `BudgetCosineDecay`,
            whose end a time budget can bring forward. Defaults to `False`.

    Returns:
        A Keras optimizer.

    Raises:
        RecipeError: for an unknown optimizer or schedule name.
    """
    if phase.optimizer not in OPTIMIZERS:  # validate_recipe checks these too
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
        learning_rate = (BudgetCosineDecay if budget_schedule else keras.optimizers.schedules.CosineDecay)(
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
    common: dict[str, Any] = {"learning_rate": learning_rate}
    if phase.clipnorm:
        common["clipnorm"] = phase.clipnorm
    layerwise = bool(lr_multipliers)
    if layerwise:
        common["lr_multipliers"] = lr_multipliers
    if phase.optimizer == "adam":
        return (LayerwiseAdam if layerwise else keras.optimizers.Adam)(**common)
    if phase.optimizer == "adamw":
        return (LayerwiseAdamW if layerwise else keras.optimizers.AdamW)(
            weight_decay=phase.weight_decay or 1e-4, **common)
    if phase.optimizer == "sgd":
        return (LayerwiseSGD if layerwise else keras.optimizers.SGD)(
            momentum=0.9, nesterov=True, **common)
    return (LayerwiseRMSprop if layerwise else keras.optimizers.RMSprop)(**common)


def phase_loss(phase: Phase, *, one_hot_labels: bool = False) -> keras.losses.Loss:
    """The phase's cross-entropy, matching the label format.

    Class indices take the sparse loss; one-hot labels (needed for label
    smoothing, and made by MixUp/CutMix) take the categorical loss with the
    phase's label smoothing.
    """
    if one_hot_labels or phase.label_smoothing > 0:
        return keras.losses.CategoricalCrossentropy(label_smoothing=phase.label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy()


def uses_one_hot_labels(phase: Phase) -> bool:
    """Whether the phase's loss wants one-hot labels even from plain data."""
    return phase.label_smoothing > 0


def compile_for_phase(
    model: keras.Model,
    phase: Phase,
    steps_per_epoch: int,
    *,
    fit_model: keras.Model | None = None,
    jit_compile: bool | str = "auto",
    steps_per_execution: int = 1,
    one_hot_labels: bool = False,
    num_classes: int | None = None,
    budget_schedule: bool = False,
) -> None:
    """Sets the phase's trainable layers and compiles the model for it.

    The metrics are accuracy and, for two classes, ROC-AUC (`auc`,
    `PositiveClassAUC`); the phase's `layer_decay` gives the backbone's
    blocks lower learning rates toward the input (`layer_lr_multipliers`).

    Args:
        model: The classifier.
        phase: The phase.
        steps_per_epoch: Batches per epoch (for the schedule).
        fit_model: The model that will be fitted, when it is not `model`
            (the head model of feature caching, which shares its layers).
            Defaults to `None`.
        jit_compile: XLA compilation, as `model.compile` takes it.
            Defaults to `"auto"`.
        steps_per_execution: Batches per compiled call. Defaults to `1`.
        one_hot_labels: The data yields one-hot labels (MixUp/CutMix).
            Defaults to `False`.
        num_classes: Classes of the data; 2 adds the `auc` metric.
            Defaults to `None` (accuracy only).
        budget_schedule: Under a time budget: a cosine schedule that
            `DeadlineStop` can shorten (see `make_optimizer`). Defaults to
            `False`.
    """
    set_trainable(model, phase.trainable)
    multipliers = layer_lr_multipliers(model, phase.layer_decay) if multipliers_used(phase) else {}
    metrics: list[Any] = ["accuracy"]
    if num_classes == 2:
        metrics.append(PositiveClassAUC(name="auc"))
    (fit_model or model).compile(
        optimizer=make_optimizer(phase, steps_per_epoch, lr_multipliers=multipliers,
                                 budget_schedule=budget_schedule),
        loss=phase_loss(phase, one_hot_labels=one_hot_labels),
        metrics=metrics,
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )


def save_model(model: keras.Model, path: str | os.PathLike) -> None:
    """Saves `model` as `.keras` without its compile state.

    The file holds the architecture and weights only, so it loads with plain
    `keras.saving.load_model` without kerasdl (the training metrics and
    layer-wise optimizer are kerasdl classes); recompile it to train on.
    """
    compiled = model.compiled
    model.compiled = False
    try:
        model.save(path)
    finally:
        model.compiled = compiled


class BestModelKeeper(keras.callbacks.Callback):
    """Keeps the weights of the best epoch (across phases), and saves them.

    Args:
        monitor: A validation metric, e.g. `"val_accuracy"` or `"val_loss"`.
        path: Where to save the best model as `.keras`, written to a
            temporary name then renamed. Defaults to `None` (memory only).
    """

    def __init__(self, monitor: str = "val_accuracy", path: str | os.PathLike | None = None):
        super().__init__()
        # The model whose weights are kept when it is not the one being fitted
        # (feature caching fits a head model that shares the classifier's layers).
        self.target: keras.Model | None = None
        self.monitor = monitor
        self.path = Path(path) if path else None
        self.lower_is_better = monitor.endswith("loss")
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_loss: float | None = None  # validation loss of the best epoch, for ties
        self.best_weights: list[np.ndarray] | None = None
        # With per-epoch checkpoints holding the best weights, `model.keras`
        # is written once per phase (`flush`) instead of at every improvement:
        # saving a whole .keras file can take longer than a cached-feature epoch.
        self.save_every_improvement = True
        self.unsaved = False

    def is_better(self, value: float, loss: float | None = None) -> bool:
        """Whether `value` beats the best so far; a tie (ROC-AUC and accuracy
        saturate on small validation sets) goes to the lower validation loss."""
        if self.best is None:
            return True
        if value == self.best and not self.lower_is_better:
            return loss is not None and self.best_loss is not None and loss < self.best_loss
        return value < self.best if self.lower_is_better else value > self.best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        loss = (logs or {}).get("val_loss")
        if value is None or math.isnan(value) or not self.is_better(value, loss):
            return
        self.best, self.best_epoch = float(value), epoch + 1
        self.best_loss = None if loss is None else float(loss)
        model = self.target or self.model
        self.best_weights = model.get_weights()
        self.unsaved = True
        if self.save_every_improvement:
            self.flush(model)

    def flush(self, model: keras.Model) -> None:
        """Writes the best weights, if not yet written, to `path` as `model`."""
        if not (self.path and self.unsaved and self.best_weights is not None):
            return
        current = model.get_weights()
        model.set_weights(self.best_weights)
        temporary = self.path.with_name(f".{self.path.stem}.tmp.keras")
        save_model(model, temporary)
        os.replace(temporary, self.path)
        model.set_weights(current)
        self.unsaved = False

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
    logger.info("Class weights: " + ", ".join(
        f"{name} {weights[i]:.3f}" for i, name in enumerate(data.class_names)))
    return weights


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


@keras.saving.register_keras_serializable(package="kerasdl")
class BudgetCosineDecay(keras.optimizers.schedules.CosineDecay):
    """Keras's warmup + cosine decay, whose end a time budget can bring forward.

    `decay_steps` is a variable that the compiled train step reads, so
    `end_by` shortens the schedule during `fit`: a phase that a time budget
    cuts short still anneals its learning rate instead of stopping at a high
    one. (On JAX the compiled step keeps the first length.)
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.decay_steps = keras.Variable(float(self.decay_steps), dtype="float32", trainable=False,
                                          name="budget_decay_steps")

    def end_by(self, total_steps: int) -> None:
        """Makes the schedule reach its end at `total_steps` (warmup included), if sooner."""
        decay_steps = max(1.0, float(total_steps - (self.warmup_steps or 0)))
        if decay_steps < float(self.decay_steps.numpy()):
            self.decay_steps.assign(decay_steps)

    def has_ended(self, step: int) -> bool:
        """Whether `step` is at or past the end, where the rate stays at its floor."""
        return step >= (self.warmup_steps or 0) + float(self.decay_steps.numpy())

    def get_config(self):
        return {**super().get_config(), "decay_steps": int(self.decay_steps.numpy())}


class DeadlineStop(keras.callbacks.Callback):
    """Ends `fit` in time for `deadline` (a `time.perf_counter()` value).

    After each epoch it counts how many more epochs of the phase's typical
    length (the mean of its epochs after the first, which also traces the
    step) fit before the deadline: none stops training; fewer than planned
    brings a `BudgetCosineDecay` schedule's end forward to the last one that
    fits. A phase whose schedule has ended that way stops too, even if its
    epochs then ran faster: its rate is zero, so more epochs change nothing.

    Args:
        deadline: When training must end.
        steps_per_epoch: Batches per epoch, to end the schedule at an epoch.
            Defaults to `None` (the schedule is left alone).
    """

    def __init__(self, deadline: float, *, steps_per_epoch: int | None = None):
        super().__init__()
        self.deadline = deadline
        self.steps_per_epoch = steps_per_epoch
        self.started = 0.0
        self.stopped = False
        self.epoch_seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        self.epoch_seconds.append(max(now - self.started, 1e-9))
        typical = statistics.fmean(self.epoch_seconds[1:] or self.epoch_seconds)
        more = int((self.deadline - now) // typical)
        optimizer = getattr(self.model, "optimizer", None)
        schedule = getattr(optimizer, "_learning_rate", None)  # Keras keeps the schedule there
        budgeted = isinstance(schedule, BudgetCosineDecay) and bool(self.steps_per_epoch)
        step = int(optimizer.iterations.numpy()) if budgeted else 0
        if more < 1 or (budgeted and schedule.has_ended(step)):
            self.model.stop_training = True
            self.stopped = True
        elif budgeted:
            schedule.end_by(step + more * self.steps_per_epoch)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`EarlyStopping` that can start with a phase's earlier epochs counted.

    Args:
        initial_best: The best value of the phase's epochs before resuming.
        initial_wait: Epochs since then without improvement.
        **kwargs: `EarlyStopping`'s arguments.
    """

    def __init__(self, *, initial_best: float | None = None, initial_wait: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.initial_best, self.initial_wait = initial_best, initial_wait

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.initial_best is not None:
            self.best, self.wait = self.initial_best, self.initial_wait


class CheckpointWriter(keras.callbacks.Callback):
    """Writes a checkpoint after every epoch whose logs are finite.

    Args:
        folder: The checkpoint folder.
        model: The classifier whose variables to save (the fitted model may
            be a head model sharing its layers).
        make_state: `make_state(epoch)` returns the `TrainingState` after
            the 0-based `epoch`.
    """

    def __init__(self, folder: Path, model: keras.Model, make_state, keeper: BestModelKeeper):
        super().__init__()
        self.folder, self.classifier, self.make_state = folder, model, make_state
        self.keeper = keeper

    def on_epoch_end(self, epoch, logs=None):
        if any(isinstance(v, float) and not math.isfinite(v) for v in (logs or {}).values()):
            return  # keep the last good checkpoint
        write_checkpoint(
            self.folder, self.make_state(epoch), model=self.classifier, optimizer=self.model.optimizer,
            best_weights=self.keeper.best_weights,
        )


def tensorboard_callback(run_dir: str | os.PathLike, phase_name: str) -> keras.callbacks.TensorBoard:
    """Keras's TensorBoard callback writing one phase's logs to `<run_dir>/logs/<phase_name>/`.

    Epochs keep their run-wide numbers, so the phases follow each other on
    one axis in TensorBoard. Scalars are written once per epoch (per-batch
    writes cost time on small data), without histograms or profiling.

    Args:
        run_dir: The run folder.
        phase_name: The phase, e.g. `"head"` or `"fine_tune"`.

    Returns:
        A `keras.callbacks.TensorBoard`.

    Example:
    ```python
    model.fit(train, validation_data=val, callbacks=[tensorboard_callback("runs/a", "head")])
    ```
    """
    return keras.callbacks.TensorBoard(
        log_dir=str(Path(run_dir) / "logs" / phase_name), histogram_freq=0, write_graph=True,
        write_images=False, write_steps_per_second=False, update_freq="epoch", profile_batch=0,
    )


def _one_hot(dataset, num_classes: int):
    import tensorflow as tf

    return dataset.map(lambda x, y: (x, tf.one_hot(y, num_classes)))


def _one_hot_array(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return labels if labels.ndim == 2 else np.eye(num_classes, dtype=np.float32)[labels]


def _check_phase_augmentations(data: ImageData, recipe: Recipe) -> None:
    """A phase with its own augmentation needs `train` before augmentation."""
    if data.train_source() is not None:
        return
    for phase in recipe.phases:
        if phase.epochs and phase_augmentation(recipe, phase) != recipe.augment:
            raise RecipeError(
                f"Expected ImageData from kerasdl.load_data for phase {phase.name}'s own "
                f"augmentation ({phase.augment}). Received: data whose train split was replaced "
                f"after loading. Set phases.{phase.name}.augment=null, or train on load_data's data."
            )


def _phase_train_data(data: ImageData, counted_train, recipe: Recipe, phase: Phase, num_classes: int):
    """`(train, validation, one_hot)` of an end-to-end phase, with its augmentation."""
    source = data.train_source()
    augment = None  # without source, the counted dataset is `data.train`, augmented already
    if source is not None:
        augment = (source.augment if phase.augment is None
                   else get_augmentation(phase.augment, seed=recipe.seed))
    mixes_labels = bool(getattr(augment, "mixes_labels", False))
    train_data, val_data = counted_train.dataset, data.validation_data()
    if (uses_one_hot_labels(phase) or mixes_labels) and not data.one_hot:
        train_data, val_data = _one_hot(train_data, num_classes), _one_hot(val_data, num_classes)
    return augment_batches(train_data, augment), val_data, data.one_hot or mixes_labels


def _phase_summary_from_rows(phase: Phase, rows, trainable: int, lower_is_better: bool, monitor: str,
                             **path):
    phase_rows = [row for row in rows if row["phase"] == phase.name]
    seconds = sum(row.get("seconds", 0.0) for row in phase_rows)
    values = [row[monitor] for row in phase_rows if row.get(monitor) is not None]
    return PhaseSummary(
        name=phase.name, epochs=len(phase_rows), seconds=round(seconds, 2),
        images_per_second=0.0, trainable_parameters=trainable,
        best_metric=(min if lower_is_better else max)(values) if values else None, **path,
    )


def _early_stopping_start(rows, phase: Phase, monitor: str, lower_is_better: bool):
    values = [row.get(monitor) for row in rows if row["phase"] == phase.name]
    values = [v for v in values if v is not None]
    if not values:
        return None, 0
    best = min(values) if lower_is_better else max(values)
    last_best = max(i for i, v in enumerate(values) if v == best)
    return best, len(values) - 1 - last_best


def train(
    model: keras.Model,
    data: ImageData,
    recipe: Recipe,
    *,
    run_dir: str | os.PathLike | None = None,
    verbose: int | str = "auto",
    options: TrainOptions | None = None,
    resume: bool = False,
) -> TrainingResult:
    """Fits the recipe's phases in order and restores the best weights.

    A frozen-backbone phase without pixel augmentation trains on cached
    backbone features (unless `options.feature_cache` is off). With a run
    folder, every epoch writes a checkpoint to `<run_dir>/checkpoints/`, and
    `resume=True` continues from it: the phase, the epoch, the model and
    optimizer variables (so the learning-rate schedule's position), the best
    metric and the data order, as if never interrupted.

    Args:
        model: A classifier from `build_classifier`.
        data: The `ImageData` to train on (`train` and `val`).
        recipe: The recipe whose phases to run.
        run_dir: A run folder to write `history.csv`, `model.keras` and
            checkpoints into. Defaults to `None` (write nothing).
        verbose: `"auto"` (Keras's live bar on a terminal, else one plain
            line per epoch), `1` (the bar), `2` (one line per epoch) or `0`
            (see `kerasdl.training.progress.fit_progress`). Defaults to `"auto"`.
        options: A `TrainOptions`. Defaults to `None` (`TrainOptions()`).
        resume: Continue from the run folder's checkpoint. Defaults to `False`.

    Returns:
        A `TrainingResult`.

    Raises:
        CheckpointError: when resuming from a missing or damaged checkpoint.
        TrainingError: when the loss becomes NaN (the last good checkpoint
            and best model are kept).

    Example:
    ```python
    result = train(model, data, get_recipe("mobilenetv2-transfer"))
    ```
    """
    recipe = resolve_epochs(recipe, _steps_per_epoch(data, fit_replicas()))
    run = _start_training(model, data, recipe, run_dir=run_dir, verbose=verbose,
                          options=options or TrainOptions(), resume=resume)
    summaries = [summary for index, phase in enumerate(recipe.phases)
                 if (summary := _run_phase(run, index, phase)) is not None]
    run.keeper.restore(model)
    return TrainingResult(
        history=run.rows, phases=summaries, best_metric=run.keeper.best,
        best_epoch=run.keeper.best_epoch, monitor=run.monitor,
    )


@dataclasses.dataclass
class _Training:
    """What the phases of one `train` call share, and where training stands (`epoch`)."""

    model: keras.Model
    data: ImageData
    recipe: Recipe
    options: TrainOptions
    run_dir: Path | None
    folder: Path | None  # the checkpoint folder, when checkpoints are written
    verbose: int | str
    resume: bool
    state: TrainingState
    arrays: dict[str, np.ndarray]
    rows: list[dict[str, Any]]
    monitor: str
    keeper: BestModelKeeper
    writer: HistoryWriter
    replicas: int
    steps_per_epoch: int
    counted_train: PassCountingDataset
    class_weight: dict[int, float] | None
    epoch: int

    @property
    def num_classes(self) -> int:
        return len(self.data.class_names)

    @property
    def num_train(self) -> int:
        return len(self.data.files["train"])


def _steps_per_epoch(data: ImageData, replicas: int) -> int:
    """Training batches per epoch (each epoch leaves out what does not split over the replicas)."""
    num_train = len(data.files["train"])
    return max(1, math.ceil((num_train - num_train % replicas) / data.batch_size))


def _start_training(model, data, recipe, *, run_dir, verbose, options, resume) -> _Training:
    """Checks the inputs, reads the checkpoint to resume from, and sets up what every phase shares."""
    run_dir = Path(run_dir) if run_dir else None
    folder = checkpoint_dir(run_dir) if run_dir and options.checkpoints else None
    state, arrays = _resume_state(folder) if resume else (TrainingState(), {})
    rows: list[dict[str, Any]] = list(state.history)
    monitor = _training_monitor(recipe, len(data.class_names))
    keeper = BestModelKeeper(monitor, run_dir / "model.keras" if run_dir else None)
    keeper.target = model
    keeper.save_every_improvement = folder is None
    if resume and state.best_metric is not None:
        keeper.best, keeper.best_epoch = state.best_metric, state.best_epoch
        keeper.best_loss = next((row.get("val_loss") for row in rows
                                 if row.get("epoch") == state.best_epoch), None)  # for ties
        keeper.best_weights = best_weights_of(arrays)
        keeper.unsaved = keeper.best_weights is not None  # the kill may have come before a flush
    if arrays:
        restore_model(model, arrays)
    replicas = fit_replicas()
    check_batch_splits(data.batch_size, replicas)
    left_out = {split: len(data.files[split]) % replicas for split in ("train", "val")}
    if any(left_out.values()):
        logger.info(f"Each epoch leaves out the last {left_out['train']} training and {left_out['val']} "
                    f"validation images: batches must split evenly over the {replicas} replicas "
                    "(the final evaluation uses every image).")
    _check_phase_augmentations(data, recipe)
    source = data.train_source()
    return _Training(
        model=model, data=data, recipe=recipe, options=options, run_dir=run_dir, folder=folder,
        verbose=verbose, resume=resume, state=state, arrays=arrays, rows=rows, monitor=monitor,
        keeper=keeper, writer=HistoryWriter(rows, run_dir / "history.csv" if run_dir else None),
        replicas=replicas,
        steps_per_epoch=_steps_per_epoch(data, replicas),
        # Every phase draws from one counted (un-augmented) dataset and puts its own
        # augmentation on top, so the data order runs on across phases as before.
        counted_train=PassCountingDataset(source.unaugmented if source is not None else data.train),
        class_weight=fit_class_weight(recipe.data.class_weight, data),
        epoch=state.epoch,
    )


def _resume_state(folder: Path | None) -> tuple[TrainingState, dict[str, np.ndarray]]:
    if folder is None:
        raise CheckpointError(
            "Expected a run folder with checkpoints to resume. Received: none. "
            "Pass run_dir, the folder of the interrupted run."
        )
    return read_checkpoint(folder)


def _training_monitor(recipe: Recipe, num_classes: int) -> str:
    monitor = resolve_monitor(recipe.monitor, num_classes)
    if monitor == "val_auc" and multi_worker_strategy() is not None:
        if recipe.monitor != "auto":
            raise RecipeError(
                "Expected monitor='val_accuracy' or monitor='val_loss' with distribute='multi-worker'. "
                "Received: monitor='val_auc', which its training loop does not compute.",
                argument="monitor",
            )
        monitor = "val_accuracy"  # the distributed loop reports loss and accuracy only
    return monitor


def _run_phase(run: _Training, index: int, phase: Phase) -> PhaseSummary | None:
    """Fits one phase (or its rest, when resuming); `None` for a phase that does not run."""
    if phase.epochs == 0:
        return None
    augment_name = phase_augmentation(run.recipe, phase)
    cached = run.options.feature_cache and feature_cache_applies(phase.trainable, augment_name != "none")
    if index < run.state.phase_index:  # finished before the interruption
        return _phase_summary_from_rows(phase, run.rows, 0, run.keeper.lower_is_better, run.monitor,
                                        augment=augment_name, feature_cache=cached)
    resuming = run.resume and index == run.state.phase_index
    done = run.state.epochs_done_in_phase if resuming else 0
    phase_start = run.state.phase_start_epoch if resuming else run.epoch
    passes_at_start = run.state.train_passes_at_phase_start if resuming else run.counted_train.passes
    if done >= phase.epochs:
        return None
    started = time.perf_counter()
    fit_model, train_data, val_data, feature_counter, how = _phase_inputs(
        run, phase, cached, resuming=resuming, done=done, passes_at_start=passes_at_start)
    if resuming and run.arrays and done > 0:  # at a phase boundary the optimizer starts fresh
        restore_optimizer(fit_model.optimizer, fit_model.trainable_variables, run.arrays)
    trainable = count_parameters(run.model)["trainable"]
    logger.info(_phase_line(phase, trainable, run.monitor, augment_name, how,
                            resuming_at=run.epoch + 1 if resuming else None))
    run.writer.phase = phase.name
    best_before = run.keeper.best
    if run.options.deadline is not None and time.perf_counter() >= run.options.deadline:
        logger.info("Phase %s skipped: the time budget is spent.", phase.name)
        return None
    callbacks = _phase_callbacks(run, index, phase, phase_start, passes_at_start, feature_counter)
    # Keras 3's fit fails across workers (keras-team/keras#20585): the same epochs there
    # run through kerasdl.training.multi_worker's distributed loop.
    fit = fit_model.fit if multi_worker_strategy() is None else functools.partial(fit_distributed, fit_model)
    data = run.data
    verbose, progress = fit_progress(run.verbose)  # off a terminal: one plain line per epoch
    fit(
        even_batches(train_data, run.replicas, count=run.num_train, batch_size=data.batch_size),
        validation_data=even_batches(val_data, run.replicas, count=len(data.files["val"]),
                                     batch_size=data.batch_size), initial_epoch=run.epoch,
        epochs=phase_start + phase.epochs, callbacks=callbacks + progress, verbose=verbose,
        shuffle=False,  # the datasets shuffle themselves
        class_weight=run.class_weight,
    )
    summary = _finish_phase(run, index, phase, phase_start=phase_start, done=done, started=started,
                            trainable=trainable, augment=augment_name, cached=cached)
    if run.keeper.best is not None and run.keeper.best != best_before:
        logger.info(f"Best {run.monitor} so far: {run.keeper.best:.4f} (epoch {run.keeper.best_epoch})")
    return summary


def _phase_inputs(run: _Training, phase: Phase, cached: bool, *, resuming: bool, done: int,
                  passes_at_start: int):
    """The model to fit, its training and validation data, and the phase compiled for them.

    A cached phase fits the head on backbone features computed once; the
    others fit the whole model on (augmented) images.

    Returns:
        `(fit_model, train_data, val_data, feature_counter, how)`: `how` says
        in words how the phase trains.
    """
    model, data, options = run.model, run.data, run.options
    started = time.perf_counter()
    one_hot = data.one_hot
    if cached:
        logger.info("Phase %s: computing the frozen backbone's features of %d training and %d "
                    "validation images once ...", phase.name, run.num_train, len(data.files["val"]))
        run.counted_train.fast_forward(passes_at_start)
        fit_model, train_data, val_data, feature_counter = _cached_phase_data(
            model, data, run.counted_train, run.recipe, phase, run.num_classes, run.run_dir
        )
        feature_counter.fast_forward(run.state.feature_passes if resuming else 0)
        how = (f"on backbone features computed once per image "
               f"({time.perf_counter() - started:.1f} s; feature_cache=False turns it off)")
    else:
        run.counted_train.fast_forward(passes_at_start + done)
        fit_model, feature_counter = model, None
        train_data, val_data, one_hot = _phase_train_data(data, run.counted_train, run.recipe, phase,
                                                          run.num_classes)
        how = "end to end" + (
            " (feature cache off)" if phase.trainable in ("head", "none")
            and not options.feature_cache
            else " (feature cache not used: the augmentation changes pixels; "
            f"phases.{phase.name}.augment='none' uses it)"
            if phase.trainable in ("head", "none") else ""
        )
    compile_for_phase(
        model, phase, run.steps_per_epoch, fit_model=fit_model, jit_compile=options.jit_compile,
        # A cached-feature step is so small that Python's per-step overhead would
        # dominate: run a whole epoch per compiled call (same updates, same schedule).
        steps_per_execution=max(options.steps_per_execution, run.steps_per_epoch) if cached
        else options.steps_per_execution,
        one_hot_labels=one_hot, num_classes=run.num_classes, budget_schedule=options.deadline is not None,
    )
    return fit_model, train_data, val_data, feature_counter, how


def _phase_line(phase: Phase, trainable: int, monitor: str, augment: str, how: str,
                *, resuming_at: int | None) -> str:
    """The one line that says how a phase trains."""
    return (
        f"Phase {phase.name}: trainable={phase.trainable} ({trainable:,} parameters), "
        f"{plural(phase.epochs, 'epoch')}, {phase.optimizer} lr={phase.learning_rate:g}"
        + (f" (x{phase.layer_decay:g} per block toward the input)" if multipliers_used(phase) else "")
        + (f", {phase.schedule}" + (f" after {plural(phase.warmup_epochs, 'warmup epoch')}" if phase.warmup_epochs else "")
           if phase.schedule != "constant" else "")
        + (f", early stopping on {monitor} (patience {phase.early_stopping})" if phase.early_stopping else "")
        + ", "
        f"augment {augment}, training {how}"
        + (f"; resuming at epoch {resuming_at}" if resuming_at is not None else "")
    )


def _phase_callbacks(run: _Training, index: int, phase: Phase, phase_start: int, passes_at_start: int,
                     feature_counter) -> list[keras.callbacks.Callback]:
    """History, best model, NaN stop, and as the options ask: deadline, early stopping, logs, checkpoints."""
    keeper = run.keeper
    callbacks = [run.writer, keeper, keras.callbacks.TerminateOnNaN()]
    if run.options.deadline is not None:
        callbacks.append(DeadlineStop(run.options.deadline, steps_per_epoch=run.steps_per_epoch))
    if phase.early_stopping:
        initial_best, initial_wait = _early_stopping_start(run.rows, phase, run.monitor, keeper.lower_is_better)
        callbacks.append(
            ResumableEarlyStopping(
                monitor=run.monitor, patience=phase.early_stopping,
                mode="min" if keeper.lower_is_better else "max",
                initial_best=initial_best, initial_wait=initial_wait,
            )
        )
    if run.run_dir is not None and run.options.tensorboard and multi_worker_strategy() is None:
        callbacks.append(tensorboard_callback(run.run_dir, phase.name))
    if run.folder is not None:
        callbacks.append(CheckpointWriter(run.folder, run.model, _state_maker(
            index, phase_start, passes_at_start, run.counted_train, feature_counter, keeper, run.rows,
            run.monitor, phase,
        ), keeper))
    return callbacks


def _finish_phase(run: _Training, index: int, phase: Phase, *, phase_start: int, done: int,
                  started: float, trainable: int, augment: str, cached: bool) -> PhaseSummary:
    """After a phase's fit: the best model flushed, a NaN stop, the phase-end checkpoint, the summary."""
    seconds = time.perf_counter() - started
    phase_rows = [row for row in run.rows if row["phase"] == phase.name]
    ran = len(phase_rows) - done
    run.epoch = phase_start + len(phase_rows)
    run.keeper.flush(run.model)
    _stop_on_nan(run.rows, phase, run.folder)
    if run.folder is not None:
        write_checkpoint(run.folder, TrainingState(
            phase_index=index + 1, epoch=run.epoch, phase_start_epoch=run.epoch,
            best_metric=run.keeper.best, best_epoch=run.keeper.best_epoch, history=run.rows,
            train_passes_at_phase_start=run.counted_train.passes, train_passes=run.counted_train.passes,
            variables_file=_current_variables_file(run.folder),
        ))
    phase_values = [v for v in (row.get(run.monitor) for row in phase_rows) if v is not None]
    return PhaseSummary(
        name=phase.name, epochs=len(phase_rows), seconds=round(seconds, 2),
        images_per_second=round(ran * run.num_train / max(seconds, 1e-9), 1),
        trainable_parameters=trainable,
        best_metric=(min if run.keeper.lower_is_better else max)(phase_values) if phase_values else None,
        augment=augment, feature_cache=cached,
    )


def _cached_phase_data(model, data, counted_train, recipe, phase, num_classes, run_dir):
    """The head model and the cached-feature datasets of a frozen phase."""
    extractor = build_feature_extractor(model)
    cache_dir = run_dir / "cache" / "features" if run_dir else None
    train_features = extract_features(
        extractor, counted_train.dataset, num_images=len(data.files["train"]),
        cache_dir=cache_dir, name="train",
    )
    val_features = extract_features(
        extractor, data.val, num_images=len(data.files["val"]), cache_dir=cache_dir, name="val",
    )
    if uses_one_hot_labels(phase) or data.one_hot:  # the format the phase's loss takes
        for cached in (train_features, val_features):
            cached.labels = _one_hot_array(cached.labels, num_classes)
    feature_counter = PassCountingDataset(features_dataset(
        train_features, batch_size=data.batch_size, shuffle=True, seed=recipe.seed
    ))
    val_data = features_dataset(val_features, batch_size=data.batch_size)
    return build_head_model(model), feature_counter.dataset, val_data, feature_counter


def _state_maker(index, phase_start, passes_at_start, counted_train, feature_counter, keeper, rows,
                 monitor, phase):
    def make_state(epoch: int) -> TrainingState:
        wait = _early_stopping_start(rows, phase, monitor, keeper.lower_is_better)[1]
        return TrainingState(
            phase_index=index, epochs_done_in_phase=epoch + 1 - phase_start, epoch=epoch + 1,
            phase_start_epoch=phase_start, best_metric=keeper.best, best_epoch=keeper.best_epoch,
            history=list(rows), train_passes_at_phase_start=passes_at_start,
            train_passes=counted_train.passes,
            feature_passes=feature_counter.passes if feature_counter else 0,
            early_stopping_wait=wait,
        )

    return make_state


def _current_variables_file(folder: Path) -> str | None:
    found = sorted(folder.glob("epoch-*.npz"))
    return found[-1].name if found else None


def _stop_on_nan(rows, phase: Phase, folder: Path | None) -> None:
    if not rows or rows[-1]["phase"] != phase.name:
        return
    loss = rows[-1].get("loss")
    if loss is None or math.isfinite(loss):
        return
    where = (f"the last good checkpoint is in {folder} and model.keras holds the best epoch"
             if folder else "the best weights so far are kept")
    raise TrainingError(
        f"Expected a finite training loss. Received: {loss} in epoch {rows[-1]['epoch']} "
        f"(phase {phase.name}); training stopped, {where}. Lower phases.{phase.name}.learning_rate "
        f"or set phases.{phase.name}.clipnorm, then run again."
    )

