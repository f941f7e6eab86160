"""Fitting a recipe's phases with `model.fit`.

Each phase sets what is trainable, compiles a fresh optimizer, and runs
`model.fit` for its epochs; epochs are numbered on across phases. The best
model by the recipe's validation metric is kept (in memory and, with a run
folder, as `model.keras`), and restored at the end.

The parts live in modules of one concern each: `optimizers` (layer-wise
rates), `schedules`, `metrics`, `compile`, `callbacks`, `phase_data` and
`types`; their public names are importable from here too.
"""


from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasdl._util.console import plural
from kerasdl.data.types import ImageData
from kerasdl.errors import CheckpointError, RecipeError, TrainingError
from kerasdl.models.classifier import count_parameters
from kerasdl.recipe import Phase, Recipe, phase_augmentation, resolve_epochs, resolve_monitor
from kerasdl.training.callbacks import (
    BestEpoch,
    BestModelKeeper,
    CheckpointWriter,
    DeadlineStop,
    HistoryWriter,
    RandomStateRestorer,
    ResumableEarlyStopping,
    early_stopping_delta,
    early_stopping_start,
    save_model,
    tensorboard_callback,
    write_history_csv,
)
from kerasdl.training.checkpoints import (
    PassCountingDataset,
    TrainingState,
    best_weights_of,
    checkpoint_dir,
    read_checkpoint,
    restore_model,
    restore_optimizer,
    restore_random_state,
    write_checkpoint,
)
from kerasdl.training.compile import (
    compile_for_phase,
    phase_loss,
    supported_steps_per_execution,
    uses_one_hot_labels,
)
from kerasdl.training.distribute import (
    check_batch_splits,
    even_batches,
    fit_replicas,
    multi_worker_strategy,
)
from kerasdl.training.feature_cache import BackboneFeatures, feature_cache_applies
from kerasdl.training.metrics import ExactValidationAUC, PositiveClassAUC
from kerasdl.training.multi_worker import fit_distributed
from kerasdl.training.optimizers import layer_lr_multipliers, make_optimizer, multipliers_used
from kerasdl.training.phase_data import (
    cached_phase_data,
    check_phase_augmentations,
    fit_class_weight,
    phase_train_data,
    steps_per_epoch,
)
from kerasdl.training.progress import fit_progress
from kerasdl.training.schedules import BudgetCosineDecay
from kerasdl.training.types import PhaseSummary, TrainingResult, TrainOptions

logger = logging.getLogger(__name__)

__all__ = [
    # the phase loop
    "PhaseSummary", "TrainOptions", "TrainingResult", "train",
    # re-exported from the modules that hold them, for `from kerasdl.training.engine import ...`
    "BestModelKeeper", "BudgetCosineDecay", "CheckpointWriter", "DeadlineStop", "HistoryWriter",
    "RandomStateRestorer",
    "PositiveClassAUC", "ResumableEarlyStopping", "compile_for_phase", "fit_class_weight",
    "layer_lr_multipliers", "make_optimizer", "multipliers_used", "phase_loss", "save_model",
    "tensorboard_callback", "uses_one_hot_labels", "write_checkpoint", "write_history_csv",
]


