"""Per-epoch checkpoints of a run, and resuming from them.

After every epoch, `<run>/checkpoints/` gets one `.npz` file with every
variable of the model (weights, BatchNorm statistics, the dropout layers'
random-seed state) and of the optimizer (its step count, which is the
learning-rate schedule's position, and its moments), then `state.json`
pointing at it with the phase, the epoch, the best validation metric so far,
the history and how many passes each shuffled dataset has made. Both files
are written to a temporary name and renamed, and `state.json` is written
last, so killing the process at any moment leaves the previous complete
checkpoint. (There is no fsync: it would guard against a power cut, at a
cost every epoch.)

Resuming loads those variables back and fast-forwards the shuffled datasets
by the recorded number of passes, so with the same seed (and
`--deterministic`) the resumed run computes what the uninterrupted run would.
"""


from __future__ import annotations

import dataclasses
import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kerasdl._util.files import write_json
from kerasdl.data.file_list import describe_changes, read_recorded_files
from kerasdl.errors import CheckpointError

CHECKPOINT_FOLDER = "checkpoints"
STATE_FILE = "state.json"
FORMAT_VERSION = 1
logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainingState:
    """Where a run's training stands after an epoch.

    Attributes:
        phase_index: Index into the recipe's phases of the phase to run next
            (or the one in progress).
        epochs_done_in_phase: Epochs of that phase already done.
        epoch: Epochs done over all phases (the next epoch's 0-based number).
        phase_start_epoch: The global epoch at which that phase started.
        best_metric: The best validation metric so far, or `None`.
        best_epoch: The 1-based epoch that reached it.
        history: One dict per epoch done, all phases.
        train_passes_at_phase_start: Passes the training dataset had made
            when the phase started.
        train_passes: Passes the training dataset has made so far.
        feature_passes: Passes the phase's cached-feature dataset has made.
        early_stopping_wait: Epochs without improvement in the phase.
        variables_file: The `.npz` with the model and optimizer variables,
            relative to the checkpoint folder (`None` at a phase boundary
            with no epoch run yet).
        fingerprint: What the run trains (recipe and data), to refuse
            resuming a different run.
    """

    phase_index: int = 0
    epochs_done_in_phase: int = 0
    epoch: int = 0
    phase_start_epoch: int = 0
    best_metric: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    train_passes_at_phase_start: int = 0
    train_passes: int = 0
    feature_passes: int = 0
    early_stopping_wait: int = 0
    variables_file: str | None = None
    fingerprint: dict[str, Any] = dataclasses.field(default_factory=dict)


class PassCountingDataset:
    """A dataset wrapper that counts how many times it has been iterated.

    A `shuffle(..., reshuffle_each_iteration=True)` dataset draws a new order
    for every iterator made from it, so to resume with the same data order the
    number of iterators made so far is recorded and replayed
    (`fast_forward`). Counting happens inside the pipeline, so it also counts
    the iterators Keras makes on its own (for example to build the model).

    Args:
        dataset: The dataset to count passes over.
    """

    def __init__(self, dataset: tf.data.Dataset):
        self.source = dataset
        self.passes = 0

        def count(value):
            self.passes += 1
            return value

        def counted(_):
            return dataset

        started = tf.data.Dataset.range(1).map(
            lambda value: tf.numpy_function(count, [value], tf.int64, stateful=True)
        )
        wrapped = started.interleave(counted, cycle_length=1, num_parallel_calls=None)
        cardinality = int(dataset.cardinality())
        if cardinality >= 0:  # keep the batch count known, so Keras can show progress
            wrapped = wrapped.apply(tf.data.experimental.assert_cardinality(cardinality))
        self.dataset = wrapped

    def fast_forward(self, passes: int) -> None:
        """Makes (and drops) iterators until `passes` passes are recorded."""
        while self.passes < passes:
            iter(self.source)
            self.passes += 1


def checkpoint_dir(run_dir: str | os.PathLike) -> Path:
    """The checkpoint folder of a run folder."""
    return Path(run_dir) / CHECKPOINT_FOLDER


