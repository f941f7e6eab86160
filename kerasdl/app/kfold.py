"""k-fold cross-validation: K runs of one recipe, their out-of-fold metrics, and the fold ensemble.

`run_recipe` with `data.folds=K` (`kerasdl run RECIPE --data DIR --folds K`)
comes here. The labelled images (train and val pooled; a test split stays
out of every fold) are dealt once into K stratified folds
(`kerasdl.data.folds.plan_folds`), and K ordinary runs
(`kerasdl.app.single.run_single`) go into `folds/fold_1/` ... `folds/fold_K/`,
the k-th given the plan's split for fold k (`FoldPlan.split(k)`): validating
on fold k and training on the others. Every image is then predicted
once by the model that never trained on it; those out-of-fold predictions
(`oof_predictions.csv`) give the run's metrics.json, with bootstrap CIs, as
competitors score a small data set. The K models averaged in one Keras
model are the run's `model.keras` and what it exports (`export.folds="best"`:
the fold with the best validation metric alone). With a test split,
metrics.json's `ensemble_test` scores that model on it, and each entry of
`fold_metrics` its fold's own model, on the same images.

A time budget is shared: each fold gets an equal part of what is left.
`resume=True` skips the finished folds, resumes the interrupted one from its
checkpoint and runs the rest.
"""


from __future__ import annotations

import copy
import csv
import dataclasses
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasdl._util.console import format_duration
from kerasdl._util.files import atomic_path, write_json
from kerasdl._util.run_folder import RunFolder, read_json_object
from kerasdl.app.budget import as_given, budget_seconds, typeable_duration
from kerasdl.app.claim import FOLDS_FOLDER, OOF_FILE, check_fold_folder, claim_fold_folder
from kerasdl.app.options import RunOptions, check_run_options
from kerasdl.app.run_parts import RunResult, default_run_dir, export_run, source_files
from kerasdl.app.single import run_single
from kerasdl.data.folds import PLAN_ARGUMENTS, FoldPlan, plan_folds
from kerasdl.data.load import load_data
from kerasdl.data.types import count_left_out
from kerasdl.errors import KerasdlError, RecipeError
from kerasdl.evaluation.evaluate import write_evaluation
from kerasdl.evaluation.explain import write_cam_grids
from kerasdl.evaluation.metrics import compute_metrics
from kerasdl.evaluation.report import write_report
from kerasdl.inference.batches import batch_predictor, collect_predictions
from kerasdl.inference.predict import with_tta
from kerasdl.models.ensemble import average_models
from kerasdl.recipe import data_arguments
from kerasdl.training.engine import save_model

logger = logging.getLogger(__name__)

# What exporting the ensemble may take, per member, out of a shared time budget (a guess
# from one conversion and parity check of EfficientNet-Lite0 here, bench/BENCHMARKS.md).
EXPORT_RESERVE_PER_MODEL_S = 20.0


@dataclasses.dataclass
class FoldOutcome:
    """One fold's model and predictions.

    Attributes:
        fold: The fold number, 1 to K.
        model_file: Its `model.keras` (the best epoch's weights, saved without
            compile state).
        val: `(labels, probabilities)` on its validation fold.
        test: `(labels, probabilities)` on the test split, or `None`.
        summary: Its entry of metrics.json's `fold_metrics`.
    """

    fold: int
    model_file: Path
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray] | None
    summary: dict[str, Any]


