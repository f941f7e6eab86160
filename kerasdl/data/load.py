"""Load labelled images from any source (folder, csv:, tfds:, sample) into `ImageData`."""


from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf

from kerasdl._util.console import plural
from kerasdl._util.paths import kerasdl_home
from kerasdl.data.naming import name_classes
from kerasdl.data.pipeline import augment_batches, fits_in_memory, make_dataset
from kerasdl.data.scan import (
    MAX_IMAGE_PIXELS,
    _check_every_class_has_images,
    list_class_folder,
    sample_data_dir,
    scan_images,
    typical_image_size,
)
from kerasdl.data.splits import split_files, warn_if_imbalanced
from kerasdl.data.types import DataSplit, ImageData, ImageFiles, SkippedFile, TrainParts
from kerasdl.errors import DataError

logger = logging.getLogger(__name__)



def list_labelled_source(
    source: str | os.PathLike,
    *,
    path_column: str | None = None,
    label_column: str | None = None,
    encoding: str | None = None,
    class_names: list[str] | None = None,
) -> tuple[list[str], list[str], dict[str, list[tuple[str, str]]], list[SkippedFile]]:
    """Lists any labelled image source without reading an image (`load_labelled_files`'s first step).

    Args: as `load_labelled_files`'s.

    Returns:
        `(class_names, labels, listed, skipped)`: the names the classes go
        by (`class_names`, else the labels), the source's own labels in label
        order, `{split: [(path, label)]}` and the label rows left out.

    Raises:
        DataError: for a missing or malformed source, fewer than two
            classes, or `class_names` not one per class.
    """
    from kerasdl.data import sources

    source = str(source)
    if source.startswith(sources.CSV_PREFIX):
        labels, listed, skipped = sources.list_csv_source(
            source, path_column=path_column, label_column=label_column, encoding=encoding)
    elif source.startswith(sources.TFDS_PREFIX):
        labels, listed, skipped = sources.list_tfds_source(source, cache_root=kerasdl_home())
    else:
        root = sample_data_dir() if source == "sample" else Path(source).expanduser()
        labels, listed = list_class_folder(root)
        skipped = []
    if len(labels) < 2:
        raise DataError(
            f"Expected at least two classes. Received: only {', '.join(map(repr, labels))} in "
            f"{source}. Add images of another class."
        )
    named = name_classes(labels, class_names, source)  # before any image is read
    return named, labels, listed, skipped


def load_labelled_files(
    source: str | os.PathLike,
    *,
    path_column: str | None = None,
    label_column: str | None = None,
    progress: bool = False,
    encoding: str | None = None,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
    class_names: list[str] | None = None,
) -> tuple[list[str], dict[str, ImageFiles], list[SkippedFile]]:
    """Lists and scans any labelled image source, keeping the readable images.

    Args:
        source: A class-folder tree, `"sample"`, `"csv:FILE[,val=FILE]
            [,test=FILE]"` (a CSV/TSV label file, paths relative to its
            folder) or `"tfds:NAME[:SPLIT]"`.
        path_column: Path column of a label file (name or number).
            Defaults to `None` (detected).
        label_column: Label column of a label file. Defaults to `None`
            (detected).
        progress: Show a progress bar while scanning. Defaults to `False`.
        encoding: Text encoding of label files that are not UTF-8 (e.g.
            `"latin-1"`). Defaults to `None` (UTF-8, with or without BOM).
        max_image_pixels: Images of more pixels are skipped as too large,
            without decoding them. Defaults to `MAX_IMAGE_PIXELS` (40 MP).
        class_names: Names for the source's classes, in label order
            (`kerasdl.data.naming`), e.g. `["real", "ai"]` for labels 0 and
            1; checked before any image is read. Defaults to `None` (the
            labels).

    Returns:
        `(class_names, files, skipped)`: `files` maps `"all"` (a source not
        split in advance) or `"train"`/`"val"`/`"test"` to the readable
        `ImageFiles`; `skipped` lists every file or label row left out, with
        the reason.

    Raises:
        DataError: for a missing or malformed source (a label file that is
            binary or not text in UTF-8 or `encoding`), fewer than two
            classes, `class_names` not one per class, or no readable image
            in a class.

    Example:
    ```python
    class_names, files, skipped = load_labelled_files("csv:faces/trainset_label.txt")
    ```
    """
    source = str(source)
    named, labels, listed, skipped = list_labelled_source(
        source, path_column=path_column, label_column=label_column, encoding=encoding,
        class_names=class_names)
    index = {name: i for i, name in enumerate(labels)}
    files: dict[str, ImageFiles] = {}
    total = sum(len(entries) for entries in listed.values())
    bar = None
    if progress:
        logger.info("Checking %s of %s ...", plural(total, "file"), source)
        if total > 200:  # one bar over every part (train, val, test), counting to the total above
            from kerasdl._util.console import progress_bar

            bar = progress_bar(total, unit_name="file", done="Checked")
    checked = 0
    for split, entries in listed.items():
        files[split], unreadable = scan_images(
            [(p, index[c]) for p, c in entries], max_pixels=max_image_pixels,
            on_checked=None if bar is None else (lambda count, before=checked: bar.update(before + count)))
        checked += len(entries)
        skipped += unreadable
    _report_skipped(skipped, source)
    _check_every_class_has_images(files.get("all", files.get("train")), labels, source, skipped)
    return named, files, skipped


