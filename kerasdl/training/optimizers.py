"""A phase's optimizer: Keras's optimizers, learning-rate schedules and layer-wise rates."""


from __future__ import annotations

from typing import Any

import keras

from kerasdl.errors import RecipeError
from kerasdl.models.classifier import block_name, get_backbone_layer
from kerasdl.recipe import OPTIMIZERS, SCHEDULES, Phase
from kerasdl.training.schedules import BudgetCosineDecay

__all__ = ["layer_lr_multipliers", "make_optimizer", "multipliers_used"]


class _LayerwiseRates:
    """Mixin: scales each variable's learning rate by its multiplier.

    The multipliers (`{id(variable): factor}`, missing ones 1) scale the
    step's learning rate, so momentum and Adam's moments stay those of the
    unscaled optimizer and only the step size changes (scaling the gradient
    instead would cancel out in Adam). On TensorFlow and JAX, Keras calls
    `update_step` once per variable; the PyTorch backend's optimizers update
    all variables in one fused call (`_parallel_update_step`) that bypasses
    `update_step`, so there the variables are updated in one fused call per
    multiplier. Tested on each backend (tests/training/test_defaults.py -k
    layer; `tox -e jax`, `tox -e torch`).
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

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if not hasattr(self, "_parallel_update_step"):  # TensorFlow, JAX: update_step per variable
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        import torch

        groups: dict[float, tuple[list, list]] = {}
        for gradient, variable in zip(grads, trainable_variables, strict=True):
            factor = self._multiplier_by_index[self._get_variable_index(variable)]
            group = groups.setdefault(factor, ([], []))
            group[0].append(gradient)
            group[1].append(variable)
        with torch.no_grad():
            for factor, (group_grads, group_variables) in groups.items():
                rate = learning_rate if factor == 1.0 else learning_rate * factor
                self._parallel_update_step(group_grads, group_variables, rate)


def _backend_class(optimizer_class: type) -> type:
    """The class Keras builds for `optimizer_class` on this backend.

    On PyTorch, `keras.optimizers.Adam(...)` makes an instance of a fused
    subclass (Keras's `TorchOptimizer.__new__` swaps it in); a subclass of
    Keras's class would not get it, so the layer-wise classes derive from
    the fused one. Elsewhere it is `optimizer_class` itself.
    """
    if keras.backend.backend() != "torch":
        return optimizer_class
    return type(optimizer_class.__new__(optimizer_class))  # no __init__: nothing is built


class LayerwiseAdam(_LayerwiseRates, _backend_class(keras.optimizers.Adam)):
    pass


class LayerwiseAdamW(_LayerwiseRates, _backend_class(keras.optimizers.AdamW)):
    pass


class LayerwiseSGD(_LayerwiseRates, _backend_class(keras.optimizers.SGD)):
    pass


class LayerwiseRMSprop(_LayerwiseRates, _backend_class(keras.optimizers.RMSprop)):
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
    if phase.ema:
        # Keras's own moving average, copied into the weights at the end of every epoch, so
        # validation, the kept best model and the next epoch all use the averaged weights.
        common.update(use_ema=True, ema_momentum=phase.ema, ema_overwrite_frequency=max(1, steps_per_epoch))
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
