"""The backbone registry: pretrained feature extractors by the name users type.

Each entry knows how to build the network without its ImageNet classifier
(Keras Applications, `include_top=False`), the image size it was trained at,
how its inputs must be scaled, and which width options Keras offers for it.

Built-in constructors are named, not imported (`"keras.applications:ResNet50"`),
and resolved on first use, so listing recipes and backbones needs no TensorFlow.
"""


from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kerasdl._util.registry import register
from kerasdl.backbones.compound import EFFICIENTNET_BASE_SIZE, compound_resolution
from kerasdl.errors import RecipeError

if TYPE_CHECKING:
    import keras

# How a backbone expects raw [0, 255] RGB pixels to be scaled, as in
# `keras.applications.imagenet_utils.preprocess_input`:
#   "tf":    x / 127.5 - 1
#   "torch": (x / 255 - ImageNet mean) / ImageNet std
#   "caffe": RGB -> BGR, then minus the ImageNet mean (in BGR order)
#   "lite":  (x - 127) / 128, as EfficientNet-Lite was trained
#   "none":  the network scales its inputs itself
PREPROCESSING_MODES = ("tf", "torch", "caffe", "lite", "none")


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """What kerasdl knows about one backbone.

    Attributes:
        name: The name users type, e.g. `"resnet50"`.
        constructor: Builds the network; takes Keras Applications arguments
            (`include_top`, `weights`, `input_shape`, plus `options`).
        default_size: The square image size the ImageNet weights were trained
            at.
        preprocessing: One of `PREPROCESSING_MODES`.
        options: Extra keyword arguments the constructor accepts (for example
            `("alpha",)`), settable as `backbone.<option>` in a recipe.
        min_size: The smallest image size the architecture accepts.
        family: A short family name shown in listings.
        imagenet_weights: Whether `weights="imagenet"` is available; False
            for networks kerasdl builds itself (AlexNet, ResNet18/34, ...).
        size_for_options: Gives the default image size from the options,
            for networks whose resolution is an option (EfficientNet's
            compound scaling); `None` uses `default_size`.
    """

    name: str
    constructor: Callable[..., keras.Model]
    default_size: int
    preprocessing: str
    options: tuple[str, ...] = ()
    min_size: int = 32
    family: str = ""
    imagenet_weights: bool = True
    size_for_options: Callable[[dict[str, Any]], int] | None = None


BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(
    name: str,
    *,
    default_size: int,
    preprocessing: str,
    options: tuple[str, ...] = (),
    min_size: int = 32,
    family: str = "",
    imagenet_weights: bool = True,
    size_for_options: Callable[[dict[str, Any]], int] | None = None,
) -> Callable[[Callable[..., keras.Model]], Callable[..., keras.Model]]:
    """Registers a backbone constructor under `name` (a decorator).

    Args:
        name: The name users type.
        default_size: The image size of the pretrained weights.
        preprocessing: One of `PREPROCESSING_MODES`.
        options: Extra constructor keyword arguments users may set.
            Defaults to `()`.
        min_size: The smallest accepted image size. Defaults to `32`.
        family: A family name for listings. Defaults to `""`.
        imagenet_weights: Whether `weights="imagenet"` can be had.
            Defaults to `True`.
        size_for_options: Default image size from the options, where it
            depends on them. Defaults to `None` (always `default_size`).

    Returns:
        The decorator, which returns the constructor unchanged.

    Example:
    ```python
    @register_backbone("tiny", default_size=32, preprocessing="tf")
    def tiny(*, include_top, weights, input_shape):
        ...
    ```
    """
    if preprocessing not in PREPROCESSING_MODES:
        raise ValueError(f"Unknown preprocessing {preprocessing!r}.")

    def decorator(constructor):
        register(BACKBONES, "backbone", name, BackboneSpec(
            name=name,
            constructor=constructor,
            default_size=default_size,
            preprocessing=preprocessing,
            options=tuple(options),
            min_size=min_size,
            family=family or name,
            imagenet_weights=imagenet_weights,
            size_for_options=size_for_options,
        ))
        return constructor

    return decorator


def lazy_constructor(reference: str) -> Callable[..., keras.Model]:
    """A constructor that imports `"module:attribute"` when first called.

    Args:
        reference: Where the real constructor lives, e.g.
            `"keras.applications:ResNet50"`.

    Returns:
        A function taking the real constructor's arguments.
    """
    module_name, attribute = reference.split(":")

    def build(**kwargs):
        return getattr(importlib.import_module(module_name), attribute)(**kwargs)

    build.__name__ = build.__qualname__ = attribute
    build.reference = reference
    return build


def _register_application(name, reference, **kwargs):
    register_backbone(name, **kwargs)(lazy_constructor(reference))


