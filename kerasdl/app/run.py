"""One complete job: data -> model -> training -> evaluation -> export -> report.

`run_recipe` is what `kerasdl run` calls. All inputs are checked before the
run folder is created, so bad input never leaves a half-written folder.
"""


from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kerasdl._util.console import plural
from kerasdl.app.run_parts import (  # noqa: F401 - also where callers have long found them
    PACKAGES,
    RunResult,
    default_run_dir,
    environment_info,
    export_run,
    package_versions,
    prepare_run_dir,
    replace_run,
    source_files,
)

logger = logging.getLogger(__name__)




def run_recipe(
    recipe,
    data_source: str,
    *,
    output_dir: str | os.PathLike | None = None,
    export: list[tuple[str, str]] | None = None,
    overwrite: bool = False,
    command: str = "",
    verbose: int | str = "auto",
    export_options=None,
    resume: bool = False,
    training_options=None,
    runtime=None,
    tta: str = "none",
    lr_auto: bool = False,
    time_budget: float | str | None = None,
    fixed_epochs: tuple[str, ...] = (),
) -> RunResult:
    """Runs a recipe end to end and writes its run folder.

    Args:
        recipe: A `Recipe` (already overridden as wanted).
        data_source: The image source (folder, `sample`, ...).
        output_dir: The run folder. Defaults to `runs/<recipe>/<timestamp>/`.
        export: `(format, quantize)` pairs to export; defaults to the
            recipe's `export` list.
        overwrite: Replace the kerasdl run in `output_dir`: once every
            input is checked, the files that run wrote (its manifest.json)
            are deleted and anything else there stays. Defaults to `False`.
        command: The command line, recorded for reproduction. Defaults to `""`.
        verbose: Training progress: `"auto"` (Keras's live bar on a
            terminal, else one plain line per epoch), `1`, `2` (one line per
            epoch) or `0`. Defaults to `"auto"`.
        export_options: An `ExportOptions` (int8 calibration size, rejection
            threshold). Defaults to `None` (`ExportOptions(seed=recipe.seed)`).
        resume: Continue the interrupted run in `output_dir` from its last
            checkpoint (same recipe and data). Defaults to `False`.
        training_options: A `kerasdl.TrainOptions` (feature cache,
            XLA, steps per execution). Defaults to `None` (its defaults).
        runtime: A `kerasdl.training.runtime.RuntimeOptions` (determinism, mixed
            precision, distribution). Defaults to `None` (none of them).
        tta: Test-time augmentation of the final evaluation: `"none"`, or
            `"flip"` to average each image's and its mirror's probabilities
            (recorded in metrics.json). Defaults to `"none"`.
        lr_auto: Set the first (head) phase's learning rate by the range test
            of `kerasdl.app.lr_find` before training (recorded in config.json).
            Defaults to `False`.
        time_budget: Seconds the whole run may take, or a duration such as
            `"10m"` or `"1h30m"`: the end-to-end phases get the most epochs
            that fit (`kerasdl.app.budget`), and a phase stops when another
            epoch would overrun. Defaults to `None`.
        fixed_epochs: Names of the phases whose epochs the user set: a time
            budget may cut them but never adds any (the others may grow to
            `kerasdl.app.budget.EPOCH_CEILING` times theirs). Defaults to `()`.

    Returns:
        A `RunResult`.

    Raises:
        KerasdlError: for bad input, before any training and before the run
            folder is created or an earlier run in it deleted.
        RunFolderError: for an `output_dir` that holds files of the user's,
            or is the data folder, inside it or above it.
        ExportError: when an export fails or is rejected by its parity check;
            raised after the run folder is complete (model, metrics, report).

    Example:
    ```python
    from kerasdl import get_recipe, run_recipe
    result = run_recipe(get_recipe("mobilenetv2-transfer"), "my_images/")
    logger.info(result.metrics["accuracy"])
    ```
    """
    from kerasdl.training.distribute import distribution_scope, is_chief
    from kerasdl.training.engine import TrainOptions
    from kerasdl.training.multi_worker import (
        check_multi_worker_run,
        peer_failures_reported,
        workers_leave_together,
    )
    from kerasdl.training.runtime import RuntimeOptions, dtype_policy

    if recipe.data.folds and not recipe.data.fold:  # k-fold: one run per fold, then their ensemble
        from kerasdl.app.kfold import run_folds

        return run_folds(recipe, data_source, run_one=run_recipe, output_dir=output_dir, export=export, overwrite=overwrite,
                         command=command, verbose=verbose, export_options=export_options, resume=resume,
                         training_options=training_options, runtime=runtime, tta=tta, lr_auto=lr_auto,
                         time_budget=time_budget, fixed_epochs=fixed_epochs)
    runtime = runtime or RuntimeOptions()
    training_options = dataclasses.replace(training_options or TrainOptions())
    check_multi_worker_run(runtime.distribute, resume=resume, training_options=training_options)
    if runtime.distribute and training_options.feature_cache:
        logger.info("Feature cache off while distributing (the extraction pass is not distributed).")
        training_options.feature_cache = False
    worker_dir = None
    if not is_chief(runtime.distribute):  # the other workers train too, into a scratch folder
        worker_dir = Path(tempfile.mkdtemp(prefix="kerasdl_worker_"))
        output_dir, overwrite, resume, export = worker_dir, True, False, []
    try:
        with peer_failures_reported(runtime.distribute), workers_leave_together(runtime.distribute), \
                contextlib.ExitStack() as scopes:
            # `scopes` are left after training (`leave_scopes`)
            scopes.enter_context(dtype_policy(runtime.mixed_precision))
            scopes.enter_context(distribution_scope(runtime.distribute))
            return _run_recipe(
                recipe, data_source, output_dir=output_dir, export=export, overwrite=overwrite,
                command=command, verbose=verbose, resume=resume, export_options=export_options,
                training_options=training_options, runtime=runtime, leave_scopes=scopes.close,
                tta=tta, lr_auto=lr_auto, time_budget=time_budget, fixed_epochs=fixed_epochs,
            )
    finally:
        if worker_dir is not None:
            shutil.rmtree(worker_dir, ignore_errors=True)


