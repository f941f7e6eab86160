"""Label-file (`csv:`) and TensorFlow Datasets (`tfds:`) image sources.

Both list `(path, class name)` pairs per split, like a class-folder tree, so
one scan, split and tf.data pipeline serves every source (see
`kerasdl.data.load_labelled_files`). Rows a label file cannot use (missing
file, empty cell, duplicate, unknown label) are returned as `SkippedFile`s
with the reason, never dropped silently; reading one label file is
`kerasdl.data.label_files`.
"""


from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

from kerasdl.data.label_files import is_file, read_label_file, sort_labels
from kerasdl.data.types import SkippedFile
from kerasdl.errors import DataError

CSV_PREFIX = "csv:"
TFDS_PREFIX = "tfds:"
# `csv:train.txt,val=val.txt,test=test.txt`: label files of the splits.
_EXTRA_FILE = re.compile(r",(?=(?:val|valid|validation|test)=)")
_SPLIT_KEYS = {"val": "val", "valid": "val", "validation": "val", "test": "test"}
# A host every TFDS download and metadata fetch starts from; unreachable means offline.
TFDS_HOST = "storage.googleapis.com"


Listing = tuple[list[str], dict[str, list[tuple[str, str]]], list[SkippedFile]]


# --------------------------------------------------------------------- csv


def parse_csv_source(source: str) -> dict[str, Path]:
    """Parses `csv:FILE[,val=FILE][,test=FILE]` into `{split: label file}`.

    Args:
        source: The source string.

    Returns:
        `{"all": file}` (split later by fraction) or `{"train": ...,
        "val": ..., "test": ...}` when extra files are given.

    Raises:
        DataError: for a missing label file, or a split given twice.

    Example:
    ```python
    parse_csv_source("csv:data/train.txt,val=data/val.txt")
    ```
    """
    # Splitting at a lookahead keeps the pieces whole: "a.csv", "val=b.csv", ...
    pieces = _EXTRA_FILE.split(source[len(CSV_PREFIX):])
    files: dict[str, Path] = {}
    for index, piece in enumerate(pieces):
        key, path = ("train", piece) if index == 0 else piece.split("=", 1)
        split = _SPLIT_KEYS.get(key, key)
        if split in files:
            raise DataError(f"Expected one label file per split in {source!r}. Received: {key} twice.")
        files[split] = Path(path).expanduser()
    for path in files.values():
        if not is_file(path):
            raise DataError(
                f"Expected a label file (CSV or TSV) for csv:. Received: {path}, which "
                f"{'is a folder' if os.path.isdir(path) else 'does not exist'}. Check the path."
            )
    if len(files) == 1:
        files = {"all": files["train"]}
    return files


def list_csv_source(
    source: str, *, path_column: str | None = None, label_column: str | None = None,
    encoding: str | None = None,
) -> Listing:
    """Lists a `csv:FILE[,val=FILE][,test=FILE]` source.

    Args:
        source: The source string.
        path_column: Path column name or number. Defaults to `None` (detected).
        label_column: Label column name or number. Defaults to `None` (detected).
        encoding: Encoding of label files that are not UTF-8. Defaults to
            `None`.

    Returns:
        `(class_names, {split: [(path, class name)]}, skipped rows)`; the
        classes are the labels of the first (training) file.

    Raises:
        DataError: for a missing or malformed label file.
    """
    label_files = parse_csv_source(source)
    first_split = next(iter(label_files))
    rows, skipped = read_label_file(label_files[first_split], path_column=path_column,
                                    label_column=label_column, encoding=encoding)
    class_names = sort_labels(label for _, label in rows)
    listed = {first_split: rows}
    for split, path in list(label_files.items())[1:]:
        listed[split], more = read_label_file(path, path_column=path_column, label_column=label_column,
                                              known_labels=class_names, encoding=encoding)
        skipped += more
    if not class_names:
        raise DataError(
            f"Expected rows of image path and label in {label_files[first_split]}. Received: no "
            f"usable row ({len(skipped)} skipped, e.g. {skipped[0].reason if skipped else 'none'})."
        )
    return class_names, listed, skipped


def source_folders(source: str) -> list[Path]:
    """The folders that hold a source's data, which no output may overlap.

    Args:
        source: Any SRC (a folder, `sample`, `csv:...`, `tfds:...`).

    Returns:
        The class-folder tree; for `csv:`, the folder of each label file;
        for `sample` and `tfds:`, their folders in the kerasdl cache.

    Raises:
        DataError: for a malformed `csv:` source or a missing label file.
    """
    from kerasdl._util.paths import kerasdl_home
    from kerasdl.data.scan import sample_data_path

    source = str(source)
    if source.startswith(CSV_PREFIX):
        return sorted({path.parent for path in parse_csv_source(source).values()})
    if source.startswith(TFDS_PREFIX):
        return [kerasdl_home() / "tfds"]
    if source == "sample":
        return [sample_data_path()]
    return [Path(source).expanduser()]


# -------------------------------------------------------------------- tfds