_APPS = "keras.applications:"
for _name, _ctor in [("resnet50", "ResNet50"), ("resnet101", "ResNet101"), ("resnet152", "ResNet152")]:
    _register_application(_name, _APPS + _ctor, default_size=224, preprocessing="caffe", family="resnet")
for _name, _ctor in [("resnet50v2", "ResNet50V2"), ("resnet101v2", "ResNet101V2"), ("resnet152v2", "ResNet152V2")]:
    _register_application(_name, _APPS + _ctor, default_size=224, preprocessing="tf", family="resnetv2")
_register_application(
    "mobilenet", _APPS + "MobileNet", default_size=224, preprocessing="tf",
    options=("alpha", "depth_multiplier"), family="mobilenet",
)
_register_application(
    "mobilenetv2", _APPS + "MobileNetV2", default_size=224, preprocessing="tf",
    options=("alpha",), family="mobilenetv2",
)
for _name, _ctor in [("mobilenetv3small", "MobileNetV3Small"), ("mobilenetv3large", "MobileNetV3Large")]:
    _register_application(
        _name, _APPS + _ctor, default_size=224, preprocessing="none",
        options=("alpha", "minimalistic"), family="mobilenetv3",
    )
for _index, _size in enumerate([224, 240, 260, 300, 380, 456, 528, 600]):
    _register_application(
        f"efficientnetb{_index}", f"{_APPS}EfficientNetB{_index}",
        default_size=_size, preprocessing="none", family="efficientnet",
    )
for _suffix, _size in [("b0", 224), ("b1", 240), ("b2", 260), ("b3", 300), ("s", 384)]:
    _register_application(
        f"efficientnetv2{_suffix}", f"{_APPS}EfficientNetV2{_suffix.upper()}",
        default_size=_size, preprocessing="none", family="efficientnetv2",
    )
for _name, _ctor in [("convnext_tiny", "ConvNeXtTiny"), ("convnext_small", "ConvNeXtSmall")]:
    _register_application(_name, _APPS + _ctor, default_size=224, preprocessing="none", family="convnext")
for _name, _ctor in [("densenet121", "DenseNet121"), ("densenet169", "DenseNet169"),
                     ("densenet201", "DenseNet201")]:
    _register_application(_name, _APPS + _ctor, default_size=224, preprocessing="torch", family="densenet")
_register_application("xception", _APPS + "Xception", default_size=299, preprocessing="tf", min_size=71)
_register_application("inceptionv3", _APPS + "InceptionV3", default_size=299, preprocessing="tf", min_size=75)

# Networks kerasdl builds from Keras layers itself: no ImageNet weights in Keras.
_CLASSIC = "kerasdl.backbones.classic:"
_register_application(
    "alexnet", _CLASSIC + "alexnet", default_size=227, preprocessing="torch",
    options=("fc_units", "dropout"), family="alexnet", imagenet_weights=False,
)
for _name in ("resnet18", "resnet34"):
    _register_application(_name, _CLASSIC + _name, default_size=224, preprocessing="torch",
                          family="resnet-basic", imagenet_weights=False)
_register_application(
    "efficientnet_compound", _CLASSIC + "efficientnet_compound", default_size=EFFICIENTNET_BASE_SIZE,
    preprocessing="none", options=("phi",), family="efficientnet", imagenet_weights=False,
    size_for_options=compound_resolution,
)
_register_application(
    "efficientnetlite0", "kerasdl.backbones.efficientnet_lite:EfficientNetLite0", default_size=224,
    preprocessing="lite", family="efficientnet-lite",
)


def get_backbone(name: str) -> BackboneSpec:
    """Looks up a backbone by name.

    Args:
        name: A registered backbone name.

    Returns:
        Its `BackboneSpec`.

    Raises:
        RecipeError: if the name is unknown; the message lists valid names.
    """
    try:
        return BACKBONES[name]
    except KeyError:
        raise RecipeError(
            f"Expected a backbone name from: {', '.join(sorted(BACKBONES))}. "
            f"Received: {name!r}. Run `kerasdl backbones` to see them with their sizes."
        ) from None


def default_image_size(name: str, options: dict[str, Any] | None = None) -> int:
    """Returns a backbone's default image size, given its options.

    Args:
        name: A registered backbone name.
        options: Its options, e.g. `{"phi": 2}`. Defaults to `None`.

    Returns:
        The square size in pixels.

    Raises:
        RecipeError: for an unknown name or (from the backbone) bad options.
    """
    spec = get_backbone(name)
    if spec.size_for_options is None:
        return spec.default_size
    return spec.size_for_options(dict(options or {}))


def check_backbone_options(spec: BackboneSpec, options: dict[str, Any]) -> None:
    """Raises `RecipeError` if `options` holds a key the backbone does not take."""
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        valid = ", ".join(spec.options) or "none"
        raise RecipeError(
            f"Expected backbone options for {spec.name} from: {valid}. "
            f"Received: {', '.join(unknown)}. Remove them or pick another backbone."
        )

