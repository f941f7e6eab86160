"""A source's list of files (relative path, class, size) and its digest: what a resumed run compares.

A run records `FileList.record()` in its config.json when it starts; a
resume lists the source again (no image is read) and refuses when the
digest differs, saying what changed (`describe_changes`). Paths are taken
relative to the folder that holds them all, so the same images moved to
another folder are the same data.
"""


from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path, PurePath

from kerasdl._util.console import plural


@dataclasses.dataclass
class FileList:
    """The files a source lists, readable or not.

    Attributes:
        root: The folder that holds every file (paths are relative to it).
        entries: `{relative path: (class name, bytes)}`; relative paths use
            `/` on every system.
        left_out: Relative paths of the label rows the source leaves out
            (missing files, bad labels); not part of the digest.
    """

    root: str
    entries: dict[str, tuple[str, int]]
    left_out: set[str] = dataclasses.field(default_factory=set)

    def digest(self) -> str:
        """A SHA-256 of the sorted `path, class, bytes` lines."""
        hashed = hashlib.sha256()
        for path in sorted(self.entries):
            label, size = self.entries[path]
            hashed.update(f"{path}\t{label}\t{size}\n".encode("utf-8", "surrogateescape"))
        return hashed.hexdigest()

    def record(self) -> dict:
        """What config.json keeps: `{"root", "count", "bytes", "digest"}`."""
        return {"root": self.root, "count": len(self.entries),
                "bytes": sum(size for _, size in self.entries.values()), "digest": self.digest()}


def common_root(paths) -> str:
    """The deepest folder that holds all `paths` (`""` for none, or paths on different drives)."""
    folders = {os.path.dirname(os.path.abspath(path)) for path in paths}
    try:
        return os.path.commonpath(sorted(folders)) if folders else ""
    except ValueError:
        return ""


def relative_path(path: str, root: str) -> str:
    """`path` relative to `root`, with `/` (the path itself when it is not under `root`)."""
    try:
        return PurePath(os.path.relpath(os.path.abspath(path), root)).as_posix() if root else path
    except ValueError:
        return path


def list_source_files(source: str | os.PathLike, *, path_column: str | None = None,
                      label_column: str | None = None, encoding: str | None = None,
                      class_names: list[str] | None = None) -> FileList:
    """Lists a source's files with their classes and sizes, reading no image.

    Args:
        source: Any SRC (see `kerasdl.data.load_labelled_files`).
        path_column: Path column of a label file. Defaults to `None`.
        label_column: Label column of a label file. Defaults to `None`.
        encoding: Encoding of label files that are not UTF-8. Defaults to `None`.
        class_names: Names for the source's classes, in label order.
            Defaults to `None` (the labels).

    Returns:
        A `FileList` (files that do not exist, e.g. a label file's missing
        rows, are left out).

    Raises:
        DataError: as `kerasdl.data.load_labelled_files` for a bad source.

    Example:
    ```python
    list_source_files("faces/").record()["count"]
    ```
    """
    from kerasdl.data.load import list_labelled_source

    named, labels, listed, skipped = list_labelled_source(
        source, path_column=path_column, label_column=label_column, encoding=encoding,
        class_names=class_names)
    name_of = dict(zip(labels, named, strict=True))
    sizes = {}
    for entries in listed.values():
        for path, label in entries:
            try:
                sizes[path] = (name_of[label], os.path.getsize(path))
            except OSError:
                continue
    root = common_root(sizes)
    return FileList(root=root, entries={relative_path(path, root): entry for path, entry in sizes.items()},
                    left_out={relative_path(item.path, root) for item in skipped})


def describe_changes(before: dict[str, tuple[str | None, int | None]], now: FileList) -> str:
    """What changed between a recorded file list and `now`, in a few words.

    Args:
        before: `{relative path: (class name or None, bytes or None)}` as
            the run recorded them (`None` where it did not).
        now: The file list now.

    Returns:
        E.g. `"3 files added, 2 removed, 1 changed size (first: ants/a0.jpg)"`,
        or `""` when no difference can be named.
    """
    added = sorted(set(now.entries) - set(before))
    removed = sorted(set(before) - set(now.entries) - now.left_out)
    resized, relabelled = [], []
    for path in sorted(set(before) & set(now.entries)):
        (label, size), (label_now, size_now) = before[path], now.entries[path]
        if size is not None and size != size_now:
            resized.append(path)
        if label is not None and label != label_now:
            relabelled.append(path)
    parts = [(added, "added"), (removed, "removed"), (resized, "changed size"), (relabelled, "changed class")]
    named = [(paths, what) for paths, what in parts if paths]
    if not named:
        return ""
    words = [plural(len(named[0][0]), "file") + f" {named[0][1]}"]
    words += [f"{len(paths)} {what}" for paths, what in named[1:]]
    return ", ".join(words) + f" (first: {named[0][0][0]})"


def read_recorded_files(run_dir: Path, root: str) -> dict[str, tuple[str | None, int | None]]:
    """The file list a run folder's split.csv and skipped.csv record, relative to `root`.

    split.csv gives each readable file's class (and, since runs recorded
    it, size); skipped.csv the files left out, whose class and size it does
    not say.
    """
    import csv

    files: dict[str, tuple[str | None, int | None]] = {}
    for name, has_class in (("skipped.csv", False), ("split.csv", True)):
        try:
            with open(Path(run_dir) / name, newline="", encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    size = row.get("bytes")
                    files[relative_path(row["path"], root)] = (
                        row.get("label") if has_class else None,
                        int(size) if has_class and size and size.isdigit() else None)
        except (OSError, KeyError, ValueError):
            continue
    return files


__all__ = ["FileList", "describe_changes", "list_source_files", "read_recorded_files"]
