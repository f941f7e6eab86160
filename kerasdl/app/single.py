"""One run of a recipe: data -> model -> training -> evaluation -> export -> report, in one folder.

`run_single` is the run `kerasdl run` makes without `--folds`, and each fold
of a k-fold run (`kerasdl.app.kfold`), given its split. All inputs are
checked before the run folder is claimed, so bad input never leaves a
half-written folder.
"""


from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import shutil
import tempfile
import time
from pathlib import Path

from kerasdl.app.budget import budget_seconds
from kerasdl.app.claim import claim_run_folder
from kerasdl.app.options import RunOptions
from kerasdl.app.run_parts import RunResult, export_run, source_files
from kerasdl.app.run_steps import (
    check_run_inputs,
    complete_run,
    evaluate_run,
    load_run_data,
    plan_time_budget,
    recipe_to_train,
    trained_model,
)
from kerasdl.data.types import DataSplit
from kerasdl.models.classifier import build_classifier
from kerasdl.training.checkpoints import check_same_data
from kerasdl.training.distribute import distribution_scope, is_chief
from kerasdl.training.engine import TrainOptions, train
from kerasdl.training.multi_worker import (
    check_multi_worker_run,
    peer_failures_reported,
    workers_leave_together,
)
from kerasdl.training.runtime import RuntimeOptions, dtype_policy

logger = logging.getLogger(__name__)


def run_single(recipe, data_source: str, options: RunOptions, *, split: DataSplit | None = None,
               files=None) -> RunResult:
    """Runs a recipe once, end to end, and writes its run folder.

    Args:
        recipe: A `Recipe` (already overridden as wanted).
        data_source: The image source (folder, `sample`, ...).
        options: The `RunOptions`.
        split: The source's files already split (a fold of a k-fold run,
            `kerasdl.data.folds.FoldPlan.split`). Defaults to `None`: the
            source is scanned and split by the recipe's data settings.
        files: The source's `kerasdl.data.file_list.FileList`, when the
            caller listed it already (a k-fold run, once for its folds).
            Defaults to `None`: listed here.

    Returns:
        A `RunResult`; for a fold, its predictions hold its validation fold's too.

    Raises:
        KerasdlError: for bad input, before any training and before the run
            folder is created or an earlier run in it deleted.
        ExportError: when an export fails or is rejected by its parity check;
            raised after the run folder is complete.
    """
    runtime = options.runtime or RuntimeOptions()
    training_options = options.training_options or TrainOptions()
    check_multi_worker_run(runtime.distribute, resume=options.resume, training_options=training_options)
    if runtime.distribute and training_options.feature_cache:
        logger.info("Feature cache off while distributing (the extraction pass is not distributed).")
        training_options = dataclasses.replace(training_options, feature_cache=False)
    options = dataclasses.replace(options, runtime=runtime, training_options=training_options)
    worker_dir = None
    if not is_chief(runtime.distribute):  # the other workers train too, into a scratch folder
        worker_dir = Path(tempfile.mkdtemp(prefix="kerasdl_worker_"))
        options = dataclasses.replace(options, output_dir=worker_dir, overwrite=True, resume=False, export=[])
    try:
        with peer_failures_reported(runtime.distribute), workers_leave_together(runtime.distribute), \
                contextlib.ExitStack() as scopes:
            # `scopes` are left after training (`leave_scopes`)
            scopes.enter_context(dtype_policy(runtime.mixed_precision))
            scopes.enter_context(distribution_scope(runtime.distribute))
            return _run_in_scopes(recipe, data_source, options, split=split, files=files,
                                  leave_scopes=scopes.close)
    finally:
        if worker_dir is not None:
            shutil.rmtree(worker_dir, ignore_errors=True)


def _run_in_scopes(recipe, data_source: str, options: RunOptions, *, split: DataSplit | None, files,
                   leave_scopes) -> RunResult:
    """`run_single` inside its dtype policy and distribution scope, which `leave_scopes()` leaves
    once the model is trained.

    The steps: check every input (recipe, export formats, output folder,
    weights, data), plan the time budget, claim the run folder (only now may
    an earlier run's files go), train, evaluate, export, complete the folder.
    """
    run_started = time.perf_counter()
    budget = budget_seconds(options.time_budget)  # "10m" or seconds; a bad form is refused before any work
    formats, export_options, run_dir, previous, files = check_run_inputs(recipe, data_source, options,
                                                                         files=files)
    image_size, data = load_run_data(recipe, data_source, run_dir, runtime=options.runtime, split=split)
    if options.resume:
        check_same_data(previous, data)
    given = recipe
    recipe, extra, features = recipe_to_train(recipe, data, image_size, previous=previous,
                                              lr_auto=options.lr_auto)
    if split is not None and split.fold:
        extra["fold"] = split.fold
    make_model = functools.partial(
        build_classifier,
        recipe.backbone.name, len(data.class_names), weights=recipe.backbone.weights,
        image_size=image_size, dropout=recipe.head.dropout, hidden_units=recipe.head.hidden_units,
        pooling=recipe.head.pooling,
        activation=recipe.head.activation, backbone_options=recipe.backbone.options,
        trainable=recipe.phases[0].trainable,
    )
    model = make_model()
    training_options = options.training_options
    if budget is not None:
        recipe, extra["time_budget"], deadline = plan_time_budget(
            recipe, data, model, options.time_budget, run_started, exporting=bool(formats),
            feature_cache=training_options.feature_cache, keep_epochs=options.resume,
            fixed_epochs=options.fixed_epochs)
        training_options = dataclasses.replace(training_options, deadline=deadline)
    folder, config = claim_run_folder(
        run_dir, recipe, data, given=given, options=dataclasses.replace(options, training_options=training_options),
        previous=previous, image_size=image_size, extra=extra,
        files=files or source_files(data_source, recipe))

    started = time.perf_counter()
    result = train(model, data, recipe, run_dir=run_dir, verbose=options.verbose, options=training_options,
                   resume=options.resume, features=features)
    folder.record()
    model = trained_model(model, run_dir, make_model, runtime=options.runtime, leave_scopes=leave_scopes)
    metrics, predictions = evaluate_run(model, data, result, run_dir, tta=options.tta,
                                        tensorboard=training_options.tensorboard,
                                        fold=split.fold if split is not None else 0)
    folder.record()
    parity, export_error = export_run(model, data, run_dir, formats, export_options,
                                      image_size=image_size, batch_size=recipe.batch_size,
                                      reference=predictions.get("val") if options.tta == "none" else None)
    complete_run(run_dir, folder, config, result, seconds=time.perf_counter() - started,
                 export_error=export_error)
    if export_error is not None:
        raise export_error
    return RunResult(run_dir=run_dir, metrics=metrics, model=model, parity=parity, predictions=predictions)


__all__ = ["run_single"]
