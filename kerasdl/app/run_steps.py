"""The steps of one run (`kerasdl.app.single.run_single`), in their order: check the inputs, load
the data, resolve the recipe's `auto` values, plan a time budget, keep the trained model, evaluate
it, complete the run folder."""


from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

from kerasdl._util.console import format_duration, plural
from kerasdl._util.files import write_json
from kerasdl._util.run_folder import check_apart_from_data, check_files_outside
from kerasdl.app.budget import as_given, budget_seconds, plan_budget
from kerasdl.app.head_choice import choose_head_pooling
from kerasdl.app.lr_find import recipe_learning_rate
from kerasdl.app.options import RunOptions, check_run_options
from kerasdl.app.run_parts import default_run_dir, prepare_run_dir, source_files
from kerasdl.backbones.weights import prepare_weights
from kerasdl.data.augment import get_augmentation
from kerasdl.data.load import load_data
from kerasdl.data.sources import source_folders
from kerasdl.data.types import DataSplit, count_left_out, describe_skipped
from kerasdl.errors import RecipeError
from kerasdl.evaluation.evaluate import write_evaluation
from kerasdl.evaluation.explain import write_cam_grids
from kerasdl.evaluation.plots import plot_learning_curves
from kerasdl.evaluation.report import write_report
from kerasdl.inference.batches import batch_predictor, collect_predictions
from kerasdl.inference.predict import with_tta
from kerasdl.recipe import data_arguments, resolve_epochs, resolve_monitor, with_recorded_schedule
from kerasdl.training.checkpoints import check_resumable, check_same_files, check_same_recipe
from kerasdl.training.engine import save_model
from kerasdl.training.multi_worker import weights_fingerprint
from kerasdl.training.runtime import float32_copy, seed_everything

logger = logging.getLogger(__name__)


def check_run_inputs(recipe, data_source: str, options: RunOptions, *, files=None):
    """The checks that need no data: the options (`check_run_options`) and the run folder.

    `files`: the source's `FileList` if already listed (a k-fold run lists
    it once for every fold); a resume lists it otherwise, to compare.

    Returns:
        `(formats, export_options, run_dir, previous, files)`: `previous` is
        the interrupted run's config when resuming, else `None`; `files` the
        source's file list, or `None` when not listed yet.
    """
    formats, export_options = check_run_options(recipe, data_source, options)
    previous = None
    if options.resume:
        run_dir = check_resumable(options.output_dir)
        check_apart_from_data(run_dir, source_folders(data_source), data_source=data_source)
        previous = check_same_recipe(run_dir, recipe)
        files = files or source_files(data_source, recipe)
        check_same_files(run_dir, previous, files)  # before weights and the scan
    else:
        run_dir = prepare_run_dir(options.output_dir or default_run_dir(recipe.name), overwrite=options.overwrite,
                                  data_source=data_source)
    return formats, export_options, run_dir, previous, files


def load_run_data(recipe, data_source: str, run_dir: Path, *, runtime, split: DataSplit | None = None):
    """Seeds, weights, then the scanned and split data (whose files must lie outside the run folder).

    `split`: the files already split (a fold of a k-fold run); else the
    source is scanned and split by the recipe.

    Returns:
        `(image_size, data)`.
    """
    arguments = data_arguments(recipe)
    seed_everything(recipe.seed, deterministic=runtime.deterministic)
    if arguments["image_size"] != "auto":  # else the weights wait for the size the data gives
        prepare_weights(recipe.backbone.name, image_size=arguments["image_size"], weights=recipe.backbone.weights,
                        options=recipe.backbone.options)
    data = load_data(data_source, **arguments, augment=get_augmentation(recipe.augment, seed=recipe.seed),
                     cache_dir=run_dir / "cache", progress=True, split=split)
    check_files_outside(run_dir, [p for files in data.files.values() for p in files.paths],
                        data_source=data_source)
    resolve_monitor(recipe.monitor, len(data.class_names))  # val_auc needs two classes
    if arguments["image_size"] == "auto":
        prepare_weights(recipe.backbone.name, image_size=data.image_size, weights=recipe.backbone.weights,
                        options=recipe.backbone.options)
    print_class_counts(data)
    return data.image_size, data


