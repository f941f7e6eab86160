"""Keras's backend for this process: chosen before Keras loads, checked to be installed.

Keras reads `KERAS_BACKEND` once, when it is first imported. `select_backend`
sets it (or checks the value the user set) before that happens, and says in
one line which extra of kerasdl installs a backend that is missing. It
imports neither Keras nor a backend, so the CLI still starts without them.
"""


from __future__ import annotations

import importlib.util
import os
import sys

from kerasdl.errors import KerasdlError

__all__ = ["BACKENDS", "active_backend", "select_backend"]

# The backends kerasdl trains on, each with the package it needs and the extra that installs it.
BACKENDS: dict[str, tuple[str, str | None]] = {
    "tensorflow": ("tensorflow", None),  # a core dependency
    "jax": ("jax", "jax"),
    "torch": ("torch", "torch"),
}

# Keras's backends that cannot train, left to Keras (`KERAS_BACKEND=numpy kerasdl predict ...`).
_OTHER_KERAS_BACKENDS = ("numpy", "openvino")


def active_backend() -> str:
    """The backend Keras runs on in this process, or will load with.

    Returns:
        `keras.backend.backend()` once Keras is imported; before that,
        `KERAS_BACKEND`, else `"tensorflow"` (Keras's default).
    """
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        return keras.backend.backend()
    return os.environ.get("KERAS_BACKEND") or "tensorflow"


def select_backend(backend: str | None = None) -> str:
    """Sets `KERAS_BACKEND` for this process (and the processes it starts) before Keras loads.

    Args:
        backend: `"tensorflow"`, `"jax"` or `"torch"`. Defaults to `None`:
            keep `KERAS_BACKEND` as the user set it, only checking that a
            backend it names is installed.

    Returns:
        The backend Keras will run on.

    Raises:
        KerasdlError: for an unknown backend, one whose package is not
            installed (naming the extra that installs it), or when Keras is
            already loaded here with another backend.

    Example:
    ```python
    select_backend("jax")
    import keras  # runs on JAX
    ```
    """
    given = f"backend={backend!r}" if backend else f"KERAS_BACKEND={os.environ.get('KERAS_BACKEND')}"
    name = backend or os.environ.get("KERAS_BACKEND")
    if not name:
        return active_backend()
    if name not in BACKENDS:
        if backend is None and name in _OTHER_KERAS_BACKENDS:  # Keras's, not kerasdl's to check
            return name
        raise KerasdlError(f"Expected backend from: {', '.join(BACKENDS)}. Received: {given}.",
                           argument="backend")
    package, extra = BACKENDS[name]
    if importlib.util.find_spec(package) is None:
        install = f"pip install 'kerasdl[{extra}]'" if extra else "pip install tensorflow"
        raise KerasdlError(
            f"Expected the {name} backend to be installed. Received: {given}, but the {package} "
            f"package is not installed. Run `{install}`.",
            argument="backend" if backend else None,
        )
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend") and keras.backend.backend() != name:
        raise KerasdlError(
            f"Expected to choose the backend before Keras loads. Received: {given}, but Keras is "
            f"loaded here with {keras.backend.backend()}. Set it first, or in a new process.",
            argument="backend" if backend else None,
        )
    os.environ["KERAS_BACKEND"] = name
    return name
