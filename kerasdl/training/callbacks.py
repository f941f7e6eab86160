"""The callbacks of a phase's `fit`: the best model, history, time budget,
early stopping, checkpoints and TensorBoard logs."""


from __future__ import annotations

import csv
import dataclasses
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasdl.models.saving import save_model
from kerasdl.recipe import Phase
from kerasdl.training.checkpoints import restore_random_state, write_checkpoint
from kerasdl.training.schedules import BudgetCosineDecay

__all__ = [
    "BestEpoch", "BestModelKeeper", "CheckpointWriter", "DeadlineStop", "HistoryWriter", "RandomStateRestorer",
    "ResumableEarlyStopping", "early_stopping_delta", "early_stopping_start", "save_model", "tensorboard_callback",
    "write_history_csv",
]


@dataclasses.dataclass
class BestEpoch:
    """The best epoch so far, as a resumed run hands it to `BestModelKeeper`.

    Args:
        value: Its value of the monitored metric.
        epoch: Its 1-based, run-wide number.
        loss: Its validation loss, to break ties. Defaults to `None`.
        weights: Its weights, from the checkpoint. Defaults to `None`
            (none kept: the next improvement brings them).
    """

    value: float
    epoch: int
    loss: float | None = None
    weights: list[np.ndarray] | None = None


