"""A finished run's report rebuilt, and several runs side by side (`kerasdl report`, `compare`)."""


from __future__ import annotations

import os
from pathlib import Path

from kerasdl.evaluation.report import format_comparison, write_report


def rebuild_report(run_dir: str | os.PathLike) -> Path:
    """Writes `run_dir/report.md` again from the run's files.

    Args:
        run_dir: A run folder.

    Returns:
        The report's path.

    Raises:
        RunFolderError: when `run_dir` is not a kerasdl run.
    """
    return write_report(run_dir)


def runs_side_by_side(run_dirs: list[str | os.PathLike]) -> str:
    """The settings and metrics of several runs as one text table.

    Args:
        run_dirs: Run folders, one column each.

    Returns:
        The table, with a legend of the folders.

    Raises:
        RunFolderError: when a folder is not a kerasdl run.
    """
    return format_comparison(list(run_dirs))