def _report_skipped(skipped: list[SkippedFile], source: str) -> None:
    """Warns of the rows and files left out, conflicting labels apart; duplicate rows (their
    file kept once) are a status line."""

    def listing(items: list[SkippedFile]) -> str:
        shown = "\n".join(f"  {item.path}: {item.reason}" for item in items[:20])
        return shown + (f"\n  ... and {len(items) - 20} more" if len(items) > 20 else "")

    other = [item for item in skipped if item.kind not in ("duplicate", "conflict")]
    conflicts = [item for item in skipped if item.kind == "conflict"]
    duplicates = [item for item in skipped if item.kind == "duplicate"]
    if other:
        what = "file or row" if len(other) == 1 else "files or rows"
        warnings.warn(f"Skipping {len(other):,} {what} of {source}:\n{listing(other)}", stacklevel=3)
    if conflicts:
        files = len({item.path for item in conflicts})
        warnings.warn(f"Leaving out {plural(files, 'file')} of {source} whose label rows conflict "
                      f"(every row of each):\n{listing(conflicts)}", stacklevel=3)
    if duplicates:
        logger.info("Keeping once %s listed more than once with the same label in %s (%s).",
                    plural(len({item.path for item in duplicates}), "file"), source,
                    plural(len(duplicates), "duplicate row"))


def auto_image_size(paths: list[str], size_range: tuple[int, int] | None, *, seed: int = 0) -> int:
    """`image_size="auto"`: the images' typical size (`typical_image_size`), within `size_range`.

    Raises:
        DataError: when no image header can be read and no range gives a size.
    """
    typical = typical_image_size(paths, seed=seed)
    if typical is None and size_range is None:
        raise DataError("Expected images whose size can be read for image_size='auto'. Received: none. "
                        "Pass an image_size in pixels.", argument="image_size")
    smallest, largest = size_range or (1, typical)
    chosen = largest if typical is None else min(max(typical, smallest), largest)
    logger.info(f"Image size auto: {chosen} px (the images' typical shorter side is {typical} px"
                + (f"; the backbone takes {smallest} to {largest} px)" if size_range else ")"))
    return chosen