def _run_recipe(recipe, data_source, *, output_dir, export, overwrite, command, verbose, resume,
                export_options, training_options, runtime, leave_scopes=lambda: None,
                tta="none", lr_auto=False, time_budget=None, fixed_epochs=()) -> RunResult:
    """`run_recipe` inside its dtype policy and distribution scope, which
    `leave_scopes()` leaves once the model is trained.

    The steps: check every input (recipe, export formats, output folder,
    weights, data), plan the time budget, claim the run folder (only now may
    an earlier run's files go), train, evaluate, export, complete the folder.
    """
    from kerasdl.app.budget import budget_seconds
    from kerasdl.models.classifier import build_classifier
    from kerasdl.training.engine import train

    run_started = time.perf_counter()
    budget = budget_seconds(time_budget)  # "10m" or seconds; a bad form is refused before any work
    formats, export_options, run_dir, previous = _check_run_inputs(
        recipe, data_source, export=export, export_options=export_options, output_dir=output_dir,
        overwrite=overwrite, resume=resume, tta=tta)
    image_size, data = _load_run_data(recipe, data_source, run_dir, runtime=runtime)
    if resume:
        from kerasdl.training.checkpoints import check_same_data

        check_same_data(previous, data)
    given = recipe
    recipe, extra, features = _recipe_to_train(recipe, data, image_size, previous=previous, lr_auto=lr_auto)
    make_model = functools.partial(
        build_classifier,
        recipe.backbone.name, len(data.class_names), weights=recipe.backbone.weights,
        image_size=image_size, dropout=recipe.head.dropout, hidden_units=recipe.head.hidden_units,
        pooling=recipe.head.pooling,
        activation=recipe.head.activation, backbone_options=recipe.backbone.options,
        trainable=recipe.phases[0].trainable,
    )
    model = make_model()
    if budget is not None:
        recipe, extra["time_budget"] = _plan_time_budget(
            recipe, data, model, time_budget, run_started, exporting=bool(formats),
            training_options=training_options, keep_epochs=resume, fixed_epochs=fixed_epochs)
    folder, config = _claim_run_folder(
        run_dir, recipe, data, given=given, overwrite=overwrite, resume=resume, previous=previous,
        command=command, image_size=image_size, runtime=runtime, training_options=training_options,
        extra=extra)

    started = time.perf_counter()
    result = train(model, data, recipe, run_dir=run_dir, verbose=verbose, options=training_options,
                   resume=resume, features=features)
    folder.record()
    model = _trained_model(model, run_dir, make_model, runtime=runtime, leave_scopes=leave_scopes)
    metrics, predictions = _evaluate_run(model, data, result, run_dir, tta=tta,
                                         tensorboard=training_options.tensorboard, fold=recipe.data.fold)
    folder.record()
    parity, export_error = export_run(model, data, run_dir, formats, export_options,
                                       image_size=image_size, batch_size=recipe.batch_size,
                                       reference=predictions.get("val") if tta == "none" else None)
    _complete_run(run_dir, folder, config, result, seconds=time.perf_counter() - started,
                  export_error=export_error)
    if export_error is not None:
        raise export_error
    return RunResult(run_dir=run_dir, metrics=metrics, model=model, parity=parity, predictions=predictions)