def recipe_to_train(recipe, data, image_size, *, previous, lr_auto):
    """The recipe with the numbers a run resolves when it starts, and what config.json records of them.

    A new run makes `epochs="auto"` a number and, with `lr_auto`, sets the
    head phase's rate by the range test. A resumed run (`previous`: its
    config.json) takes them from its record instead, so it trains with the
    epochs and rates it started with and searches no rate again.

    Returns:
        `(recipe, extra, features)`: `extra` holds config.json's `lr_find`
        and `head_pooling` (and, on resume, the `time_budget` plan) entries;
        `features` are the backbone features the head-pooling choice
        computed, for `train` (or `None`).
    """
    if previous is not None:
        extra = {key: previous[key] for key in ("lr_find", "time_budget", "head_pooling") if key in previous}
        recipe = with_recorded_schedule(recipe, previous["recipe"])
        if lr_auto:
            logger.info("Resuming: phase %s keeps the learning rate it started with, %.3g (no new range test)",
                        recipe.phases[0].name, recipe.phases[0].learning_rate)
        return recipe, extra, None
    # `epochs="auto"` becomes a number now, so config.json, the budget and a resume see it.
    recipe = resolve_epochs(recipe, math.ceil(len(data.files["train"]) / data.batch_size))
    extra, features = {}, None
    if recipe.head.pooling == "auto":  # resolved on the validation split, before the model is built
        recipe, extra["head_pooling"], features = choose_head_pooling(recipe, data, image_size=image_size)
    if not lr_auto:
        return recipe, extra, features
    recipe, found_rate = _learning_rate_by_range_test(recipe, data, image_size)
    return recipe, {**extra, "lr_find": found_rate}, features


def plan_time_budget(recipe, data, model, given, run_started: float, *, exporting: bool,
                     feature_cache: bool, keep_epochs: bool = False, fixed_epochs=()):
    """`--time-budget`: the recipe with the epochs that fit, its plan, and the deadline of training.

    `given` is the budget as `run_recipe` got it (seconds, or `"10m"`). With
    `keep_epochs` (a resumed run) the recipe's epochs stay those the run
    started with, and the budget only sets this command's deadline.

    Returns:
        `(recipe, plan, deadline)`: the `time.perf_counter()` time by which
        training must stop (`TrainOptions.deadline`).
    """
    time_budget = budget_seconds(given)
    spent = time.perf_counter() - run_started
    planned, budget_plan = plan_budget(recipe, data, model, time_budget - spent, spent_s=spent,
                                       exporting=exporting, feature_cache=feature_cache,
                                       given=as_given(given), fixed_epochs=fixed_epochs)
    if keep_epochs:
        budget_plan["epochs"] = {phase.name: phase.epochs for phase in recipe.phases}
    else:
        recipe = planned
    budget_plan["budget_s"] = time_budget  # the plan got what was left of it
    deadline = run_started + time_budget - budget_plan["evaluation_reserve_s"]
    logger.info("Time budget %s: epochs %s (about %s per end-to-end epoch here)", format_duration(time_budget),
                budget_plan["epochs"], format_duration(budget_plan["estimated_epoch_s"]))
    return recipe, budget_plan, deadline


def trained_model(model, run_dir: Path, make_model, *, runtime, leave_scopes):
    """The model to keep, evaluate and export: float32, outside any distribution scope, saved."""
    if runtime.distribute == "multi-worker":  # the same on every worker, or they drifted apart
        logger.info(f"Trained weights fingerprint: {weights_fingerprint(model)}")
    if runtime.mixed_precision:  # keep, evaluate and export in float32 (TFLite takes no bfloat16)
        model = float32_copy(model, functools.partial(make_model, weights=None))
        model.save(run_dir / ".model.tmp.keras")
        os.replace(run_dir / ".model.tmp.keras", run_dir / "model.keras")
    if not (run_dir / "model.keras").exists():  # no validation metric ever improved
        save_model(model, run_dir / "model.keras")
    if runtime.distribute:  # evaluate and export a plain copy, outside the strategy
        leave_scopes()
        model = float32_copy(model, functools.partial(make_model, weights=None))
    return model