def parse_tfds_source(source: str) -> tuple[str, str | None]:
    """Parses `tfds:NAME[:SPLIT]` into `(name, split or None)`."""
    name, _, split = source[len(TFDS_PREFIX):].partition(":")
    if not name:
        raise DataError(f"Expected tfds:NAME[:SPLIT], e.g. tfds:beans. Received: {source!r}.")
    return name, split or None


def _online(host: str = TFDS_HOST) -> bool:
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


def _prepared_builder(name: str):
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name)
    except tfds.core.registered.DatasetNotFoundError:
        raise DataError(
            f"Expected a TensorFlow Datasets name, e.g. tfds:beans. Received: {name!r}, which "
            "TFDS does not know. See tfds.list_builders() for the names."
        ) from None
    if builder.is_prepared():
        return builder
    if not _online():
        raise DataError(
            f"Expected TFDS data set {name!r} prepared in {builder.data_dir}, or a network to "
            f"download it. Received: not prepared, and {TFDS_HOST} is unreachable. Run "
            f"`tfds build {name}` where online and copy it into TFDS_DATA_DIR."
        )
    try:
        builder.download_and_prepare()
    except Exception as error:  # noqa: BLE001 - TFDS raises many kinds; report one line.
        first_line = (str(error).splitlines() or [type(error).__name__])[0][:200]
        raise DataError(
            f"Expected TFDS to download and prepare {name!r}. Received: {type(error).__name__}: "
            f"{first_line}. Check the network, or run `tfds build {name}` and retry."
        ) from None
    return builder


def _image_and_label_keys(builder) -> tuple[str, str]:
    import tensorflow_datasets as tfds

    features = builder.info.features
    keys = builder.info.supervised_keys
    if keys and len(keys) == 2 and all(isinstance(k, str) for k in keys):
        image_key, label_key = keys
    else:
        image_key = next((k for k, f in features.items() if isinstance(f, tfds.features.Image)), None)
        label_key = next((k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)),
                         None)
    if (image_key is None or label_key is None
            or not isinstance(features[image_key], tfds.features.Image)
            or not isinstance(features[label_key], tfds.features.ClassLabel)):
        raise DataError(
            f"Expected an image-classification TFDS data set (an Image and a ClassLabel feature). "
            f"Received: {builder.name} with features {', '.join(features)}. Pick another data set."
        )
    return image_key, label_key


def _tfds_splits(builder, split: str | None) -> dict[str, str]:
    if split:
        return {"all": split}
    names = list(builder.info.splits) or ["train"]
    ours = {"train": "train", "validation": "val", "val": "val", "test": "test"}
    mapped = {ours[name]: name for name in names if name in ours}
    if "train" not in mapped:
        raise DataError(
            f"Expected a 'train' split in TFDS data set {builder.name}. Received: splits "
            f"{', '.join(names)}. Pass one as tfds:{builder.name}:SPLIT."
        )
    if len(mapped) == 1:
        return {"all": "train"}
    return mapped


def _image_suffix(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return ".png"
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    return ".img"  # decoded by content all the same


def _export_tfds_split(builder, split: str, image_key: str, label_key: str, target: Path) -> None:
    """Writes a TFDS split's encoded images, as stored, to `target/<label>/<n>.<ext>`."""
    import tensorflow_datasets as tfds

    dataset = builder.as_dataset(split=split, decoders={image_key: tfds.decode.SkipDecoding()})
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging_", dir=target.parent))
    try:
        for index, example in enumerate(tfds.as_numpy(dataset)):
            data, label = example[image_key], int(example[label_key])
            folder = staging / str(label)
            folder.mkdir(exist_ok=True)
            (folder / f"{index:07d}{_image_suffix(data)}").write_bytes(data)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def list_tfds_source(source: str, *, cache_root: Path) -> Listing:
    """Lists a `tfds:NAME[:SPLIT]` source as image files.

    The encoded images of each split are written once, as TFDS stores them,
    under `cache_root/tfds/NAME/VERSION/SPLIT/<label index>/`, so they go
    through the same scan, split record and pipeline as any folder.

    Args:
        source: `tfds:NAME` (its train/validation/test splits) or
            `tfds:NAME:SPLIT` (one split, e.g. `train[:50%]`, divided by
            fraction).
        cache_root: The kerasdl cache folder.

    Returns:
        `(class_names, {split: [(path, class name)]}, [])`; class names in
        TFDS's label order.

    Raises:
        DataError: for an unknown name, a data set that is not image
            classification, or one neither prepared nor downloadable.
    """
    name, split = parse_tfds_source(source)
    builder = _prepared_builder(name)
    image_key, label_key = _image_and_label_keys(builder)
    class_names = list(builder.info.features[label_key].names)
    version_root = cache_root / "tfds" / builder.name / str(builder.info.version)
    listed: dict[str, list[tuple[str, str]]] = {}
    for ours, theirs in _tfds_splits(builder, split).items():
        target = version_root / re.sub(r"[^A-Za-z0-9_.%-]+", "_", theirs)
        if not target.is_dir():
            _export_tfds_split(builder, theirs, image_key, label_key, target)
        listed[ours] = [
            (str(path), class_names[int(path.parent.name)])
            for path in sorted(target.glob("*/*"))
        ]
    return class_names, listed, []

