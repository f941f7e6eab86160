"""Claiming a run folder once every input is checked: an earlier run's files go, the manifest
claims the run's names, and config.json, split.csv and skipped.csv are written."""


from __future__ import annotations

import dataclasses
import datetime
import sys
from pathlib import Path

import keras

from kerasdl._util.files import write_json
from kerasdl._util.run_folder import RUN_FORMAT, RUN_MARKER_KEY, RunFolder
from kerasdl.app.options import RunOptions
from kerasdl.app.run_parts import environment_info, replace_run, source_files
from kerasdl.data.scan import write_skipped_csv, write_split_csv
from kerasdl.data.types import count_left_out


def claim_run_folder(run_dir: Path, recipe, data, *, given, options: RunOptions, previous, image_size: int,
                     extra: dict):
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
            "files": source_files(data.source, recipe).record(),  # what a resume compares
        },
    }
    write_json(config, run_dir / "config.json")
    write_split_csv(data, run_dir / "split.csv")
    if data.skipped:
        write_skipped_csv(data.skipped, run_dir / "skipped.csv")
    folder.record()
    return folder, config


__all__ = ["claim_run_folder"]