def train(
    model: keras.Model,
    data: ImageData,
    recipe: Recipe,
    *,
    run_dir: str | os.PathLike | None = None,
    verbose: int | str = "auto",
    options: TrainOptions | None = None,
    resume: bool = False,
    features: BackboneFeatures | None = None,
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
        features: Backbone features of `data`'s training and validation
            images computed already, from one pass over the un-augmented
            training split (`kerasdl.app.head_choice` hands its own over). A
            frozen phase with the feature cache trains on them while the
            model's backbone still has the weights they came from. Defaults
            to `None` (compute them).

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
    recipe = resolve_epochs(recipe, steps_per_epoch(data, fit_replicas()))
    options = options or TrainOptions()
    if supported_steps_per_execution(options.steps_per_execution) < options.steps_per_execution:
        logger.info("steps_per_execution=%d: the %s backend runs one batch per call, so training does.",
                    options.steps_per_execution, keras.backend.backend())
    run = _start_training(model, data, recipe, run_dir=run_dir, verbose=verbose,
                          options=options, resume=resume, features=features)
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
    features: BackboneFeatures | None

    @property
    def num_classes(self) -> int:
        return len(self.data.class_names)

    @property
    def num_train(self) -> int:
        return len(self.data.files["train"])


def _start_training(model, data, recipe, *, run_dir, verbose, options, resume, features) -> _Training:
    """Checks the inputs, reads the checkpoint to resume from, and sets up what every phase shares."""
    run_dir = Path(run_dir) if run_dir else None
    folder = checkpoint_dir(run_dir) if run_dir and options.checkpoints else None
    state, arrays = _resume_state(folder) if resume else (TrainingState(), {})
    rows: list[dict[str, Any]] = list(state.history)
    monitor = _training_monitor(recipe, len(data.class_names))
    best = None
    if resume and state.best_metric is not None:
        best = BestEpoch(
            state.best_metric, state.best_epoch,
            loss=next((row.get("val_loss") for row in rows if row.get("epoch") == state.best_epoch), None),
            weights=best_weights_of(arrays),
        )
    keeper = BestModelKeeper(monitor, run_dir / "model.keras" if run_dir else None, target=model,
                             save_every_improvement=folder is None, resume_state=best)
    if arrays:
        restore_model(model, arrays)
        restore_random_state(arrays)
    replicas = fit_replicas()
    check_batch_splits(data.batch_size, replicas)
    left_out = {split: len(data.files[split]) % replicas for split in ("train", "val")}
    if any(left_out.values()):
        logger.info(f"Each epoch leaves out the last {left_out['train']} training and {left_out['val']} "
                    f"validation images: batches must split evenly over the {replicas} replicas "
                    "(the final evaluation uses every image).")
    check_phase_augmentations(data, recipe)
    source = data.train_source()
    return _Training(
        model=model, data=data, recipe=recipe, options=options, run_dir=run_dir, folder=folder,
        verbose=verbose, resume=resume, state=state, arrays=arrays, rows=rows, monitor=monitor,
        keeper=keeper, writer=HistoryWriter(rows, run_dir / "history.csv" if run_dir else None),
        replicas=replicas,
        steps_per_epoch=steps_per_epoch(data, replicas),
        # Every phase draws from one counted (un-augmented) dataset and puts its own
        # augmentation on top, so the data order runs on across phases as before.
        counted_train=PassCountingDataset(source.unaugmented if source is not None else data.train),
        class_weight=fit_class_weight(recipe.data.class_weight, data),
        epoch=state.epoch,
        features=features,
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
                            resuming_at=run.epoch + 1 if resuming else None,
                            min_delta=early_stopping_delta(phase, run.monitor, len(run.data.files["val"]))))
    run.writer.phase = phase.name
    best_before = run.keeper.best
    if run.options.deadline is not None and time.perf_counter() >= run.options.deadline:
        logger.info("Phase %s skipped: the time budget is spent.", phase.name)
        return None
    callbacks = _phase_callbacks(run, index, phase, phase_start, passes_at_start, feature_counter)
    if resuming and run.arrays and done > 0:
        callbacks.insert(0, RandomStateRestorer(run.arrays))
    # Keras 3's fit fails across workers (keras-team/keras#20585): the same epochs there
    # run through kerasdl.training.multi_worker's distributed loop.
    fit = fit_model.fit if multi_worker_strategy() is None else functools.partial(fit_distributed, fit_model)
    data = run.data
    verbose, progress = fit_progress(run.verbose)  # off a terminal: one plain line per epoch
    val_data = even_batches(val_data, run.replicas, count=len(data.files["val"]), batch_size=data.batch_size)
    exact_auc = run.num_classes == 2 and multi_worker_strategy() is None
    if exact_auc:  # first, so every later callback sees it; it predicts the split once for all val_ logs
        callbacks.insert(0, ExactValidationAUC(val_data, loss_and_accuracy=run.replicas == 1,
                                               distributed=run.replicas > 1))
    fit(
        even_batches(train_data, run.replicas, count=run.num_train, batch_size=data.batch_size),
        validation_data=None if exact_auc and run.replicas == 1 else val_data, initial_epoch=run.epoch,
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
        run.counted_train.fast_forward(passes_at_start)
        fit_model, train_data, val_data, feature_counter, reused = cached_phase_data(
            model, data, run.counted_train, run.recipe, phase, run.num_classes, run.run_dir, run.features
        )
        if reused:  # their pass over the training split drew an order, as this phase's own would
            run.counted_train.passes += 1
        feature_counter.fast_forward(run.state.feature_passes if resuming else 0)
        how = ("on the backbone features computed for the head-pooling choice (feature_cache=False "
               "turns it off)" if reused else f"on backbone features computed once per image "
               f"({time.perf_counter() - started:.1f} s; feature_cache=False turns it off)")
    else:
        run.counted_train.fast_forward(passes_at_start + done)
        fit_model, feature_counter = model, None
        train_data, val_data, one_hot = phase_train_data(data, run.counted_train, run.recipe, phase,
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
                *, resuming_at: int | None, min_delta: float = 0.0) -> str:
    """The one line that says how a phase trains."""
    return (
        f"Phase {phase.name}: trainable={phase.trainable} ({trainable:,} parameters), "
        f"{plural(phase.epochs, 'epoch')}, {phase.optimizer} lr={phase.learning_rate:g}"
        + (f" (x{phase.layer_decay:g} per block toward the input)" if multipliers_used(phase) else "")
        + (f", {phase.schedule}" + (f" after {plural(phase.warmup_epochs, 'warmup epoch')}" if phase.warmup_epochs else "")
           if phase.schedule != "constant" else "")
        + (f", early stopping on {monitor} (patience {phase.early_stopping}, gains under {min_delta:.4g} do "
           "not count)" if phase.early_stopping else "")
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
    min_delta = early_stopping_delta(phase, run.monitor, len(run.data.files["val"]))
    keeper.min_delta = min_delta  # the best model, too, changes only on a gain the split resolves
    if phase.early_stopping:
        to_beat, initial_best, initial_wait, beaten = early_stopping_start(
            run.rows, phase, run.monitor, keeper.lower_is_better, min_delta)
        callbacks.append(
            ResumableEarlyStopping(
                monitor=run.monitor, patience=phase.early_stopping, min_delta=min_delta,
                mode="min" if keeper.lower_is_better else "max", to_beat=to_beat,
                initial_best=initial_best, initial_wait=initial_wait, beaten=beaten,
            )
        )
    if run.run_dir is not None and run.options.tensorboard and multi_worker_strategy() is None:
        callbacks.append(tensorboard_callback(run.run_dir, phase.name))
    if run.folder is not None:
        callbacks.append(CheckpointWriter(run.folder, run.model, _state_maker(
            index, phase_start, passes_at_start, run.counted_train, feature_counter, keeper, run.rows,
            run.monitor, phase, min_delta,
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


def _state_maker(index, phase_start, passes_at_start, counted_train, feature_counter, keeper, rows,
                 monitor, phase, min_delta):
    def make_state(epoch: int) -> TrainingState:
        wait = early_stopping_start(rows, phase, monitor, keeper.lower_is_better, min_delta)[2]
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

