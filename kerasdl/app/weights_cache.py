"""Keras's cache of pretrained backbone files: list, fetch, import, verify (`kerasdl weights`)."""


from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kerasdl._util.paths import file_hash
from kerasdl.backbones.weights import (
    CachedFileCheck,
    WeightFile,
    fetch_weights,
    import_weights,
    verify_cache,
    weight_files,
)


@dataclasses.dataclass(frozen=True)
class ListedWeights:
    """One backbone weights file and its state in the cache.

    Attributes:
        entry: The `WeightFile` (backbone, options, origin, expected hash).
        megabytes: The cached file's size in MB; `None` when not cached.
        sha256: The cached file's SHA-256; `None` when not cached.
    """

    entry: WeightFile
    megabytes: float | None
    sha256: str | None


def list_weights(backbones: list[str] | None = None, *, all_sizes: bool = False) -> Iterator[ListedWeights]:
    """Each backbone's ImageNet file, cached or not, one at a time (hashing a file takes a while).

    Args:
        backbones: Backbone names. Defaults to `None` (all).
        all_sizes: Also MobileNet files for smaller resolutions. Defaults to `False`.

    Yields:
        One `ListedWeights` per file.

    Raises:
        WeightsError: for an unknown backbone name.
    """
    for entry in weight_files(backbones, all_sizes=all_sizes):
        cached = entry.path.is_file()
        yield ListedWeights(entry=entry, megabytes=entry.path.stat().st_size / 1e6 if cached else None,
                            sha256=file_hash(entry.path) if cached else None)


def fetch_backbone_weights(backbone: str, *, options: dict[str, Any] | None = None,
                           image_size: int | None = None) -> Path:
    """Downloads a backbone's ImageNet file into Keras's cache (see `fetch_weights`).

    Args:
        backbone: A backbone name.
        options: Backbone options, e.g. `{"alpha": 0.35}`. Defaults to `None`.
        image_size: The resolution, where Keras has one file per size. Defaults to `None`.

    Returns:
        The cached file.
    """
    return fetch_weights(backbone, options=options, image_size=image_size)


def import_backbone_weights(backbone: str, path: str | os.PathLike, *, options: dict[str, Any] | None = None,
                            image_size: int | None = None) -> Path:
    """Checks that a local file loads into a backbone, then caches it (see `import_weights`).

    Args:
        backbone: A backbone name.
        path: The weights file.
        options: Backbone options. Defaults to `None`.
        image_size: The resolution, where Keras has one file per size. Defaults to `None`.

    Returns:
        The cached file.
    """
    return import_weights(backbone, path, options=options, image_size=image_size)


def verify_weights_cache() -> list[CachedFileCheck]:
    """Checks every file of Keras's cache: it loads, and matches its hash.

    Returns:
        One `CachedFileCheck` per cached file, sorted by name.
    """
    return verify_cache()
