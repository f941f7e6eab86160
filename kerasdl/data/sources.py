"""Label-file (`csv:`) and TensorFlow Datasets (`tfds:`) image sources.

Both list `(path, class name)` pairs per split, like a class-folder tree, so
one scan, split and tf.data pipeline serves every source (see
`kerasdl.data.load_labelled_files`). Rows a label file cannot use (missing
file, empty cell, duplicate, unknown label) are returned as `SkippedFile`s
with the reason, never dropped silently.
"""


from __future__ import annotations

import codecs
import csv
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

from kerasdl.data.types import SkippedFile
from kerasdl.errors import DataError

CSV_PREFIX = "csv:"
TFDS_PREFIX = "tfds:"
PATH_COLUMN_NAMES = ("path", "filepath", "file_path", "image_path", "img_path", "filename",
                     "file_name", "file", "image", "img", "img_name", "image_name", "image_id",
                     "id", "name")
LABEL_COLUMN_NAMES = ("label", "labels", "class", "class_name", "classname", "target", "category",
                      "y", "species", "breed")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
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
        if not _is_file(path):
            raise DataError(
                f"Expected a label file (CSV or TSV) for csv:. Received: {path}, which "
                f"{'is a folder' if os.path.isdir(path) else 'does not exist'}. Check the path."
            )
    if len(files) == 1:
        files = {"all": files["train"]}
    return files


def read_label_text(path: Path, *, encoding: str | None = None) -> str:
    """Reads a label file as text: UTF-8 (with or without a BOM), else `encoding`.

    Args:
        path: The label file.
        encoding: The encoding to fall back to when the file is not UTF-8
            (`data.encoding`, e.g. `"latin-1"`). Defaults to `None` (UTF-8
            only). A UTF-16 file with its BOM is read as UTF-16.

    Returns:
        The text.

    Raises:
        DataError: for a binary file (a NUL byte), or one that decodes in
            neither encoding, naming the byte offset.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(
            f"Expected a readable label file. Received: {path} ({error.strerror}). Check its permissions."
        ) from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as error:
            raise DataError(
                f"Expected a label file in UTF-16 after its UTF-16 mark. Received: {path}, with bytes "
                f"that are not UTF-16 at byte offset {error.start}. Save it as UTF-8."
            ) from None
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataError(
            f"Expected a text label file (CSV or TSV) for csv:. Received: {path}, binary data (a NUL "
            f"byte at byte offset {nul}). Pass the label file, not an image or an archive."
        )
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as error:
        offset, byte = bom + error.start, data[bom + error.start]
    if encoding is None:
        raise DataError(
            f"Expected a UTF-8 label file. Received: {path}, with byte 0x{byte:02x} at byte offset "
            f"{offset}, which is not UTF-8. Save it as UTF-8, or name its encoding: "
            "data.encoding='latin-1' (or cp1252, ...)."
        )
    try:
        return data[bom:].decode(encoding)
    except LookupError:
        raise DataError(
            f"Expected a text encoding Python knows for data.encoding, e.g. latin-1 or cp1252. "
            f"Received: {encoding!r}."
        ) from None
    except UnicodeDecodeError as error:
        raise DataError(
            f"Expected a label file in UTF-8 or in data.encoding={encoding}. Received: {path}, with "
            f"byte 0x{byte:02x} at byte offset {offset} (not UTF-8) and byte "
            f"0x{data[bom + error.start]:02x} at byte offset {bom + error.start} (not {encoding}). "
            "Save it as UTF-8, or set its real encoding."
        ) from None


def _is_file(path: Path) -> bool:
    """`path.is_file()`, false for a name the system cannot even look up (too long, ...)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _read_rows(path: Path, encoding: str | None = None) -> tuple[list[str] | None, list[list[str]]]:
    text = read_label_text(path, encoding=encoding)
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataError(f"Expected rows of image path and label in {path}. Received: an empty file.")
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines[:50]), delimiters=",\t;| ")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = "\t" if "\t" in lines[0] else ","
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        rows = [[cell.strip() for cell in row] for row in reader]
    except csv.Error as error:
        raise DataError(
            f"Expected rows of image path and label in {path}. Received: {error} at row "
            f"{reader.line_num}. Check that it is a CSV or TSV label file."
        ) from None
    if not rows or not any(rows):
        raise DataError(f"Expected rows of image path and label in {path}. Received: no cells.")
    first = [cell.lower() for cell in rows[0]]
    if any(cell in PATH_COLUMN_NAMES + LABEL_COLUMN_NAMES for cell in first):
        has_header = True
    elif any(cell.endswith(IMAGE_SUFFIXES) or _is_file(path.parent / cell) for cell in first):
        has_header = False
    else:
        try:
            has_header = csv.Sniffer().has_header("\n".join(lines[:50]))
        except csv.Error:
            has_header = True
    return (rows[0], rows[1:]) if has_header else (None, rows)


def _looks_like_paths(rows: list[list[str]], column: int, folder: Path) -> int:
    cells = [row[column] for row in rows[:20] if column < len(row)]
    return sum(cell.lower().endswith(IMAGE_SUFFIXES) or _is_file(folder / cell) for cell in cells)


