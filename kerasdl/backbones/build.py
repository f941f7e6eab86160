"""Building a registered backbone without its classifier, with its weights.

`build_backbone` is the one builder every model goes through: it looks the
name up in the registry (`registry.get_backbone`), checks the options and
the weights source (`weights.normalize_weights`, `weights.check_weights_available`),
and builds the network with `weights="imagenet"` from Keras's cache (its
file named by `weights.weight_file`), from a local file
(`loading.load_weights_file`), or with random weights.
"""


from __future__ import annotations

import os
import warnings
from typing import Any

import keras

from kerasdl.backbones.download import download_timeout, is_fetch_failure
from kerasdl.backbones.loading import error_summary, load_weights_file
from kerasdl.backbones.registry import BackboneSpec, check_backbone_options, get_backbone
from kerasdl.backbones.weights import (
    UnknownWeightFile,
    check_cached_file,
    check_weights_available,
    normalize_weights,
    not_downloadable,
    weight_file,
)
from kerasdl.errors import WeightsError


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
        return _build_with_imagenet_weights(spec, input_shape, options)
    backbone = spec.constructor(include_top=False, weights=None, input_shape=input_shape, **options)
    if source is not None:
        load_weights_file(backbone, source, spec=spec, options=options)
    return backbone


def _build_with_imagenet_weights(spec: BackboneSpec, input_shape, options) -> keras.Model:
    try:
        entry = weight_file(spec.name, options=options, image_size=input_shape[0])
        check_cached_file(entry)
    except UnknownWeightFile:
        entry = None
    try:
        with download_timeout(), warnings.catch_warnings():
            # MobileNet warns when it falls back to its 224 px file; the table says so.
            warnings.filterwarnings("ignore", message=".*Weights for input shape.*")
            return spec.constructor(include_top=False, weights="imagenet", input_shape=input_shape, **options)
    except WeightsError:
        raise
    except Exception as error:  # noqa: BLE001 - Keras raises a bare Exception when a fetch fails.
        if is_fetch_failure(error) and entry is not None:
            raise not_downloadable(entry) from None
        if entry is not None and entry.path.is_file():
            raise WeightsError(
                f"Expected the cached {entry.path} to load into {entry.describe()}. Received: "
                f"{error_summary(error)}. Run `kerasdl weights verify`, "
                f"then `kerasdl weights fetch {entry.backbone}` or `{entry.import_command()}`."
            ) from None
        if is_fetch_failure(error):
            raise WeightsError(
                f"Expected to download ImageNet weights for {spec.name}. Received: no connection "
                f"({str(error)[:200]}). Pass weights='none' or a local file path.",
                argument="weights",
            ) from None
        raise