def variable_values(variables) -> list[np.ndarray]:
    """Numpy copies of a list of Keras variables."""
    # `numpy()` also reads a tf.distribute mirrored variable (its first copy).
    return [np.array(variable.numpy()) for variable in variables]


def write_checkpoint(
    folder: str | os.PathLike,
    state: TrainingState,
    *,
    model: keras.Model | None = None,
    optimizer: keras.optimizers.Optimizer | None = None,
    best_weights: list[np.ndarray] | None = None,
) -> Path:
    """Writes a checkpoint atomically; returns the path of `state.json`.

    Args:
        folder: The checkpoint folder (created if needed).
        state: The training state; its `variables_file` is set here when a
            model is given.
        model: The model whose variables to save. Defaults to `None` (keep
            the state's current variables file, e.g. at a phase boundary).
        optimizer: The optimizer whose variables to save. Defaults to `None`.
        best_weights: The best epoch's `model.get_weights()`, saved beside
            (so the checkpoint alone restores the best model too). Defaults
            to `None`.

    Returns:
        The path of `state.json`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if model is not None:
        arrays = {f"model_{i}": v for i, v in enumerate(variable_values(model.variables))}
        if optimizer is not None and optimizer.built:
            arrays.update(
                {f"optimizer_{i}": v for i, v in enumerate(variable_values(optimizer.variables))}
            )
        if best_weights is not None:
            arrays.update({f"best_{i}": np.asarray(v) for i, v in enumerate(best_weights)})
        arrays.update(_random_state())
        name = f"epoch-{state.epoch:04d}.npz"
        temporary = folder / f".{name}.tmp.npz"
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(temporary, folder / name)
        state.variables_file = name
    data = dataclasses.asdict(state)
    data["format_version"] = FORMAT_VERSION
    write_json(data, folder / STATE_FILE)
    for stale in folder.glob("epoch-*.npz"):
        if stale.name != state.variables_file:
            stale.unlink(missing_ok=True)
    return folder / STATE_FILE


def read_checkpoint(folder: str | os.PathLike) -> tuple[TrainingState, dict[str, np.ndarray]]:
    """Reads a checkpoint and its variables, checking that both are whole.

    Args:
        folder: The checkpoint folder.

    Returns:
        `(state, arrays)`; `arrays` is empty when the state has no variables
        file.

    Raises:
        CheckpointError: if the folder has no checkpoint, or a file is
            truncated or unreadable.
    """
    folder = Path(folder)
    path = folder / STATE_FILE
    if not path.is_file():
        raise CheckpointError(
            f"Expected a checkpoint in {folder} ({STATE_FILE}). Received: none. "
            "Resume a run folder that trained at least one epoch, or start a new run."
        )
    fix = "Start a new run with overwrite=True."
    data = _read_json(path, f"checkpoint state in {path}", fix)
    try:
        data.pop("format_version", None)
        state = TrainingState(**data)
    except (AttributeError, TypeError) as error:  # valid JSON, but not a state's fields
        raise _damaged(f"checkpoint state in {path}", error, fix) from None
    arrays: dict[str, np.ndarray] = {}
    if state.variables_file:
        variables_path = folder / state.variables_file
        try:
            with np.load(variables_path) as loaded:
                arrays = {key: loaded[key] for key in loaded.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise CheckpointError(
                f"Expected a complete checkpoint file {variables_path}. Received: a truncated or "
                f"unreadable file ({type(error).__name__}). Start a new run with overwrite=True."
            ) from None
    return state, arrays


def _read_json(path: Path, what: str, fix: str) -> Any:
    """`path`'s JSON contents, or a `CheckpointError` naming `what` and ending in `fix`."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise _damaged(what, error, fix) from None


def _damaged(what: str, error: Exception, fix: str) -> CheckpointError:
    return CheckpointError(f"Expected a readable {what}. Received: a damaged file ({type(error).__name__}). {fix}")


def _assign(variables, values: list[np.ndarray], what: str) -> None:
    if len(variables) != len(values):
        raise CheckpointError(
            f"Expected a checkpoint with {len(variables)} {what} variables. Received: "
            f"{len(values)}. Resume with the same recipe and options, or start a new run."
        )
    for variable, value in zip(variables, values, strict=True):
        if tuple(variable.shape) != tuple(value.shape):
            raise CheckpointError(
                f"Expected {what} variable {variable.path} of shape {tuple(variable.shape)}. "
                f"Received: {tuple(value.shape)}. Resume with the same recipe and options."
            )
        variable.assign(value)


