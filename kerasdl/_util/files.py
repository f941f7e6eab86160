"""Atomic file writes and JSON that understands numpy values."""


from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside `path`, renamed into place if the block succeeds.

    Readers never see a half-written file: they find the old one or the new
    one. If the block raises, the temporary file (or folder) is removed and
    `path` is untouched. The temporary name keeps the suffix, so writers
    that pick a format from it (matplotlib's `savefig`) still do.

    Example:
    ```python
    with atomic_path("report.md") as temporary:
        temporary.write_text(text)
    ```
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)


def write_text_atomically(text: str, path: str | os.PathLike) -> None:
    """Writes text so that readers see the old file or the new one, never a part."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def write_json(data: dict[str, Any], path: str | os.PathLike) -> None:
    """Writes JSON atomically (temporary file, then rename); numpy values become numbers."""
    write_text_atomically(json.dumps(data, indent=2, default=_json_default) + "\n", path)


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Not JSON serializable: {type(value).__name__}")


def write_bytes_atomically(data: bytes, path: Path) -> None:
    """Writes `data` to `path` under a temporary name, then renames it."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)