def run_folds(recipe, data_source: str, options: RunOptions) -> RunResult:
    """Runs k-fold cross-validation of a recipe and writes its run folder.

    What `run_recipe` calls when `recipe.data.folds` is 2 or more. The
    folds are dealt once (`kerasdl.data.folds.plan_folds`), and each is an
    ordinary run (`kerasdl.app.single.run_single`) given its split.

    Args:
        recipe: A `Recipe` with `data.folds` of 2 or more.
        data_source: The image source.
        options: The `RunOptions` of the whole run; each fold gets them
            with its own folder, no export and its share of a time budget.

    Returns:
        A `RunResult`: the out-of-fold metrics, the shipped model (the fold
        ensemble, or the best fold), the export's parity checks, and the
        out-of-fold predictions as `predictions["out_of_fold"]`.

    Raises:
        KerasdlError: for bad input (too many folds for the data included),
            before the run folder is created or an earlier run deleted.
        ExportError: when an export fails or is rejected, after the run
            folder is complete.

    Example:
    ```python
    recipe = apply_overrides(get_recipe("efficientnet-lite0-transfer"), ["data.folds=5"])
    result = run_recipe(recipe, "faces/", output_dir="runs/faces-5fold")
    ```
    """
    started = time.perf_counter()
    given, time_budget = options.time_budget, budget_seconds(options.time_budget)  # "10m" or seconds
    formats, export_options = _check_fold_inputs(recipe, data_source, options)
    run_dir = Path(options.output_dir or default_run_dir(recipe.name))
    files = source_files(data_source, recipe)  # listed once: the resume check, config.json, every fold
    previous = check_fold_folder(run_dir, recipe, data_source, files, overwrite=options.overwrite,
                                 resume=options.resume)
    arguments = data_arguments(recipe)
    plan = plan_folds(data_source, folds=recipe.data.folds, progress=True,
                      **{key: arguments[key] for key in PLAN_ARGUMENTS})
    folder, config = claim_fold_folder(run_dir, recipe, plan, data_source, files, overwrite=options.overwrite,
                                        previous=previous, command=options.command)
    options = dataclasses.replace(options, export_options=export_options)
    reserve = EXPORT_RESERVE_PER_MODEL_S * (recipe.data.folds if recipe.export.folds == "all" else 1) \
        if formats else 0.0
    outcomes = []
    for fold in range(1, recipe.data.folds + 1):
        budget = None
        if time_budget is not None:
            left = time_budget - (time.perf_counter() - started) - reserve
            budget = max(left, 1.0) / (recipe.data.folds - fold + 1)
        try:
            outcomes.append(_run_fold(recipe, data_source, run_dir, fold, plan, files,
                                      dataclasses.replace(options, time_budget=budget)))
        except KerasdlError as error:
            _undo_unstarted_run(error, run_dir, fold, resumed=previous is not None, folds=recipe.data.folds,
                                reserve=reserve, given=None if given is None else as_given(given))
            raise
        folder.record()
    metrics, oof = _write_fold_evaluation(run_dir, plan, outcomes, recipe=recipe, tta=options.tta)
    model = _shipped_model(recipe, outcomes, run_dir)
    folder.record()
    parity, export_error = _export_ensemble(model, recipe, data_source, run_dir, formats, export_options, plan)
    _complete_fold_run(run_dir, folder, config, outcomes, image_size=int(model.input_shape[1]),
                       seconds=time.perf_counter() - started, export_error=export_error)
    if export_error is not None:
        raise export_error
    return RunResult(run_dir=run_dir, metrics=metrics, model=model, parity=parity,
                     predictions={"out_of_fold": oof})


def _undo_unstarted_run(error, run_dir: Path, fold: int, *, resumed: bool, folds: int, reserve: float,
                        given: str | None = None) -> None:
    """A first fold refused before training (bad weights, too small a budget...) leaves no folder.

    The error's time budget advice is made the whole run's: K folds and the export, quoting the
    budget as the user wrote it (`given`).
    """
    if fold != 1 or resumed or (run_dir / FOLDS_FOLDER / "fold_1" / "checkpoints").is_dir():
        return
    for folder in (run_dir / FOLDS_FOLDER / "fold_1", run_dir):
        if RunFolder(folder).holds_run():
            RunFolder(folder).clear()
    smallest = getattr(error, "smallest_s", None)
    if smallest is not None:
        whole = math.ceil(smallest * folds + reserve)
        error.args = (f"Expected a time budget of at least {format_duration(whole)} for {folds} folds of this "
                      f"recipe and data ({format_duration(math.ceil(smallest))} a fold, "
                      f"{format_duration(math.ceil(reserve))} for the export). Received: time_budget={given}. "
                      f"Pass time_budget={typeable_duration(whole)} or more, or fewer folds.",)


def _check_fold_inputs(recipe, data_source: str, options: RunOptions):
    """The checks of any run (`check_run_options`), and no multi-worker distribution.

    Returns:
        `(formats, export_options)`.
    """
    formats, export_options = check_run_options(recipe, data_source, options)
    if options.runtime is not None and options.runtime.distribute == "multi-worker":
        raise RecipeError(
            "Expected distribute=None or distribute='mirrored' with folds. Received: "
            "distribute='multi-worker'. Run the folds on one machine, or one run across machines.",
            argument="distribute",
        )
    return formats, export_options


