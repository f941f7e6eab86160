"""Backbones: one spec record per network, and what builds and loads it.

`registry` holds the records (name, constructor, size, preprocessing,
options, weight source); `imagenet_files` describes where ImageNet files
come from (Keras's file names, URLs and hashes); `build` builds a backbone
without its classifier, with its weights. `classic` builds the course's
networks from Keras layers, `compound` computes EfficientNet's compound
scaling, `efficientnet_lite` builds EfficientNet-Lite0/1/2 and
`efficientnet_lite_weights` converts their PyTorch weights. `weights` finds,
downloads, imports and checks ImageNet weight files, `loading` loads a
local weights file into a network, and `download` keeps Keras's downloads
from hanging offline. Names load lazily, so listing backbones needs no
TensorFlow.
"""

from kerasdl._util.lazy import lazy_api

_API = {
    "BACKBONES": "kerasdl.backbones.registry",
    "BackboneSpec": "kerasdl.backbones.registry",
    "default_image_size": "kerasdl.backbones.registry",
    "get_backbone": "kerasdl.backbones.registry",
    "register_backbone": "kerasdl.backbones.registry",
    "CompoundScaling": "kerasdl.backbones.compound",
    "compound_scaling": "kerasdl.backbones.compound",
    "alexnet": "kerasdl.backbones.classic",
    "efficientnet_compound": "kerasdl.backbones.classic",
    "resnet18": "kerasdl.backbones.classic",
    "resnet34": "kerasdl.backbones.classic",
    "EfficientNetLite0": "kerasdl.backbones.efficientnet_lite",
    "EfficientNetLite1": "kerasdl.backbones.efficientnet_lite",
    "EfficientNetLite2": "kerasdl.backbones.efficientnet_lite",
    "WeightSource": "kerasdl.backbones.imagenet_files",
    "WeightFile": "kerasdl.backbones.weights",
    "build_backbone": "kerasdl.backbones.build",
    "fetch_weights": "kerasdl.backbones.weights",
    "import_weights": "kerasdl.backbones.weights",
    "verify_cache": "kerasdl.backbones.weights",
    "weight_file": "kerasdl.backbones.weights",
    "weight_files": "kerasdl.backbones.weights",
    "keras_cache_dir": "kerasdl._util.paths",
}
__all__ = sorted(_API)
__getattr__, __dir__ = lazy_api(__name__, _API, globals(),
                                ("build", "classic", "compound", "download", "efficientnet_lite",
                                 "efficientnet_lite_weights", "imagenet_files", "loading", "registry",
                                 "weights"))
