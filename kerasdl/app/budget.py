"""`run --time-budget`: fit the fine-tuning epochs into a wall-time budget.

Before the run folder is written, one batch through the backbone measures
the forward time per image; a training step is taken as 3x a forward pass
(forward, then the backward pass's two products). From that, the plan
estimates the feature pass of the frozen phase, each end-to-end epoch, and
the final evaluation and export, and gives each end-to-end phase the most
epochs that fit: first the recipe's epochs (cut where they do not fit), then,
where time is left, more of them, up to `EPOCH_CEILING` times the recipe's,
so a budget is spent on training rather than left unused; early stopping
still ends a phase whose metric stops improving. During training a callback
(`kerasdl.training.callbacks.DeadlineStop`) ends a phase when the next epoch
would overrun the budget, and brings its cosine schedule's end forward to the
last epoch that still fits.
"""

from __future__ import annotations

import copy
import math
import re
import time
from typing import Any

import numpy as np

from kerasdl._util.console import format_duration
from kerasdl.errors import RecipeError
from kerasdl.recipe import phase_augmentation
from kerasdl.training.feature_cache import feature_cache_applies

TRAIN_STEP_FACTOR = 3.0
EXPORT_RESERVE_S = 30.0
# With a budget, an end-to-end phase may grow to this many times its recipe's epochs.
EPOCH_CEILING = 3
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$")


def parse_duration(text: str) -> float:
    """Seconds in `"90s"`, `"10m"`, `"1h30m"` or a plain number of seconds.

    Raises:
        RecipeError: for another form, or zero.

    Example:
    ```python
    parse_duration("10m")  # 600.0
    ```
    """
    match = _DURATION.match(str(text).strip().lower())
    if not match or not any(match.groups()):
        raise RecipeError(
            f"Expected a time budget such as 90s, 10m or 1h30m. Received: {text!r}."
        )
    hours, minutes, seconds = (float(part or 0) for part in match.groups())
    total = 3600 * hours + 60 * minutes + seconds
    if total <= 0:
        raise RecipeError(f"Expected a positive time budget. Received: {text!r}.")
    return total


def budget_seconds(time_budget: float | str | None) -> float | None:
    """`time_budget` as `run_recipe` takes it (seconds, or a duration such as `"10m"`) in seconds."""
    if time_budget is None or isinstance(time_budget, (int, float)) and not isinstance(time_budget, bool):
        return None if time_budget is None else float(time_budget)
    return parse_duration(time_budget)


def as_given(time_budget: float | str) -> str:
    """`time_budget` as the user wrote it, for messages (`"1s"`, or `"90"` for 90.0 seconds)."""
    return time_budget.strip() if isinstance(time_budget, str) else f"{time_budget:g}"


