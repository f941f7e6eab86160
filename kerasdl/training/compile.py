"""Compiling the model for a phase: its trainable layers, loss, metrics and optimizer."""


from __future__ import annotations

from typing import Any

import keras

from kerasdl.models.classifier import set_trainable
from kerasdl.recipe import Phase
from kerasdl.training.metrics import PositiveClassAUC
from kerasdl.training.optimizers import layer_lr_multipliers, make_optimizer, multipliers_used

__all__ = ["compile_for_phase", "phase_loss", "supported_steps_per_execution", "uses_one_hot_labels"]


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
        steps_per_execution: Batches per compiled call; the PyTorch
            backend runs one (`supported_steps_per_execution`). Defaults to `1`.
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
        steps_per_execution=supported_steps_per_execution(steps_per_execution),
    )


def supported_steps_per_execution(requested: int) -> int:
    """`requested`, or 1 on the PyTorch backend, whose `fit` refuses more batches per call.

    A speed setting only: the updates and the schedule are the same either way.
    """
    return 1 if keras.backend.backend() == "torch" else requested
