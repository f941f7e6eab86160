"""Reading one label file (CSV or TSV) of image paths and class labels, for `csv:` sources.

The columns are found by name or by what their cells look like, the text by
its encoding, and each path relative to the file's folder (with or without
its image suffix); rows that cannot be used come back as `SkippedFile`s with
the reason. `kerasdl.data.sources` lists a whole `csv:` source with them.
"""


from __future__ import annotations

import codecs
import csv
import os
import re
from pathlib import Path

from kerasdl.data.types import SkippedFile
from kerasdl.errors import DataError

PATH_COLUMN_NAMES = ("path", "filepath", "file_path", "image_path", "img_path", "filename",
                     "file_name", "file", "image", "img", "img_name", "image_name", "image_id",
                     "id", "name")
LABEL_COLUMN_NAMES = ("label", "labels", "class", "class_name", "classname", "target", "category",
                      "y", "species", "breed")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


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


def is_file(path: Path) -> bool:
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
    elif any(cell.endswith(IMAGE_SUFFIXES) or is_file(path.parent / cell) for cell in first):
        has_header = False
    else:
        try:
            has_header = csv.Sniffer().has_header("\n".join(lines[:50]))
        except csv.Error:
            has_header = True
    return (rows[0], rows[1:]) if has_header else (None, rows)


def _looks_like_paths(rows: list[list[str]], column: int, folder: Path) -> int:
    cells = [row[column] for row in rows[:20] if column < len(row)]
    return sum(cell.lower().endswith(IMAGE_SUFFIXES) or is_file(folder / cell) for cell in cells)


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
    if is_file(path):
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
