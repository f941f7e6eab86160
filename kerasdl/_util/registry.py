"""The one way kerasdl's registries (backbones, activations, augmentations) add entries."""

from __future__ import annotations

import warnings
from typing import Any


def register(registry: dict[str, Any], kind: str, name: str, value: Any) -> None:
    """Adds `value` under `name`; replacing a different entry warns.

    Registering the same thing twice (a module imported again, a test's
    fixture) is silent; replacing a built-in by something else is allowed,
    since users may mean it, but said once in a warning.

    Args:
        registry: The module-level dict.
        kind: What the entries are, for the warning (`"backbone"`).
        name: The name users type.
        value: The entry.
    """
    if name in registry and registry[name] != value:
        warnings.warn(f"Replacing the {kind} {name!r} that was already registered.", stacklevel=3)
    registry[name] = value