def _check_run_inputs(recipe, data_source, *, export, export_options, output_dir, overwrite, resume, tta):
    """The checks that need no data: recipe, TTA, batch split, export formats and the run folder.

    Returns:
        `(formats, export_options, run_dir, previous)`: `previous` is the
        interrupted run's config when resuming, else `None`.
    """
    from kerasdl._util.run_folder import check_apart_from_data
    from kerasdl.data.naming import check_source
    from kerasdl.data.sources import source_folders
    from kerasdl.errors import RecipeError
    from kerasdl.export.options import ExportOptions, check_export_requirements, parse_export_list
    from kerasdl.inference.predict import TTA_MODES
    from kerasdl.recipe import validate_recipe
    from kerasdl.training.checkpoints import check_resumable, check_same_files, check_same_recipe
    from kerasdl.training.distribute import check_batch_splits, fit_replicas

    validate_recipe(recipe)
    check_source(data_source, class_names=recipe.data.class_names)  # paths and names, before weights
    if tta not in TTA_MODES:
        raise RecipeError(f"Expected tta from: {', '.join(TTA_MODES)}. Received: tta={tta!r}.", argument="tta")
    check_batch_splits(recipe.batch_size, fit_replicas())
    formats = export if export is not None else parse_export_list(
        recipe.export.formats, tflite_quantize=recipe.export.quantize)
    check_export_requirements(formats)
    export_options = export_options or ExportOptions(seed=recipe.seed)
    previous = None
    if resume:
        run_dir = check_resumable(output_dir)
        check_apart_from_data(run_dir, source_folders(data_source), data_source=data_source)
        previous = check_same_recipe(run_dir, recipe)
        check_same_files(run_dir, previous, source_files(data_source, recipe))  # before weights and the scan
    else:
        run_dir = prepare_run_dir(output_dir or default_run_dir(recipe.name), overwrite=overwrite,
                                  data_source=data_source)
    return formats, export_options, run_dir, previous