def evaluate_run(model, data, result, run_dir: Path, *, tta: str, tensorboard: bool, fold: int = 0):
    """Curves, then metrics.json and its pictures (Grad-CAM grids too) on the test split (else val),
    and their logs.

    Returns:
        `(metrics, predictions)`: `predictions` maps the evaluated split to
        the model's `(labels, probabilities)` there (with `tta`), and, for a
        fold of a k-fold run (`fold` above 0), `"val"` to those of its
        validation fold too; the export's parity check reuses plain ones.
    """
    plot_learning_curves(result.history, run_dir / "curves.png")
    split = "test" if data.test is not None else "val"
    logger.info("Evaluating on %s ...", plural(len(data.files[split]), f"{split} image"))
    labels, probabilities = collect_predictions(
        with_tta(batch_predictor(model), tta), data.test if data.test is not None else data.val
    )
    metrics = write_evaluation(
        labels, probabilities, data.class_names, run_dir, paths=data.files[split].paths,
        extra={"split": split, "skipped_files": count_left_out(data.skipped), "tta": tta,
               "monitor": result.monitor, "best_epoch": result.best_epoch,
               "best_monitored": result.best_metric},
    )
    write_cam_grids(model, data.files[split], labels, probabilities, data.class_names, run_dir)
    if tensorboard and (run_dir / "logs").is_dir():
        from kerasdl.evaluation.tensorboard import write_evaluation_summaries  # TensorBoard's own modules

        write_evaluation_summaries(run_dir / "logs" / "evaluation", run_dir, metrics,
                                   step=max(len(result.history) - 1, 0))
    predictions = {split: (labels, probabilities)}
    if fold and split != "val":  # the out-of-fold predictions of a k-fold run
        predictions["val"] = collect_predictions(with_tta(batch_predictor(model), tta), data.val)
    return metrics, predictions


def complete_run(run_dir: Path, folder, config: dict[str, Any], result, *, seconds: float,
                 export_error) -> None:
    """Marks the run complete in config.json, drops caches and checkpoints, writes report.md."""
    config.update({
        "status": "complete",
        "seconds": round(seconds, 2),
        "training": {
            "monitor": result.monitor,
            "best_metric": result.best_metric,
            "best_epoch": result.best_epoch,
            "phases": [dataclasses.asdict(phase) for phase in result.phases],
        },
    })
    if export_error is not None:
        config["export_error"] = str(export_error)
    write_json(config, run_dir / "config.json")
    shutil.rmtree(run_dir / "cache", ignore_errors=True)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # the run is complete
    write_report(run_dir)
    folder.record(complete=True)


def _learning_rate_by_range_test(recipe, data, image_size):
    """`run --lr auto`: the recipe with its head phase at the range test's suggestion."""
    if recipe.phases[0].trainable not in ("head", "none"):
        raise RecipeError(
            f"Expected a first phase that trains the head alone for lr_auto=True. Received: "
            f"phases.{recipe.phases[0].name}.trainable={recipe.phases[0].trainable!r}. "
            f"Set phases.{recipe.phases[0].name}.learning_rate instead.",
            argument="lr_auto",
        )
    result = recipe_learning_rate(recipe, data, image_size=image_size)
    recipe = copy.deepcopy(recipe)
    recipe.phases[0].learning_rate = result.suggestion
    logger.info("Learning rate of phase %s by the range test: %.3g", recipe.phases[0].name, result.suggestion)
    return recipe, {"suggestion": result.suggestion, "min_loss_learning_rate": result.min_loss_learning_rate,
                    "phase": recipe.phases[0].name}


def print_class_counts(data) -> None:
    """Logs the images per class of each split (and the skipped files) to the kerasdl logger."""
    for split, counts in data.class_counts().items():
        logger.info(f"{split:>5}: " + ", ".join(f"{name} {count}" for name, count in counts.items()))
    if data.skipped:  # duplicate rows and conflicting labels apart from unreadable files
        logger.info(" ".join(describe_skipped(data.skipped)) + " Every row is listed in skipped.csv.")


__all__ = ["check_run_inputs", "complete_run", "evaluate_run", "load_run_data", "plan_time_budget",
           "print_class_counts", "recipe_to_train", "trained_model"]
