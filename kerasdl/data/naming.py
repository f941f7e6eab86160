"""Class names for numbered classes, and the cheap checks of a source before any costly work.

A competition's label file names its classes 0 and 1. `class_names`
(the recipe field `data.class_names`) gives them names in label order, the
order kerasdl lists classes in (class folders by name; a label file's labels
sorted, numbers numerically: 0, 1, 2, ..., 10), and every artefact downstream (metrics.json, report.md, plots, labels.txt, the
TFLite metadata, the demo, predict's CSV) shows the names.

`check_source` looks only at paths and, for a class-folder tree, its
sub-folder names: it runs before weights are fetched or any image is read,
so a wrong path or a wrong number of names costs one line and no time.
"""

from __future__ import annotations

from pathlib import Path

from kerasdl.errors import DataError


def check_class_names(class_names: list[str] | None) -> None:
    """Checks names given for a source's classes: non-empty, distinct, no line breaks.

    Raises:
        DataError: naming `data.class_names`.
    """
    if class_names is None:
        return
    names = list(class_names)
    empty = sum(not isinstance(name, str) or not name.strip() for name in names)
    broken = [name for name in names if isinstance(name, str) and "\n" in name]
    repeated = sorted({name for name in names if isinstance(name, str) and name.strip()
                       and names.count(name) > 1})
    if empty or broken or repeated or len(names) < 2:
        # say what is wrong in words: `,,,` is four empty names, not "(repeated: )"
        problems = ([f"all {empty} names empty" if empty == len(names) else f"{empty} of {len(names)} names empty"]
                    if empty else []) + (
            ["a line break in a name"] if broken else []) + (
            [f"repeated: {', '.join(repeated)}"] if repeated else [])
        raise DataError(
            f"Expected data.class_names to be two or more distinct, non-empty names in label order, "
            f"e.g. real,ai. Received: {','.join(map(str, names))!r}"
            + (f" ({'; '.join(problems)})" if problems else " (one name)") + ". Name each class once."
        )


def name_classes(labels: list[str], class_names: list[str] | None, source: str) -> list[str]:
    """The class names of a source whose classes are `labels`, in label order.

    Args:
        labels: The source's labels, in label order.
        class_names: Names for them, or `None` to keep the labels.
        source: The source, for the message.

    Returns:
        `class_names` when given, else `labels`.

    Raises:
        DataError: for a number of names that is not the number of classes.

    Example:
    ```python
    name_classes(["0", "1"], ["real", "ai"], "csv:train.txt")  # ["real", "ai"]
    ```
    """
    if class_names is None:
        return list(labels)
    check_class_names(class_names)
    if len(class_names) != len(labels):
        raise DataError(
            f"Expected {len(labels)} names in data.class_names, one per class of {source} in label "
            f"order ({', '.join(labels)}). Received: {len(class_names)} ({', '.join(class_names)}). "
            "Give each class one name, in that order."
        )
    return list(class_names)


def check_source(source: str, *, class_names: list[str] | None = None) -> None:
    """The checks of a source that read no image: the paths exist, and for a
    class-folder tree, one name of `class_names` per class folder.

    A `csv:` or `tfds:` source's classes are known once it is listed, where
    `load_labelled_files` checks the names again.

    Args:
        source: Any SRC (a folder, `sample`, `csv:...`, `tfds:...`).
        class_names: Names given for the classes. Defaults to `None`.

    Raises:
        DataError: for a missing folder or label file, a folder given as a
            file, or a number of names that is not the number of classes.
    """
    from kerasdl.data.scan import list_class_names
    from kerasdl.data.sources import CSV_PREFIX, TFDS_PREFIX, parse_csv_source, parse_tfds_source

    check_class_names(class_names)
    source = str(source)
    if source.startswith(CSV_PREFIX):
        parse_csv_source(source)  # the label files exist
        return
    if source.startswith(TFDS_PREFIX):
        parse_tfds_source(source)
        return
    if source != "sample":
        labels = list_class_names(Path(source).expanduser())
        name_classes(labels, class_names, source)