# ------------------------------------------------------------------ the folds


def _run_fold(recipe, data_source: str, run_dir: Path, fold: int, plan: FoldPlan, files,
              options: RunOptions) -> FoldOutcome:
    """Trains fold `fold` into `folds/fold_<fold>/` (or picks up its finished or interrupted run):
    a run of its own, on the plan's split for the fold."""
    fold_dir = run_dir / FOLDS_FOLDER / f"fold_{fold}"
    fold_recipe = copy.deepcopy(recipe)
    fold_recipe.export.formats = []  # the run ships the folds' ensemble, not each fold
    config = read_json_object(fold_dir / "config.json") or {}
    if config.get("status") == "complete":
        logger.info(f"Fold {fold} of {recipe.data.folds}: finished before, reading its model.")
        return _finished_fold(fold_recipe, data_source, fold_dir, plan, fold, tta=options.tta)
    interrupted = options.resume and (fold_dir / "checkpoints").is_dir()
    logger.info(f"Fold {fold} of {recipe.data.folds}: " + ("resuming" if interrupted else "training")
                + f" into {fold_dir}")
    fold_options = dataclasses.replace(
        options, output_dir=fold_dir, export=[], resume=interrupted,
        overwrite=not interrupted and RunFolder(fold_dir).holds_run(),  # a fold killed before its checkpoint
        command=f"fold {fold} of the k-fold run in {run_dir}")
    result = run_single(fold_recipe, data_source, fold_options, split=plan.split(fold), files=files)
    return _outcome(fold, result.predictions["val"], result.predictions.get("test"), fold_dir,
                    plan.class_names)


def _finished_fold(fold_recipe, data_source: str, fold_dir: Path, plan: FoldPlan, fold: int, *,
                   tta: str) -> FoldOutcome:
    """The model of a fold that finished before an interruption, and its predictions anew."""
    model = keras.saving.load_model(fold_dir / "model.keras", compile=False)
    loaded = _load_fold(fold_recipe, data_source, model.input_shape[1], plan, fold)
    predict = with_tta(batch_predictor(model), tta)
    test = collect_predictions(predict, loaded.test) if loaded.test is not None else None
    return _outcome(fold, collect_predictions(predict, loaded.val), test, fold_dir, plan.class_names)


def _outcome(fold: int, val, test, fold_dir: Path, class_names: list[str]) -> FoldOutcome:
    """A `FoldOutcome`, its summary read from the fold's config.json and scored on val (and test)."""
    config = read_json_object(fold_dir / "config.json") or {}
    training = config.get("training", {})
    summary: dict[str, Any] = {"fold": fold, "folder": f"{FOLDS_FOLDER}/fold_{fold}",
                               "num_val": int(len(val[0])), "monitor": training.get("monitor"),
                               "best_monitored": training.get("best_metric"),
                               "best_epoch": training.get("best_epoch"), "seconds": config.get("seconds")}
    for split, predicted in (("val", val), ("test", test)):
        if predicted is None:
            continue
        scored = compute_metrics(*predicted, class_names)
        summary[split] = {key: scored[key] for key in ("accuracy", "accuracy_ci95", "auc", "auc_ci95")
                          if key in scored}
    return FoldOutcome(fold=fold, model_file=fold_dir / "model.keras", val=val, test=test, summary=summary)


# ---------------------------------------------------------- the whole run


def _write_fold_evaluation(run_dir: Path, plan: FoldPlan, outcomes: list[FoldOutcome], *, recipe, tta: str):
    """metrics.json (out of fold, with the ensemble's test score) and its pictures, oof_predictions.csv.

    Returns:
        `(metrics, (labels, probabilities))` of the out-of-fold predictions.
    """
    labels = np.asarray(plan.pool.labels, dtype=int)
    probabilities = np.zeros((len(labels), len(plan.class_names)))
    for outcome in outcomes:
        probabilities[plan.numbers == outcome.fold] = outcome.val[1]
    extra: dict[str, Any] = {"split": "out-of-fold", "folds": recipe.data.folds, "tta": tta,
                             "skipped_files": count_left_out(plan.skipped),
                             "fold_metrics": [outcome.summary for outcome in outcomes]}
    if plan.test is not None:
        averaged = np.mean([outcome.test[1] for outcome in outcomes], axis=0)
        extra["ensemble_test"] = compute_metrics(outcomes[0].test[0], averaged, plan.class_names)
        extra["ensemble_test"]["num_models"] = len(outcomes)
    logger.info("Out-of-fold evaluation of %d images ...", len(labels))
    metrics = write_evaluation(labels, probabilities, plan.class_names, run_dir, paths=plan.pool.paths,
                               extra=extra)
    _write_oof_cam_grids(run_dir, plan, outcomes, labels, probabilities)
    _write_oof_csv(run_dir / OOF_FILE, plan, probabilities)
    return metrics, (labels, probabilities)