def _load_run_data(recipe, data_source, run_dir: Path, *, runtime):
    """Seeds, weights, then the scanned and split data (whose files must lie outside the run folder).

    Returns:
        `(image_size, data)`.
    """
    from kerasdl._util.run_folder import check_files_outside
    from kerasdl.backbones.weights import prepare_weights
    from kerasdl.data.augment import get_augmentation
    from kerasdl.data.load import load_data
    from kerasdl.recipe import image_size_arguments, resolve_monitor
    from kerasdl.training.runtime import seed_everything

    sizes = image_size_arguments(recipe)
    seed_everything(recipe.seed, deterministic=runtime.deterministic)
    if sizes["image_size"] != "auto":  # else the weights wait for the size the data gives
        prepare_weights(recipe.backbone.name, image_size=sizes["image_size"], weights=recipe.backbone.weights,
                        options=recipe.backbone.options)
    data = load_data(
        data_source, **sizes, batch_size=recipe.batch_size,
        val_split=recipe.data.val_split, test_split=recipe.data.test_split, seed=recipe.seed,
        augment=get_augmentation(recipe.augment, seed=recipe.seed),
        cache_dir=run_dir / "cache", progress=True,
        path_column=recipe.data.path_column, label_column=recipe.data.label_column,
        encoding=recipe.data.encoding, max_image_pixels=recipe.data.max_image_pixels,
        folds=recipe.data.folds, fold=recipe.data.fold,
        class_names=recipe.data.class_names,
    )
    check_files_outside(run_dir, [p for files in data.files.values() for p in files.paths],
                        data_source=data_source)
    resolve_monitor(recipe.monitor, len(data.class_names))  # val_auc needs two classes
    if sizes["image_size"] == "auto":
        prepare_weights(recipe.backbone.name, image_size=data.image_size, weights=recipe.backbone.weights,
                        options=recipe.backbone.options)
    print_class_counts(data)
    return data.image_size, data


def _recipe_to_train(recipe, data, image_size, *, previous, lr_auto):
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
    from kerasdl.recipe import resolve_epochs, with_recorded_schedule

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
        from kerasdl.app.head_choice import choose_head_pooling

        recipe, extra["head_pooling"], features = choose_head_pooling(recipe, data, image_size=image_size)
    if not lr_auto:
        return recipe, extra, features
    recipe, found_rate = _learning_rate_by_range_test(recipe, data, image_size)
    return recipe, {**extra, "lr_find": found_rate}, features


def _plan_time_budget(recipe, data, model, given, run_started: float, *, exporting: bool,
                      training_options, keep_epochs: bool = False, fixed_epochs=()):
    """`--time-budget`: the recipe with the epochs that fit, and the deadline set on the options.

    `given` is the budget as `run_recipe` got it (seconds, or `"10m"`). With
    `keep_epochs` (a resumed run) the recipe's epochs stay those the run
    started with, and the budget only sets this command's deadline.
    """
    from kerasdl._util.console import format_duration
    from kerasdl.app.budget import as_given, budget_seconds, plan_budget

    time_budget = budget_seconds(given)
    spent = time.perf_counter() - run_started
    planned, budget_plan = plan_budget(recipe, data, model, time_budget - spent, spent_s=spent,
                                       exporting=exporting, feature_cache=training_options.feature_cache,
                                       given=as_given(given), fixed_epochs=fixed_epochs)
    if keep_epochs:
        budget_plan["epochs"] = {phase.name: phase.epochs for phase in recipe.phases}
    else:
        recipe = planned
    budget_plan["budget_s"] = time_budget  # the plan got what was left of it
    training_options.deadline = run_started + time_budget - budget_plan["evaluation_reserve_s"]
    logger.info("Time budget %s: epochs %s (about %s per end-to-end epoch here)", format_duration(time_budget),
                budget_plan["epochs"], format_duration(budget_plan["estimated_epoch_s"]))
    return recipe, budget_plan


