"""What a finished run folder holds, in a few facts (the end of `kerasdl run`)."""


from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

# The files a user ships or loads again; labels, metadata and checks are beside them.
MODEL_SUFFIXES = (".keras", ".tflite", ".onnx")


@dataclasses.dataclass
class RunSummary:
    """The facts a user wants at the end of a run.

    Attributes:
        run_dir: The run folder.
        monitor: The validation metric that picked the best epoch.
        best_metric: Its best value, or `None` if it never had one.
        best_epoch: The (1-based) epoch that reached it.
        report: `report.md`, or `None` if it was not written.
        files: `(path relative to the run folder, bytes, is a folder)` of
            each model file: `model.keras` and the exported ones.
        tensorboard: The TensorBoard log folder, or `None` if there is none.
    """

    run_dir: Path
    monitor: str | None = None
    best_metric: float | None = None
    best_epoch: int | None = None
    report: Path | None = None
    files: list[tuple[str, int, bool]] = dataclasses.field(default_factory=list)
    tensorboard: Path | None = None


def folder_size(path: str | os.PathLike) -> int:
    """Bytes of a file, or of every file under a folder."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def summarize_run(run_dir: str | os.PathLike) -> RunSummary:
    """Reads a run folder's config.json and lists its model files.

    Args:
        run_dir: A run folder written by `run_recipe`.

    Returns:
        A `RunSummary` (fields left empty where the folder lacks them).

    Example:
    ```python
    summary = summarize_run("runs/quickstart")
    print(summary.monitor, summary.best_metric, summary.files)
    ```
    """
    run_dir = Path(run_dir)
    summary = RunSummary(run_dir=run_dir)
    config_file = run_dir / "config.json"
    if config_file.is_file():
        training = json.loads(config_file.read_text()).get("training", {})
        summary.monitor = training.get("monitor")
        summary.best_metric = training.get("best_metric")
        summary.best_epoch = training.get("best_epoch")
    if (run_dir / "report.md").is_file():
        summary.report = run_dir / "report.md"
    candidates = [run_dir / "model.keras"]
    export = run_dir / "export"
    if export.is_dir():
        candidates += sorted(p for p in export.iterdir()
                             if p.suffix in MODEL_SUFFIXES or (p / "saved_model.pb").is_file())
    for path in candidates:
        if path.exists():
            summary.files.append((str(path.relative_to(run_dir)), folder_size(path), path.is_dir()))
    if (run_dir / "logs").is_dir():
        summary.tensorboard = run_dir / "logs"
    return summary