def load_data(
    source: str | os.PathLike,
    *,
    image_size: int | str,
    batch_size: int = 32,
    val_split: float = 0.2,
    test_split: float = 0.0,
    seed: int = 0,
    augment: Callable | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
    path_column: str | None = None,
    label_column: str | None = None,
    one_hot: bool = False,
    encoding: str | None = None,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
    split: DataSplit | None = None,
    size_range: tuple[int, int] | None = None,
    class_names: list[str] | None = None,
) -> ImageData:
    """Reads an image source into train/val/test datasets.

    Args:
        source: A class-folder tree, `"sample"`, `"csv:FILE"` or
            `"tfds:NAME[:SPLIT]"` (see `load_labelled_files`).
        image_size: Square image size, or `"auto"`: the training images'
            typical size (their median shorter side, `typical_image_size`)
            within `size_range`, so images that already have a size the
            network takes are not resampled (`ImageData.image_size` gives
            the size chosen).
        batch_size: Batch size. Defaults to `32`.
        val_split: Validation fraction when the source has no val split.
            Defaults to `0.2`.
        test_split: Test fraction when the source has no test split.
            Defaults to `0.0`.
        seed: Seed of the split and the shuffle. Defaults to `0`.
        augment: Training-split augmentation callable (see
            `kerasdl.data.augment.get_augmentation`). Defaults to `None`.
        cache_dir: Folder for on-disk caches. Defaults to `None`.
        progress: Show a progress bar while scanning. Defaults to `False`.
        path_column: Path column of a label file. Defaults to `None`.
        label_column: Label column of a label file. Defaults to `None`.
        one_hot: Make `train` yield one-hot labels (for label smoothing);
            a MixUp/CutMix `augment` implies it. Defaults to `False`.
        encoding: Text encoding of label files that are not UTF-8.
            Defaults to `None`.
        max_image_pixels: Images of more pixels are skipped as too large.
            Defaults to `MAX_IMAGE_PIXELS` (40 MP).
        split: The source's files already scanned and split, e.g. a fold
            of a k-fold run (`kerasdl.data.folds.FoldPlan.split`): the
            source is then not listed or scanned again, and `val_split`,
            `test_split`, the label-file arguments and `class_names` are
            not used. Defaults to `None` (scan and split the source).
        size_range: `(smallest, largest)` size `image_size="auto"` may
            pick. Defaults to `None` (any).
        class_names: Names for the source's classes, in label order.
            Defaults to `None` (the labels).

    Returns:
        An `ImageData`.

    Raises:
        DataError: for a missing or malformed source, fewer than two classes,
            or no readable images in a class or split.

    Example:
    ```python
    data = load_data("flowers/", image_size=160, batch_size=32)
    model.fit(data.train, validation_data=data.validation_data())
    ```
    """
    if split is None:
        class_names, files, skipped = load_labelled_files(
            source, path_column=path_column, label_column=label_column, progress=progress,
            encoding=encoding, max_image_pixels=max_image_pixels, class_names=class_names)
        files = split_files(files, val_split=val_split, test_split=test_split, seed=seed,
                             num_classes=len(class_names))
    else:  # dealt before, once for every fold of a k-fold run
        class_names, files, skipped = split.class_names, dict(split.files), list(split.skipped)
    for name in ("train", "val"):
        if not len(files[name]):
            raise DataError(
                f"Expected images in the {name} split. Received: none readable in {source}. "
                f"Add images, or lower data.val_split."
            )
    warn_if_imbalanced(files["train"].class_counts(len(class_names)), class_names)
    if image_size == "auto":
        image_size = auto_image_size(files["train"].paths, size_range, seed=seed)
    one_hot = one_hot or bool(getattr(augment, "mixes_labels", False))
    cache = "memory" if fits_in_memory(sum(map(len, files.values())), image_size) else "disk"
    datasets = {
        split: make_dataset(
            split_files, image_size=image_size, batch_size=batch_size,
            training=split == "train", seed=seed, cache_dir=cache_dir, cache_name=split, cache=cache,
            num_classes=len(class_names) if one_hot and split == "train" else None,
        )
        for split, split_files in files.items()
    }
    # The augmentation goes on last, so a phase can swap it (kerasdl.training).
    unaugmented = datasets["train"]
    train = augment_batches(unaugmented, augment).prefetch(tf.data.AUTOTUNE) if augment else unaugmented
    return ImageData(
        train=train, val=datasets["val"], test=datasets.get("test"),
        class_names=class_names, files=files, skipped=skipped, source=str(source),
        image_size=image_size, batch_size=batch_size, one_hot=one_hot,
        train_parts=TrainParts(unaugmented=unaugmented, augment=augment, augmented=train),
    )