def _write_oof_cam_grids(run_dir: Path, plan: FoldPlan, outcomes: list[FoldOutcome], labels, probabilities):
    """cam_wrong.png and cam_right.png of the out-of-fold predictions, as a single run's report shows:
    each image under the heatmap of the fold model that predicted it (and never trained on it)."""
    models = [keras.saving.load_model(outcome.model_file, compile=False) for outcome in outcomes]
    index = {outcome.fold: number for number, outcome in enumerate(outcomes)}
    write_cam_grids(models, plan.pool, labels, probabilities, plan.class_names, run_dir,
                    model_of=[index[int(fold)] for fold in plan.numbers])


def _write_oof_csv(path: Path, plan: FoldPlan, probabilities: np.ndarray) -> None:
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "fold", "predicted", *plan.class_names])
        for index, file_path in enumerate(plan.pool.paths):
            row = probabilities[index]
            writer.writerow([file_path, plan.class_names[plan.pool.labels[index]], int(plan.numbers[index]),
                             plan.class_names[int(row.argmax())], *(f"{value:.6f}" for value in row)])


def _shipped_model(recipe, outcomes: list[FoldOutcome], run_dir: Path):
    """The model the run keeps and exports, saved as model.keras: the fold ensemble, or the best fold."""
    if recipe.export.folds == "best":
        lower_is_better = (outcomes[0].summary.get("monitor") or "").endswith("loss")
        scored = [o for o in outcomes if o.summary.get("best_monitored") is not None] or outcomes
        best = (min if lower_is_better else max)(scored, key=lambda o: o.summary.get("best_monitored") or 0.0)
        logger.info(f"Keeping fold {best.fold} alone (export.folds='best'): best "
                    f"{best.summary.get('monitor')} {best.summary.get('best_monitored')}")
        model = keras.saving.load_model(best.model_file, compile=False)
    else:
        model = average_models([keras.saving.load_model(o.model_file, compile=False) for o in outcomes])
        logger.info(f"Keeping the {len(outcomes)} fold models averaged in one model ({len(outcomes)} times "
                    "one model's size; export.folds='best' keeps the best fold alone)")
    temporary = run_dir / ".model.tmp.keras"
    save_model(model, temporary)
    os.replace(temporary, run_dir / "model.keras")
    return model


def _export_ensemble(model, recipe, data_source: str, run_dir: Path, formats, export_options, plan: FoldPlan):
    """Exports the shipped model, its parity checked on the last fold's validation images."""
    if not formats:
        return {}, None
    checked = _load_fold(recipe, data_source, model.input_shape[1], plan, recipe.data.folds)
    return export_run(model, checked, run_dir, formats, export_options, image_size=model.input_shape[1],
                       batch_size=recipe.batch_size)


def _complete_fold_run(run_dir: Path, folder, config: dict[str, Any], outcomes: list[FoldOutcome], *,
                       image_size: int, seconds: float, export_error) -> None:
    """Marks the run complete in config.json, writes report.md, lists its files in the manifest."""
    config.update({"status": "complete", "seconds": round(seconds, 2),
                   "fold_seconds": [outcome.summary.get("seconds") for outcome in outcomes],
                   "image_size": image_size})
    if export_error is not None:
        config["export_error"] = str(export_error)
    write_json(config, run_dir / "config.json")
    write_report(run_dir)
    folder.record(complete=True)


def _load_fold(recipe, data_source: str, image_size: int, plan: FoldPlan, fold: int):
    """The plan's split for `fold` (unaugmented), at `image_size`."""
    return load_data(data_source, **{**data_arguments(recipe), "image_size": image_size},
                     split=plan.split(fold))


__all__ = ["FoldOutcome", "run_folds"]
