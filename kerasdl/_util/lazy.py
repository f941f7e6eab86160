"""Lazy package APIs (PEP 562): names import their module on first use.

A package `__init__` that imported every submodule would load TensorFlow for
`kerasdl --help`; with `lazy_api`, `kerasdl.build_classifier` imports
`kerasdl.models.classifier` only when first looked up.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_api(package: str, names: dict[str, str], namespace: dict[str, Any],
             submodules: tuple[str, ...] = ()) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Returns the `__getattr__` and `__dir__` of a package whose names load lazily.

    Args:
        package: The package's `__name__`.
        names: Public name -> the module that defines it.
        namespace: The package's `globals()`, where a looked-up name is kept.
        submodules: Submodule names reachable as attributes. Defaults to `()`.

    Returns:
        `(__getattr__, __dir__)` for the package's module namespace.

    Example:
    ```python
    __getattr__, __dir__ = lazy_api(__name__, {"train": "kerasdl.training.engine"}, globals())
    ```
    """

    def __getattr__(name: str):
        if name in names:
            value = getattr(importlib.import_module(names[name]), name)
            namespace[name] = value  # later look-ups skip this function
            return value
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(names) | set(submodules) | {k for k in namespace if not k.startswith("_")})

    return __getattr__, __dir__
