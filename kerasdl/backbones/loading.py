"""Loading a local Keras weights file into a backbone, refusing one that does not fit.

Keras 2 (`.h5`) and Keras 3 (`.weights.h5`) files are told apart by their
content (`hdf5_layout`), whatever their name; `load_weights_file` loads one
and checks that every kernel changed, so a file for another network or
width is refused in one line instead of half-loaded. `build.build_backbone`
uses it for `weights=PATH`; `weights` uses it to check a file before it
enters Keras's cache.
"""


from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasdl.backbones.registry import BackboneSpec
from kerasdl.errors import WeightsError


def error_summary(error: Exception) -> str:
    """An exception as one short line; Keras 3 puts the telling part on line two."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join(lines[:2])[:300] if lines else type(error).__name__


def hdf5_layout(path: str | os.PathLike) -> str:
    """Says how an HDF5 weights file is laid out: `"keras2"` or `"keras3"`.

    Raises:
        WeightsError: if the file is not HDF5 or not a Keras weights file.
    """
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            if "layer_names" in handle.attrs or "model_weights" in handle:
                return "keras2"
            if "layers" in handle or "vars" in handle:
                return "keras3"
            found = ", ".join(list(handle.keys())[:3]) or "nothing"
    except OSError as error:
        reason = "not an HDF5 file" if not looks_like_hdf5(path) else f"unreadable: {error}"
        raise WeightsError(
            f"Expected a Keras weights file (.h5 or .weights.h5). Received: {path}, {reason}. "
            "Pass a weights file saved by Keras (a truncated download must be fetched again)."
        ) from None
    raise WeightsError(
        f"Expected a Keras weights file (.h5 or .weights.h5). Received: {path}, an HDF5 file "
        f"holding {found}. Pass a weights file saved by Keras."
    )


def looks_like_hdf5(path: str | os.PathLike) -> bool:
    """Whether the file starts with HDF5's signature."""
    with open(path, "rb") as stream:
        return stream.read(8) == b"\x89HDF\r\n\x1a\n"


@contextlib.contextmanager
def _named_for_keras(path: str, layout: str) -> Iterator[str]:
    """Yields a path whose suffix makes Keras pick the loader for `layout`.

    Keras chooses its loader by the file name (`.weights.h5` or `.h5`), so a
    Keras 3 file named `x.h5` is given a `.weights.h5` link, and vice versa.
    """
    is_keras3_name = str(path).endswith(".weights.h5")
    if (layout == "keras3") == is_keras3_name:
        yield str(path)
        return
    with tempfile.TemporaryDirectory(prefix="kerasdl_weights_") as folder:
        link = Path(folder) / ("weights.weights.h5" if layout == "keras3" else "weights.h5")
        os.symlink(os.path.abspath(path), link)
        yield str(link)


def _kernels(model: keras.Model) -> dict[str, np.ndarray]:
    return {
        variable.path: np.array(variable)
        for variable in model.weights
        if variable.name in ("kernel", "depthwise_kernel")
    }


def load_weights_file(
    backbone: keras.Model, path: str, *, spec: BackboneSpec, options: dict[str, Any]
) -> str:
    """Loads a local weights file into `backbone`, or raises `WeightsError`.

    Keras 2 (`.h5`) and Keras 3 (`.weights.h5`) files are told apart by their
    content. A file with the ImageNet classifier also loads: Keras 3 files
    load the backbone's part as they are, Keras 2 files by layer name. Every
    convolution and dense kernel must change, so a file that covers only part
    of the backbone is refused rather than silently half-loaded.

    Args:
        backbone: The freshly built backbone (random weights).
        path: A Keras 3 `.weights.h5` or Keras 2 `.h5` weights file.
        spec: The backbone's registry entry, for the error message.
        options: The backbone options, for the error message.

    Returns:
        `"as_is"` if Keras loaded the file as it is, `"by_name"` if only by
        matching layer names (a Keras 2 file with more layers).

    Raises:
        WeightsError: if the file is not a weights file or does not fit.
    """
    described = spec.name + "".join(f" {key}={value}" for key, value in sorted(options.items()))
    layout = hdf5_layout(path)
    before = _kernels(backbone)
    how = "as_is"

    def refuse(reason: str) -> WeightsError:
        return WeightsError(
            f"Expected a weights file for {described}. Received: {path}, which does not load "
            f"({reason}). Pass the file made for this backbone and width (backbone.alpha in a "
            "recipe), or weights='imagenet' or 'none'.",
            argument="weights",
        )

    try:
        with _named_for_keras(path, layout) as loadable, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # partial loads are caught below, by the kernels
            try:
                backbone.load_weights(loadable)
            except ValueError:
                if layout != "keras2":
                    raise
                # A Keras 2 file with the classifier has more layers: match them by name.
                backbone.load_weights(loadable, by_name=True)
                how = "by_name"
    except Exception as error:  # noqa: BLE001 - h5py, Keras and ValueError all occur.
        raise refuse(error_summary(error)) from None
    after = _kernels(backbone)
    unchanged = [name for name, value in before.items() if np.array_equal(value, after[name])]
    if unchanged:
        raise refuse(f"it has no weights for {len(unchanged)} of {len(before)} layers, e.g. {unchanged[0]}")
    return how