def typeable_duration(seconds: float) -> str:
    """The smallest whole duration of at least `seconds` in the form `parse_duration` reads:
    `"45s"`, `"2m5s"`, `"1h30m"`."""
    seconds = int(math.ceil(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m" + (f"{seconds % 60}s" if seconds % 60 else "")
    minutes = math.ceil(seconds / 60)
    return f"{minutes // 60}h" + (f"{minutes % 60}m" if minutes % 60 else "")


def forward_seconds_per_image(model, data) -> float:
    """Times one batch of training images through the classifier (after a
    warm-up call), in seconds per image."""
    images = next(iter(data.val.take(1)))[0]
    images = np.asarray(images)
    model.predict_on_batch(images)  # traces the function
    started = time.perf_counter()
    model.predict_on_batch(images)
    return (time.perf_counter() - started) / max(1, len(images))


def plan_budget(recipe, data, model, budget_s: float, *, exporting: bool, feature_cache: bool = True,
                spent_s: float = 0.0, given: str | None = None, fixed_epochs=()):
    """Returns `(recipe, plan)`: a copy of the recipe whose end-to-end phases
    have the most epochs that fit `budget_s`, and the estimate behind it.

    `budget_s` is what is left of the run's budget; `spent_s`, the seconds
    the run already took (reading the data, building the model), and `given`,
    the budget as the user wrote it (`"1s"`), only make the refusal speak of
    the whole budget in the user's words. The phases named in
    `fixed_epochs` (whose epochs the user set) may be cut but never grow.

    Raises:
        RecipeError: when even the smallest run (the frozen phase, or one
            epoch of the first phase, then evaluation and export) does not
            fit, naming the smallest budget that does.
    """
    per_image = forward_seconds_per_image(model, data)
    n_train, n_val = len(data.files["train"]), len(data.files["val"])
    evaluation = per_image * n_val + (EXPORT_RESERVE_S if exporting else 0.0) + 5.0
    epoch_end_to_end = TRAIN_STEP_FACTOR * per_image * n_train + per_image * n_val
    fixed, flexible = evaluation, set()
    for phase in recipe.phases:
        if phase.epochs == 0:
            continue
        cached = feature_cache and feature_cache_applies(
            phase.trainable, phase_augmentation(recipe, phase) != "none")
        if cached:
            fixed += per_image * (n_train + n_val) + phase.epochs * 1.0
        else:
            flexible.add(phase.name)
    smallest = fixed + (epoch_end_to_end if flexible and fixed == evaluation else 0.0)
    if budget_s < smallest:
        needed = math.ceil(smallest + spent_s)
        error = RecipeError(
            f"Expected a time budget of at least {format_duration(needed)} for this recipe and data "
            f"(estimated here: {n_train} training images, {per_image * 1000:.1f} ms per image forward, "
            f"{format_duration(spent_s)} already spent reading the data and building the model). Received: "
            f"time_budget={given or as_given(budget_s + spent_s)}. Pass time_budget={typeable_duration(needed)} "
            "or more.",
            argument="time_budget",
        )
        error.smallest_s = smallest  # a k-fold run gives the smallest of the whole run
        raise error
    planned = copy.deepcopy(recipe)
    _fit_epochs([phase for phase in planned.phases if phase.name in flexible],
                budget_s - fixed, epoch_end_to_end, fixed_epochs=fixed_epochs)
    if all(phase.epochs == 0 for phase in planned.phases):  # keep one epoch of the first phase
        planned.phases[0].epochs = 1
    plan: dict[str, Any] = {
        "budget_s": budget_s, "forward_ms_per_image": round(per_image * 1000, 2),
        "estimated_epoch_s": round(epoch_end_to_end, 1), "estimated_fixed_s": round(fixed, 1),
        "evaluation_reserve_s": round(evaluation, 1),
        "epochs": {phase.name: phase.epochs for phase in planned.phases},
        "recipe_epochs": {phase.name: phase.epochs for phase in recipe.phases},
    }
    return planned, plan


def _fit_epochs(phases, seconds: float, epoch_s: float, *, fixed_epochs=()) -> None:
    """Sets each phase's epochs to fit `seconds` at `epoch_s` an epoch: the
    recipe's epochs in phase order first, then the time left spread over the
    phases, up to `EPOCH_CEILING` times the recipe's epochs each (the phases
    of `fixed_epochs`: their own epochs, a ceiling the user set)."""
    if epoch_s <= 0:
        return
    ceilings = [phase.epochs * (1 if phase.name in fixed_epochs else EPOCH_CEILING) for phase in phases]
    left = int(seconds // epoch_s)  # whole epochs the budget holds
    for phase in phases:
        phase.epochs = max(0, min(phase.epochs, left))
        left -= phase.epochs
    while left > 0:
        growing = [(phase, ceiling) for phase, ceiling in zip(phases, ceilings, strict=True)
                   if phase.epochs and phase.epochs < ceiling]
        if not growing:
            return
        for phase, _ in growing[:left]:
            phase.epochs += 1
        left -= min(left, len(growing))