def _ordered(arrays: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    keys = sorted((key for key in arrays if key.startswith(prefix)), key=lambda k: int(k.split("_")[-1]))
    return [arrays[key] for key in keys]


def restore_model(model: keras.Model, arrays: dict[str, np.ndarray]) -> None:
    """Loads a checkpoint's model variables into `model`."""
    _assign(model.variables, _ordered(arrays, "model_"), "model")


def _random_state() -> dict[str, np.ndarray]:
    """The random state `fit` draws from that no model variable holds.

    On PyTorch, Keras's unseeded `Dropout` draws from torch's global
    generator (its fast path), so a resumed run needs that generator's state
    to draw the masks the whole run would have drawn.
    """
    if keras.backend.backend() != "torch":
        return {}
    import torch

    return {"random_torch": torch.get_rng_state().numpy()}


def restore_random_state(arrays: dict[str, np.ndarray]) -> None:
    """Puts back the random state a checkpoint saved (see `_random_state`)."""
    if "random_torch" in arrays and keras.backend.backend() == "torch":
        import torch

        torch.set_rng_state(torch.from_numpy(np.array(arrays["random_torch"])))


def best_weights_of(arrays: dict[str, np.ndarray]) -> list[np.ndarray] | None:
    """The best epoch's weights saved in a checkpoint, or `None`."""
    return _ordered(arrays, "best_") or None


def restore_optimizer(
    optimizer: keras.optimizers.Optimizer, trainable_variables, arrays: dict[str, np.ndarray]
) -> None:
    """Builds `optimizer` for `trainable_variables` and loads its saved state."""
    values = _ordered(arrays, "optimizer_")
    if not values:
        return
    if not optimizer.built:
        optimizer.build(trainable_variables)
    _assign(optimizer.variables, values, "optimizer")


# ------------------------------------------------------ resuming a run folder


def check_resumable(run_dir: str | os.PathLike) -> Path:
    """Checks that a run folder holds an interrupted run with a checkpoint.

    Args:
        run_dir: The folder of the interrupted run (`output_dir` of `run_recipe(resume=True)`).

    Returns:
        The folder as a `Path`.

    Raises:
        CheckpointError: if it is not a run folder, the run is complete, it
            has no (or a damaged) checkpoint, or it cannot be written.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise CheckpointError(
            f"Expected a run folder to resume (with config.json). Received: {run_dir}, which has "
            "none. Give the interrupted run's folder as output_dir."
        )
    config = _read_json(config_path, str(config_path), "Start a new run.")
    if config.get("status") == "complete":
        raise CheckpointError(
            f"Expected an interrupted run to resume. Received: {run_dir}, which is complete. "
            "Start a new run in another folder, or replace this one with overwrite=True (not resume)."
        )
    folds = config.get("folds") if isinstance(config, dict) else None
    if folds:  # a k-fold run keeps its checkpoints in its folds, not at the top
        raise CheckpointError(
            f"Expected the options the run in {run_dir} was started with. Received: no folds, and this run "
            f"is a {folds}-fold run: add folds={folds}.", argument="folds")
    read_checkpoint(checkpoint_dir(run_dir))  # whole and readable, before any costly work
    if not os.access(run_dir, os.W_OK):
        raise CheckpointError(
            f"Expected a writable run folder to resume. Received: {run_dir}, which is not writable. "
            "Fix its permissions."
        )
    return run_dir


def _first_difference(before: Any, now: Any, where: str = "") -> str | None:
    if isinstance(before, dict) and isinstance(now, dict):
        for key in sorted(set(before) | set(now)):
            found = _first_difference(before.get(key), now.get(key), f"{where}.{key}" if where else key)
            if found:
                return found
        return None
    if isinstance(before, list) and isinstance(now, list) and len(before) == len(now):
        for index, (a, b) in enumerate(zip(before, now, strict=True)):
            found = _first_difference(a, b, f"{where}.{index}")
            if found:
                return found
        return None
    return None if before == now else f"{where}: {_as_typed(before)} then, {_as_typed(now)} now"


def _as_typed(value: Any) -> str:
    """A recipe value as `--set` takes it (`x,y`, `0.3`), `not given` for None."""
    if value is None:
        return "not given"
    if isinstance(value, list):
        return ",".join(_as_typed(item) for item in value) or "an empty list"
    return json.dumps(value) if isinstance(value, dict) else str(value)


def check_same_recipe(run_dir: Path, recipe) -> dict[str, Any]:
    """Checks that the recipe is the one the run folder was started with.

    The comparison is with the recipe as it was given (config.json's
    `recipe_as_given`), before the run resolved `epochs="auto"`, a time
    budget or `lr_auto` into numbers; runs from before that key was
    recorded are compared with their `recipe`.

    Returns:
        The run's config.json contents.

    Raises:
        CheckpointError: naming the first recipe field that differs.
    """
    config = json.loads((Path(run_dir) / "config.json").read_text())
    now = json.loads(json.dumps(recipe.to_dict()))
    before = config.get("recipe_as_given", config.get("recipe"))
    if isinstance(before, dict) and isinstance(before.get("data"), dict):
        # data fields added since the run started (encoding, max_image_pixels) had their defaults;
        # fields since removed (fold, now the fold plan's and no setting) say nothing of the recipe
        defaults = json.loads(json.dumps(dataclasses.asdict(type(recipe.data)())))
        before = {**before, "data": {**{key: value for key, value in defaults.items()
                                        if key not in before["data"]},
                                     **{key: value for key, value in before["data"].items() if key in defaults}}}
    if isinstance(before, dict) and isinstance(before.get("export"), list):  # before ExportConfig
        before = {**before, "export": {"formats": before["export"], "folds": "all"}}
    difference = _first_difference(before, now)
    if difference:
        raise CheckpointError(
            f"Expected the recipe the run in {run_dir} was started with. Received: a different one "
            f"({difference}). Resume with the same recipe and options, or start a new run in another folder."
        )
    return config


def check_same_data(config: dict[str, Any], data) -> None:
    """Checks that the data has the classes and split sizes of the run's config.

    Raises:
        CheckpointError: when the classes or the number of images differ.
    """
    before = config.get("data", {})
    now = {"class_names": data.class_names, "class_counts": data.class_counts()}
    difference = _first_difference(
        {key: before.get(key) for key in now}, json.loads(json.dumps(now))
    )
    if difference:
        raise CheckpointError(
            f"Expected the data the run was started with ({before.get('source')}). Received: "
            f"different data ({difference}). Resume with the same data_source, or start a new run in another folder."
        )



def check_same_files(run_dir: str | os.PathLike, config: dict[str, Any], files) -> None:
    """Checks that the source lists the files the run was started with (paths, classes, sizes).

    Args:
        run_dir: The run folder (its split.csv and skipped.csv say which
            files changed).
        config: Its config.json contents, whose `data.files` holds the
            digest recorded when the run started.
        files: The source's `kerasdl.data.file_list.FileList` now.

    Raises:
        CheckpointError: naming what changed, e.g. `3 files added, 1
            changed size (first: ants/a0.jpg)`. A run from before the digest
            was recorded is resumed with a warning instead.
    """
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    recorded = data.get("files")
    if not isinstance(recorded, dict) or "digest" not in recorded:
        logger.warning("Resuming %s without checking that its images are the ones it started with: it was "
                       "started by an older kerasdl, which recorded no list of them.", run_dir)
        return
    if recorded["digest"] == files.digest():
        return
    changed = describe_changes(read_recorded_files(Path(run_dir), recorded.get("root", "")), files) or (
        f"{recorded.get('count')} files then, {len(files.entries)} now, with other names, classes or sizes")
    raise CheckpointError(
        f"Expected the images the run in {run_dir} was started with ({data.get('source')}). Received: "
        f"other files: {changed}. Resume with the data the run started with, or start a new run in another "
        "output_dir.", argument="data_source")
