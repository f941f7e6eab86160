"""The `.keras` file to export: loaded, or refused quickly when kerasdl cannot rebuild its layers."""


from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from kerasdl.errors import ModelFileError
from kerasdl.inference.predict import load_model_file

__all__ = ["find_custom_layers", "load_model_for_export"]


def find_custom_layers(path: str | os.PathLike) -> list[str]:
    """Names of the layers of a `.keras` file that are not Keras built-ins.

    Reads the file's architecture (`config.json` inside the zip) without
    loading it, so a model kerasdl cannot rebuild is refused quickly.

    Args:
        path: A `.keras` file.

    Returns:
        The custom class names (their registered names when they have one),
        sorted; empty for a model made of Keras layers only.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, OSError, ValueError):
        return []  # not a .keras archive: loading reports it
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            module = node.get("module", "keras")
            if isinstance(node.get("class_name"), str) and not str(module).startswith("keras"):
                found.add(node.get("registered_name") or node["class_name"])
            for key, value in node.items():
                if key != "compile_config":
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return sorted(found)


def load_model_for_export(path: str | os.PathLike):
    """Loads a `.keras` file to export; refuses custom layers in one line.

    Args:
        path: The `.keras` file.

    Returns:
        The `keras.Model`.

    Raises:
        ModelFileError: if the file is missing, not a `.keras` model, or uses
            layers that are not part of Keras.
    """
    path = Path(path)
    if path.is_file():
        custom = find_custom_layers(path)
        if custom:
            raise ModelFileError(
                f"Expected a model made of built-in Keras layers. Received: {path} with custom "
                f"layers {', '.join(custom)}, which kerasdl cannot rebuild. Export it from Python "
                "(kerasdl.export_model) where those layers are imported."
            )
    loaded = load_model_file(path)
    if loaded.keras_model is None:
        raise ModelFileError(
            f"Expected a .keras model to export. Received: {path} ({loaded.kind}). "
            "Pass the model.keras of a run."
        )
    return loaded.keras_model
