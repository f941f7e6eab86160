"""Claiming a run folder once every input is checked: an earlier run's files go, the manifest
claims the run's names, and config.json, split.csv and skipped.csv are written; for a k-fold
run, the check that its folder is new or the interrupted run to resume."""


from __future__ import annotations

import csv
import dataclasses
import datetime
import logging
import sys
from pathlib import Path

import keras
import numpy as np

from kerasdl._util.files import atomic_path, write_json
from kerasdl._util.run_folder import (
    RUN_FILES,
    RUN_FOLDERS,
    RUN_FORMAT,
    RUN_MARKER_KEY,
    RunFolder,
    check_apart_from_data,
    read_json_object,
)
from kerasdl.app.options import RunOptions
from kerasdl.app.run_parts import environment_info, prepare_run_dir, replace_run
from kerasdl.data.folds import FoldPlan
from kerasdl.data.scan import file_size, write_skipped_csv, write_split_csv
from kerasdl.data.sources import source_folders
from kerasdl.data.types import count_left_out
from kerasdl.errors import CheckpointError
from kerasdl.training.checkpoints import check_same_files, check_same_recipe

logger = logging.getLogger(__name__)

# A k-fold run's folder holds, besides a run's files, its folds' runs and the out-of-fold predictions.
FOLDS_FOLDER = "folds"
OOF_FILE = "oof_predictions.csv"


def claim_run_folder(run_dir: Path, recipe, data, *, given, options: RunOptions, previous, image_size: int,
                     extra: dict, files):
    """Replaces an earlier run (its own files only), writes config.json, split.csv and
    skipped.csv, and records them in the manifest.

    Args:
        run_dir: The checked run folder.
        recipe: The recipe as trained (auto values resolved).
        data: The run's `ImageData`.
        given: The recipe as given, which a resume compares.
        options: The run's `RunOptions` (their `training_options` and
            `runtime` set), recorded in config.json.
        previous: The interrupted run's config.json when resuming, else `None`.
        image_size: The input size.
        extra: More config.json entries (`lr_find`, `head_pooling`,
            `time_budget`, `fold`).

    Returns:
        `(folder, config)`: the `RunFolder` and the config written.
    """
    resume = options.resume
    if options.overwrite and not resume and RunFolder(run_dir).holds_run():
        replace_run(run_dir)
    folder = RunFolder(run_dir)
    folder.start()  # the manifest claims the run's names before any is written
    (run_dir / "cache").mkdir(exist_ok=True)  # an on-disk data cache needs it; --overwrite removed it
    now = datetime.datetime.now().isoformat(timespec="seconds")
    config = {
        RUN_MARKER_KEY: RUN_FORMAT,
        "status": "running",
        "command": options.command or " ".join(sys.argv),
        "recipe": recipe.to_dict(),
        "recipe_as_given": given.to_dict(),  # before auto epochs, a budget or lr_auto: what a resume compares
        "image_size": image_size,
        "seed": recipe.seed,
        "options": {**dataclasses.asdict(options.runtime), **dataclasses.asdict(options.training_options),
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
            "files": files.record(),  # what a resume compares
        },
    }
    write_json(config, run_dir / "config.json")
    write_split_csv(data, run_dir / "split.csv")
    if data.skipped:
        write_skipped_csv(data.skipped, run_dir / "skipped.csv")
    folder.record()
    return folder, config


def check_fold_folder(run_dir: Path, recipe, data_source: str, files, *, overwrite: bool, resume: bool):
    """A new (or replaceable) folder, or with `resume` an unfinished k-fold run of the same recipe.

    Returns:
        The unfinished run's config.json when resuming, else `None`.
    """
    if not resume:
        prepare_run_dir(run_dir, overwrite=overwrite, data_source=data_source)
        return None
    config = read_json_object(run_dir / "config.json")
    if config is not None and not config.get("folds") and (run_dir / "checkpoints").is_dir():
        raise CheckpointError(
            f"Expected the options the run in {run_dir} was started with. Received: folds="
            f"{recipe.data.folds}, and this run is a single run: resume it without folds.", argument="folds")
    if config is None or not config.get("folds"):
        raise CheckpointError(
            f"Expected the folder of an interrupted k-fold run to resume. Received: {run_dir}, which "
            "holds none. Give the k-fold run's folder as output_dir.", argument="output_dir")
    if config.get("status") == "complete":
        raise CheckpointError(
            f"Expected an interrupted run to resume. Received: {run_dir}, which is complete. "
            "Start a new run in another folder, or replace this one with overwrite=True (not resume).")
    check_apart_from_data(run_dir, source_folders(data_source), data_source=data_source)
    config = check_same_recipe(run_dir, recipe)
    check_same_files(run_dir, config, files)  # before the scan rewrites anything
    return config


def claim_fold_folder(run_dir: Path, recipe, plan: FoldPlan, data_source: str, files, *, overwrite: bool,
                      previous, command: str):
    """Replaces an earlier run (its own files only), writes config.json and split.csv."""
    if overwrite and previous is None and RunFolder(run_dir).holds_run():
        replace_run(run_dir)
    folder = RunFolder(run_dir)
    folder.start(claim=RUN_FILES + RUN_FOLDERS + (FOLDS_FOLDER, OOF_FILE))
    now = datetime.datetime.now().isoformat(timespec="seconds")
    counts = {f"fold_{k}": _class_counts(plan.pool.subset(np.flatnonzero(plan.numbers == k)), plan.class_names)
              for k in range(1, recipe.data.folds + 1)}
    if plan.test is not None:
        counts["test"] = _class_counts(plan.test, plan.class_names)
    config = {
        RUN_MARKER_KEY: RUN_FORMAT, "status": "running", "command": command or " ".join(sys.argv),
        "recipe": recipe.to_dict(), "recipe_as_given": recipe.to_dict(), "folds": recipe.data.folds,
        "seed": recipe.seed,
        "started": previous.get("started") if previous else now,
        "resumed": previous.get("resumed", []) + [now] if previous else [],
        "environment": environment_info(),
        "data": {"source": data_source, "class_names": plan.class_names, "class_counts": counts,
                 "skipped_files": count_left_out(plan.skipped),
                 "files": files.record()},
    }
    write_json(config, run_dir / "config.json")
    _write_fold_split(run_dir / "split.csv", plan)
    if plan.skipped:  # with split.csv, the files a resume compares
        write_skipped_csv(plan.skipped, run_dir / "skipped.csv")
    folder.record()
    for split, per_class in counts.items():
        logger.info(f"{split:>6}: " + ", ".join(f"{name} {count}" for name, count in per_class.items()))
    return folder, config


def _class_counts(files, class_names: list[str]) -> dict[str, int]:
    return dict(zip(class_names, files.class_counts(len(class_names)), strict=True))


def _write_fold_split(path: Path, plan: FoldPlan) -> None:
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["split", "path", "label", "bytes"])
        for number, file_path, label in zip(plan.numbers, plan.pool.paths, plan.pool.labels, strict=True):
            writer.writerow([f"fold_{number}", file_path, plan.class_names[label], file_size(file_path)])
        if plan.test is not None:
            for file_path, label in zip(plan.test.paths, plan.test.labels, strict=True):
                writer.writerow(["test", file_path, plan.class_names[label], file_size(file_path)])


__all__ = ["FOLDS_FOLDER", "OOF_FILE", "check_fold_folder", "claim_fold_folder", "claim_run_folder"]
