"""Backbones: one spec record per network, the classic course networks, EfficientNet-Lite, weights.

Importing this package registers every built-in backbone (`classic` registers
alexnet, resnet18/34 and efficientnet-compound when imported)."""

from kerasdl._util.paths import keras_cache_dir
from kerasdl.backbones.classic import (
    CompoundScaling,
    alexnet,
    compound_scaling,
    efficientnet_compound,
    resnet18,
    resnet34,
)
from kerasdl.backbones.efficientnet_lite import EfficientNetLite0
from kerasdl.backbones.registry import (
    BACKBONES,
    BackboneSpec,
    default_image_size,
    get_backbone,
    register_backbone,
)
from kerasdl.backbones.weights import (
    WeightFile,
    build_backbone,
    fetch_weights,
    import_weights,
    verify_cache,
    weight_file,
    weight_files,
)

__all__ = [
    "BACKBONES",
    "BackboneSpec",
    "CompoundScaling",
    "EfficientNetLite0",
    "WeightFile",
    "alexnet",
    "build_backbone",
    "compound_scaling",
    "default_image_size",
    "efficientnet_compound",
    "fetch_weights",
    "get_backbone",
    "import_weights",
    "keras_cache_dir",
    "register_backbone",
    "resnet18",
    "resnet34",
    "verify_cache",
    "weight_file",
    "weight_files",
]
