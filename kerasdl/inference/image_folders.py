"""The folders of the images a command reads, which none of its outputs may overlap.

`kerasdl predict` and `kerasdl explain` take image files, folders and
`@list.txt` files; what they write must stay out of those folders (and out
of the class-folder tree a class folder belongs to), as `kerasdl run` keeps
its run folder out of `--data`.
"""


from __future__ import annotations

import os
from pathlib import Path

_SPLIT_FOLDERS = frozenset({"train", "training", "val", "valid", "validation", "test", "testing"})


def _holds_images(folder: str | os.PathLike) -> bool:
    """Whether image files (by their names) lie directly in `folder`."""
    from kerasdl.data.label_files import IMAGE_SUFFIXES

    try:
        with os.scandir(folder) as entries:
            return any(entry.name.lower().endswith(IMAGE_SUFFIXES) for entry in entries)
    except OSError:
        return False


def _holds_image_folders(folder: Path) -> bool:
    """Whether `folder` is a class-folder tree: two or more sub-folders with images in them."""
    try:
        with os.scandir(folder) as entries:
            subfolders = [entry.path for entry in entries if entry.is_dir() and not entry.name.startswith(".")]
    except OSError:
        return False
    return sum(1 for sub in subfolders if _holds_images(sub)) >= 2


def input_folders(sources: list[str | os.PathLike]) -> list[Path]:
    """The folders holding the images a command was given, which no output may overlap.

    A folder given counts, and so does the folder of each image file given
    (or listed in `@list.txt`).

    Args:
        sources: Folders, image files, or `@list.txt` files, as given.

    Returns:
        The folders, without repeats.
    """
    holding: list[Path] = []
    for source in sources:
        text = str(source)
        if text.startswith("@"):
            list_file = Path(text[1:])
            lines = list_file.read_text().splitlines() if list_file.is_file() else []
            holding += [(list_file.parent / line.strip()).parent for line in lines if line.strip()]
        else:
            holding.append(Path(text) if Path(text).is_dir() else Path(text).parent)
    return list(dict.fromkeys(holding))


def class_trees(folders: list[Path]) -> list[Path]:
    """The class-folder trees that image folders belong to.

    A folder holding images whose parent holds two or more such folders
    (`data/ants/` beside `data/bees/`) is one class of the tree `data/`;
    above a `train/`, `val/` or `test/` split, the split's parent counts
    too. A new folder there would be taken for a class by the next run.

    Args:
        folders: Folders holding images (`input_folders`).

    Returns:
        The trees, without repeats.
    """
    trees: dict[Path, None] = {}
    for folder in folders:
        parent = folder.resolve().parent
        if parent != folder.resolve() and _holds_images(folder) and _holds_image_folders(parent):
            trees[parent] = None
            if parent.name.lower() in _SPLIT_FOLDERS:
                trees[parent.parent] = None
    return list(trees)