class BestModelKeeper(keras.callbacks.Callback):
    """Keeps the weights of the best epoch (across phases), and saves them.

    Args:
        monitor: A validation metric, e.g. `"val_accuracy"` or `"val_loss"`.
        path: Where to save the best model as `.keras`, written to a
            temporary name then renamed. Defaults to `None` (memory only).
        target: The model whose weights are kept, when it is not the one
            being fitted (feature caching fits a head model that shares the
            classifier's layers). Defaults to `None` (the fitted model).
        min_delta: A gain up to this much is within what the validation
            split resolves (the phase's `early_stopping_delta`): it counts
            only with a lower loss. A phase may change it before its `fit`.
            Defaults to `0.0`.
        save_every_improvement: Write `path` at every improvement. With
            per-epoch checkpoints holding the best weights, pass `False`:
            `flush` then writes it once per phase (saving a whole .keras
            file can take longer than a cached-feature epoch). Defaults to
            `True`.
        resume_state: The best epoch of the run being resumed, or `None`.
            Its weights count as not yet saved (the kill may have come
            before a flush).

    Example:
    ```python
    keeper = BestModelKeeper("val_auc", "runs/a/model.keras", min_delta=1 / 150)
    model.fit(train, validation_data=val, callbacks=[keeper])
    keeper.restore(model)
    ```
    """

    def __init__(self, monitor: str = "val_accuracy", path: str | os.PathLike | None = None, *,
                 target: keras.Model | None = None, min_delta: float = 0.0,
                 save_every_improvement: bool = True, resume_state: BestEpoch | None = None):
        super().__init__()
        self.target = target
        self.monitor = monitor
        self.path = Path(path) if path else None
        self.lower_is_better = monitor.endswith("loss")
        self.min_delta = min_delta
        self.save_every_improvement = save_every_improvement
        resume = resume_state
        self.best: float | None = resume.value if resume else None
        self.best_epoch: int | None = resume.epoch if resume else None
        self.best_loss: float | None = resume.loss if resume else None  # validation loss of the best epoch, for ties
        self.best_weights: list[np.ndarray] | None = resume.weights if resume else None
        self.unsaved = self.best_weights is not None

    def is_better(self, value: float, loss: float | None = None) -> bool:
        """Whether `value` beats the best so far.

        A gain larger than `min_delta` does. A tie or a gain up to `min_delta`
        (ROC-AUC and accuracy saturate, and move by single images, on small
        validation sets) goes to the lower validation loss: an epoch whose
        ROC-AUC is higher by less than one validation image's worth while its
        loss got worse is noise, not a better model.
        """
        if self.best is None:
            return True
        gain = self.best - value if self.lower_is_better else value - self.best
        if gain > self.min_delta:
            return True
        if gain < 0 or self.lower_is_better:  # monitoring the loss itself: nothing to break the tie with
            return False
        return loss is not None and self.best_loss is not None and loss < self.best_loss

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
        elif budgeted and schedule.end_by(step + more * self.steps_per_epoch):
            if keras.backend.backend() == "jax":  # its compiled step holds the old end as a constant
                self.model.make_train_function(force=True)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`EarlyStopping` that must first beat the run's earlier phases, and can resume.

    Until an epoch of this phase beats `to_beat` (the best of the earlier
    phases) by more than `min_delta`, no epoch counts as an improvement, so
    a fine-tuning that cannot beat the head phase beyond what the
    validation split resolves stops after its patience. Once it has, the
    phase runs to its last epoch: it is helping, and the last epochs of a
    cosine schedule, at its smallest rates, are usually its best (stopping
    during a high-rate dip lost 0.03 to 0.04 ROC-AUC on faces-real-ai,
    bench/BENCHMARKS.md). Without `to_beat` it is Keras's `EarlyStopping`.

    Args:
        to_beat: The best value of the earlier phases; `None` when there is
            none to beat.
        initial_best: The best value so far when resuming the phase.
        initial_wait: Epochs since then without improvement.
        beaten: Whether the phase had beaten `to_beat` before resuming.
        **kwargs: `EarlyStopping`'s arguments (`min_delta` among them).
    """

    def __init__(self, *, to_beat: float | None = None, initial_best: float | None = None,
                 initial_wait: int = 0, beaten: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.to_beat, self.initial_best, self.initial_wait = to_beat, initial_best, initial_wait
        self.initially_beaten = beaten or to_beat is None
        self.beaten = self.initially_beaten

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.beaten = self.initially_beaten
        if self.initial_best is not None:
            self.best, self.wait = self.initial_best, self.initial_wait

    def on_epoch_end(self, epoch, logs=None):
        if self.to_beat is None or not self.beaten:
            super().on_epoch_end(epoch, logs)
            return
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self.get_monitor_value(logs)  # beaten: track the best, never stop
        if current is not None and self._is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
        self.wait = 0

    def _is_improvement(self, monitor_value, reference_value):
        if self.beaten:
            return reference_value is None or self.monitor_op(monitor_value, reference_value)
        if self.monitor_op(monitor_value - self.min_delta, self.to_beat):  # Keras signs min_delta
            self.beaten = True
            return True
        return False


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


class RandomStateRestorer(keras.callbacks.Callback):
    """Puts a checkpoint's random state back just before the first resumed epoch.

    Setting a phase up and starting `fit` draw random numbers, which the
    whole run drew before the checkpointed epoch; restoring after them makes
    the resumed epochs draw what the whole run drew (PyTorch's unseeded
    dropout, see `kerasdl.training.checkpoints.restore_random_state`).

    Args:
        arrays: The checkpoint's arrays.
    """

    def __init__(self, arrays: dict[str, np.ndarray]):
        super().__init__()
        self.arrays = arrays
        self.done = False

    def on_epoch_begin(self, epoch, logs=None):
        if not self.done:
            restore_random_state(self.arrays)
            self.done = True


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

def early_stopping_delta(phase: Phase, monitor: str, num_val: int) -> float:
    """The smallest change of `monitor` that early stopping counts as an improvement.

    `phase.min_delta="auto"` is what the validation split can resolve: one
    image's worth (`1 / num_val`) of accuracy or ROC-AUC, and 0 for the loss;
    a number is taken as it is.
    """
    if phase.min_delta != "auto":
        return float(phase.min_delta)
    return 0.0 if monitor.endswith("loss") else 1.0 / max(num_val, 1)


def early_stopping_start(rows, phase: Phase, monitor: str, lower_is_better: bool, min_delta: float = 0.0):
    """Where a phase's early stopping stands after the history `rows`.

    Replays `ResumableEarlyStopping` over the phase's epochs so far, so a
    resumed phase continues as it would have.

    Returns:
        `(to_beat, best, wait, beaten)`: the earlier phases' best, the
        phase's reference value now, epochs since its last improvement, and
        whether it has beaten `to_beat` by more than `min_delta`.
    """
    def better(value, reference, delta=0.0):
        return value + delta < reference if lower_is_better else value - delta > reference

    earlier = [row.get(monitor) for row in rows if row["phase"] != phase.name]
    earlier = [value for value in earlier if value is not None]
    to_beat = (min(earlier) if lower_is_better else max(earlier)) if earlier else None
    best, wait, beaten = to_beat, 0, to_beat is None
    for value in (row.get(monitor) for row in rows if row["phase"] == phase.name):
        if value is None:
            continue
        wait += 1
        if (not beaten and better(value, to_beat, min_delta)) or (beaten and (best is None or better(value, best))):
            beaten, best, wait = True, value, 0
        if beaten and to_beat is not None:
            wait = 0  # a phase that beat the earlier ones runs to its end
    return to_beat, best, wait, beaten