def _claim_run_folder(run_dir: Path, recipe, data, *, given, overwrite, resume, previous, command, image_size,
                      runtime, training_options, extra):
    """Every input is checked: replaces an earlier run (its own files only), writes config.json,
    split.csv and skipped.csv, and records them in the manifest.

    Returns:
        `(folder, config)`: the `RunFolder` and the config written.
    """
    import keras

    from kerasdl._util.files import write_json
    from kerasdl._util.run_folder import RUN_FORMAT, RUN_MARKER_KEY, RunFolder
    from kerasdl.data.scan import write_skipped_csv, write_split_csv
    from kerasdl.data.types import count_left_out

    if overwrite and not resume and RunFolder(run_dir).holds_run():
        replace_run(run_dir)
    folder = RunFolder(run_dir)
    folder.start()  # the manifest claims the run's names before any is written
    (run_dir / "cache").mkdir(exist_ok=True)  # an on-disk data cache needs it; --overwrite removed it
    now = datetime.datetime.now().isoformat(timespec="seconds")
    config = {
        RUN_MARKER_KEY: RUN_FORMAT,
        "status": "running",
        "command": command or " ".join(sys.argv),
        "recipe": recipe.to_dict(),
        "recipe_as_given": given.to_dict(),  # before auto epochs, a budget or lr_auto: what a resume compares
        "image_size": image_size,
        "seed": recipe.seed,
        "options": {**dataclasses.asdict(runtime), **dataclasses.asdict(training_options),
                    "dtype_policy": keras.config.dtype_policy().name},
        "started": previous.get("started") if resume else now,
        "resumed": previous.get("resumed", []) + [now] if resume else [],
        "environment": environment_info(),
        **extra,
        "data": {
            "source": data.source,
            "class_names": data.class_names,
            "class_counts": data.class_counts(),
            "skipped_files": count_left_out(data.skipped),
            "files": source_files(data.source, recipe).record(),  # what a resume compares
        },
    }
    write_json(config, run_dir / "config.json")
    write_split_csv(data, run_dir / "split.csv")
    if data.skipped:
        write_skipped_csv(data.skipped, run_dir / "skipped.csv")
    folder.record()
    return folder, config


def _trained_model(model, run_dir: Path, make_model, *, runtime, leave_scopes):
    """The model to keep, evaluate and export: float32, outside any distribution scope, saved."""
    from kerasdl.training.engine import save_model
    from kerasdl.training.runtime import float32_copy

    if runtime.distribute == "multi-worker":  # the same on every worker, or they drifted apart
        from kerasdl.training.multi_worker import weights_fingerprint

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


def _evaluate_run(model, data, result, run_dir: Path, *, tta: str, tensorboard: bool, fold: int = 0):
    """Curves, then metrics.json and its pictures (Grad-CAM grids too) on the test split (else val),
    and their logs.

    Returns:
        `(metrics, predictions)`: `predictions` maps the evaluated split to
        the model's `(labels, probabilities)` there (with `tta`), and, for a
        fold of a k-fold run (`fold` above 0), `"val"` to those of its
        validation fold too; the export's parity check reuses plain ones.
    """
    from kerasdl.data.types import count_left_out
    from kerasdl.evaluation.evaluate import write_evaluation
    from kerasdl.evaluation.explain import write_cam_grids
    from kerasdl.evaluation.plots import plot_learning_curves
    from kerasdl.inference.batches import batch_predictor, collect_predictions
    from kerasdl.inference.predict import with_tta

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
        from kerasdl.evaluation.tensorboard import write_evaluation_summaries

        write_evaluation_summaries(run_dir / "logs" / "evaluation", run_dir, metrics,
                                   step=max(len(result.history) - 1, 0))
    predictions = {split: (labels, probabilities)}
    if fold and split != "val":  # the out-of-fold predictions of a k-fold run
        predictions["val"] = collect_predictions(with_tta(batch_predictor(model), tta), data.val)
    return metrics, predictions


def _complete_run(run_dir: Path, folder, config: dict[str, Any], result, *, seconds: float,
                  export_error) -> None:
    """Marks the run complete in config.json, drops caches and checkpoints, writes report.md."""
    from kerasdl._util.files import write_json
    from kerasdl.evaluation.report import write_report

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
    import copy

    from kerasdl.app.lr_find import recipe_learning_rate
    from kerasdl.errors import RecipeError

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
        from kerasdl.data.types import describe_skipped

        logger.info(" ".join(describe_skipped(data.skipped)) + " Every row is listed in skipped.csv.")