def _pick_column(header, rows, wanted, known_names, what, path, *, avoid=None) -> int:
    if header is None:
        if wanted is not None and not str(wanted).isdigit():
            raise DataError(
                f"Expected a header row naming column {wanted!r} in {path}. Received: a file "
                f"without a header. Give the column by number, e.g. data.{what}_column=0."
            )
        return int(wanted) if wanted is not None else (0 if what == "path" else 1)
    lowered = [cell.lower() for cell in header]
    if wanted is not None:
        if str(wanted).isdigit() and int(wanted) < len(header):
            return int(wanted)
        if str(wanted).lower() in lowered:
            return lowered.index(str(wanted).lower())
        raise DataError(
            f"Expected a column {wanted!r} in {path}. Received: columns {', '.join(header)}. "
            f"Set data.{what}_column to one of them."
        )
    for name in known_names:
        if name in lowered and lowered.index(name) != avoid:
            return lowered.index(name)
    others = [i for i in range(len(header)) if i != avoid]
    if what == "path":  # the column whose values name image files
        scores = {i: _looks_like_paths(rows, i, path.parent) for i in others}
        best = max(scores, key=scores.get)
        if scores[best]:
            return best
    elif len(header) == 2:
        return others[0]
    raise DataError(
        f"Expected {'an image-path' if what == 'path' else 'a label'} column in {path} named one of "
        f"{', '.join(known_names[:6])}, .... "
        f"Received: columns {', '.join(header)}. Set data.{what}_column=NAME."
    )


def _resolve(folder: Path, cell: str, stems: dict[Path, dict[str, str]]) -> Path | None:
    try:
        path = Path(cell).expanduser()
    except RuntimeError:  # "~someone" with no such user
        return None
    path = path if path.is_absolute() else folder / path
    if _is_file(path):
        return path
    try:
        folder_exists = path.parent.is_dir()
    except (OSError, ValueError):
        folder_exists = False
    if path.suffix.lower() not in IMAGE_SUFFIXES and folder_exists:
        # Competition files often give ids without the extension ("img_0001").
        if path.parent not in stems:
            stems[path.parent] = {}
            try:
                entries = sorted(os.scandir(path.parent), key=lambda e: e.name)
            except OSError:
                entries = []
            for entry in entries:
                if entry.is_file():
                    stems[path.parent].setdefault(Path(entry.name).stem, entry.path)
        found = stems[path.parent].get(path.name)
        return Path(found) if found else None
    return None


def read_label_file(
    path: Path, *, path_column: str | None = None, label_column: str | None = None,
    known_labels: list[str] | None = None, encoding: str | None = None,
) -> tuple[list[tuple[str, str]], list[SkippedFile]]:
    """Reads `(image path, label)` rows of a CSV or TSV label file.

    The delimiter and header are detected; paths are relative to the label
    file's folder and may omit the image suffix.

    Args:
        path: The label file.
        path_column: Name or 0-based number of the path column. Defaults to
            `None` (detected).
        label_column: Name or number of the label column. Defaults to `None`
            (detected).
        known_labels: Labels allowed (those of the training file); other
            labels are skipped. Defaults to `None` (any label).
        encoding: Text encoding to fall back to when the file is not UTF-8
            (see `read_label_text`). Defaults to `None`.

    Returns:
        `(rows, skipped)`; a row skipped is reported with its line number.

    Raises:
        DataError: for an empty, binary or undecodable file, or columns
            that cannot be found.
    """
    header, rows = _read_rows(path, encoding)
    path_index = _pick_column(header, rows, path_column, PATH_COLUMN_NAMES, "path", path)
    label_index = _pick_column(header, rows, label_column, LABEL_COLUMN_NAMES, "label", path,
                               avoid=path_index)
    folder = path.parent
    first_line = 2 if header is not None else 1
    stems: dict[Path, dict[str, str]] = {}
    seen: dict[str, tuple[int, str]] = {}
    kept: dict[str, str] = {}
    skipped: list[SkippedFile] = []
    for line, row in enumerate(rows, start=first_line):
        where = f"{path.name} line {line}"
        cells = row + [""] * (max(path_index, label_index) + 1 - len(row))
        image_cell, label = cells[path_index], cells[label_index]
        if not image_cell:
            skipped.append(SkippedFile(f"{path}:{line}", f"empty path cell ({where})"))
            continue
        image = _resolve(folder, image_cell, stems)
        if image is None:
            skipped.append(SkippedFile(str(folder / image_cell), f"file not found ({where})"))
            continue
        key = str(image)
        if not label:
            skipped.append(SkippedFile(key, f"empty label ({where})"))
            continue
        if known_labels is not None and label not in known_labels:
            skipped.append(SkippedFile(key, f"label {label!r} not in the training labels ({where})"))
            continue
        if key in seen:
            first, first_label = seen[key]
            if first_label == label:
                skipped.append(SkippedFile(key, f"duplicate of line {first} ({where})", kind="duplicate"))
            else:
                reason = f"conflicting labels {first_label!r} (line {first}) and {label!r} ({where})"
                if kept.pop(key, None) is not None:  # the first row goes too, and is reported
                    skipped.append(SkippedFile(key, f"{reason}; line {first} left out", kind="conflict"))
                skipped.append(SkippedFile(key, reason, kind="conflict"))
            continue
        seen[key] = (line, label)
        kept[key] = label
    return list(kept.items()), skipped


def sort_labels(labels) -> list[str]:
    """Sorts labels numerically when all are integers ("2" before "10")."""
    labels = set(labels)
    if all(re.fullmatch(r"-?\d+", label) for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


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

