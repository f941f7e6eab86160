"""Where pretrained weights come from, and building a backbone with them.

A weights source is one of:
- `"imagenet"`: Keras's own download, cached under `$KERAS_HOME/models`
  (`~/.keras/models` by default);
- `"none"` (or `None`): random initialisation;
- a path to a local weights file (Keras 3 `.weights.h5` or Keras 2 `.h5`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import keras

from kerasdl.backbones import BackboneSpec, check_backbone_options, get_backbone
from kerasdl.errors import WeightsError

_URL_IN_MESSAGE = re.compile(r"(https?://\S+?)(?::\s|\s|$)")


def normalize_weights(weights: str | os.PathLike | None) -> str | None:
    """Returns `"imagenet"`, `None`, or the path of a local weights file.

    Args:
        weights: `"imagenet"`, `"none"`, `None`, or a file path.

    Returns:
        The normalized source.

    Raises:
        WeightsError: if a path is given and no such file exists.
    """
    if weights is None or str(weights).lower() in ("none", ""):
        return None
    if str(weights).lower() == "imagenet":
        return "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsError(
            "Expected --weights to be imagenet, none, or an existing weights file. "
            f"Received: {weights} (no such file). Check the path."
        )
    return str(path)


def keras_cache_dir() -> Path:
    """Returns the folder where Keras caches downloaded weights."""
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return Path(keras_home) / "models"


def build_backbone(
    name: str,
    *,
    image_size: int,
    weights: str | os.PathLike | None = "imagenet",
    options: dict[str, Any] | None = None,
) -> keras.Model:
    """Builds a registered backbone without its classifier, with its weights.

    Args:
        name: A registered backbone name, e.g. `"mobilenetv2"`.
        image_size: Square input size in pixels.
        weights: `"imagenet"`, `"none"`/`None`, or a local file path.
            Defaults to `"imagenet"`.
        options: Backbone options such as `{"alpha": 0.35}`. Defaults to `None`.

    Returns:
        A `keras.Model` mapping preprocessed images to a feature map.

    Raises:
        RecipeError: for an unknown backbone or option, or a too-small size.
        WeightsError: if the weights cannot be fetched or do not fit.

    Example:
    ```python
    base = build_backbone("mobilenetv2", image_size=160, weights=None)
    ```
    """
    spec = get_backbone(name)
    options = dict(options or {})
    check_backbone_options(spec, options)
    source = normalize_weights(weights)
    check_weights_available(spec, source)
    input_shape = (image_size, image_size, 3)
    if source == "imagenet":
        return _build_with_keras_download(spec, input_shape, options)
    backbone = spec.constructor(include_top=False, weights=None, input_shape=input_shape, **options)
    if source is not None:
        load_weights_file(backbone, source, spec=spec, options=options)
    return backbone


def check_weights_available(spec: BackboneSpec, weights: str | os.PathLike | None) -> None:
    """Raises `WeightsError` if `weights` is imagenet and there are none for `spec`.

    Args:
        spec: The backbone's registry entry.
        weights: A weights source as `normalize_weights` takes it.

    Raises:
        WeightsError: for `"imagenet"` on a backbone kerasdl builds itself.
    """
    if str(weights).lower() == "imagenet" and not spec.imagenet_weights:
        raise WeightsError(
            f"Expected --weights none or a local weights file for {spec.name}. Received: imagenet, "
            f"but Keras has no ImageNet weights for {spec.name}. Train it from scratch with "
            "--weights none, or pass --weights FILE."
        )


def _build_with_keras_download(spec: BackboneSpec, input_shape, options) -> keras.Model:
    try:
        return spec.constructor(include_top=False, weights="imagenet", input_shape=input_shape, **options)
    except ValueError:
        raise
    except Exception as error:  # Keras raises a bare Exception when a fetch fails.
        message = str(error)
        if "URL fetch failure" not in message and "fetch" not in message.lower():
            raise
        match = _URL_IN_MESSAGE.search(message)
        url = match.group(1) if match else "the ImageNet weights file"
        file_name = url.rsplit("/", 1)[-1]
        raise WeightsError(
            f"Expected to download ImageNet weights for {spec.name} from {url}. "
            f"Received: no connection. Copy {file_name} to {keras_cache_dir()}, "
            f"or pass --weights /path/to/{file_name} (or --weights none)."
        ) from None


def load_weights_file(
    backbone: keras.Model, path: str, *, spec: BackboneSpec, options: dict[str, Any]
) -> None:
    """Loads a local weights file into `backbone`, or raises `WeightsError`.

    Args:
        backbone: The freshly built backbone.
        path: A Keras 3 `.weights.h5` or Keras 2 `.h5` weights file.
        spec: The backbone's registry entry, for the error message.
        options: The backbone options, for the error message.

    Raises:
        WeightsError: if the file is not a weights file or does not fit.
    """
    described = spec.name + "".join(f" {key}={value}" for key, value in sorted(options.items()))
    try:
        backbone.load_weights(path)
    except Exception as error:  # noqa: BLE001 - h5py, Keras and ValueError all occur.
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise WeightsError(
            f"Expected a weights file for {described} (no top). "
            f"Received: {path}, which does not load ({reason}). "
            "Pass the file made for this backbone and width, or --weights imagenet/none."
        ) from None
