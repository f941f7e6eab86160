"""The typed records that the data layer passes around: files, skips and datasets."""


from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from kerasdl._util.console import plural


@dataclasses.dataclass(frozen=True)
class SkippedFile:
    """A file or label row left out of the data, and why.

    Attributes:
        path: The file's path.
        reason: A short reason such as `"empty file"` or `"not an image"`.
        kind: `"skipped"` (the row or file is left out: unreadable, not
            found, an empty cell), `"duplicate"` (a label row repeating an
            earlier row's path and label: the file is kept, once) or
            `"conflict"` (a row giving a file another label than an
            earlier row: the file is left out, every row of it).
    """

    path: str
    reason: str
    kind: str = "skipped"


def describe_skipped(skipped: list[SkippedFile], *, shown: int = 3) -> list[str]:
    """What was left out of a source, one sentence for each kind (`SkippedFile.kind`).

    Duplicate label rows are not counted as files left out: their file is kept once.

    Args:
        skipped: The source's `SkippedFile`s.
        shown: Files with conflicting labels named in the sentence. Defaults to `3`.

    Returns:
        Sentences such as `"Skipped 2 unreadable files or label rows."`,
        `"Kept 1 file listed twice with the same label once (1 duplicate
        row)."`, `"Left out 1 file whose label rows conflict: a.jpg."`.
    """
    other = [item for item in skipped if item.kind not in ("duplicate", "conflict")]
    duplicates = [item for item in skipped if item.kind == "duplicate"]
    conflicts = list(dict.fromkeys(item.path for item in skipped if item.kind == "conflict"))
    lines = []
    if other:
        lines.append(f"Skipped {plural(len(other), 'unreadable file or label row', 'unreadable files or label rows')}.")
    if duplicates:
        files = len({item.path for item in duplicates})
        lines.append(f"Kept {plural(files, 'file')} listed more than once with the same label once "
                     f"({plural(len(duplicates), 'duplicate row')}).")
    if conflicts:
        more = f" and {len(conflicts) - shown} more" if len(conflicts) > shown else ""
        lines.append(f"Left out {plural(len(conflicts), 'file')} whose label rows conflict: "
                     f"{', '.join(conflicts[:shown])}{more}.")
    return lines


def count_left_out(skipped: list[SkippedFile]) -> int:
    """Files and label rows left out of the data: duplicate rows are not (their file is kept);
    a file with conflicting labels counts once."""
    conflicts = {item.path for item in skipped if item.kind == "conflict"}
    return sum(item.kind == "skipped" for item in skipped) + len(conflicts)


@dataclasses.dataclass
class ImageFiles:
    """Readable image files of one split with integer labels.

    Attributes:
        paths: File paths.
        labels: Class indices, parallel to `paths`.
        use_pillow: Whether each file needs Pillow to decode (WebP, CMYK,
            16-bit, EXIF-rotated); parallel to `paths`.
    """

    paths: list[str] = dataclasses.field(default_factory=list)
    labels: list[int] = dataclasses.field(default_factory=list)
    use_pillow: list[bool] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices) -> ImageFiles:
        return ImageFiles(
            [self.paths[i] for i in indices],
            [self.labels[i] for i in indices],
            [self.use_pillow[i] for i in indices],
        )

    def class_counts(self, num_classes: int) -> list[int]:
        return np.bincount(np.asarray(self.labels, dtype=int), minlength=num_classes).tolist()


@dataclasses.dataclass
class DataSplit:
    """A source's readable files already split, for `load_data(split=...)` (a k-fold run's fold).

    Attributes:
        class_names: Class names by label index.
        files: The `ImageFiles` of `"train"`, `"val"` and optionally `"test"`.
        skipped: Files of the source left out, with the reason.
        fold: The fold (1 to K) `val` is, for a fold of a k-fold run
            (`kerasdl.data.folds.FoldPlan.split`); `0` otherwise.
    """

    class_names: list[str]
    files: dict[str, ImageFiles]
    skipped: list[SkippedFile] = dataclasses.field(default_factory=list)
    fold: int = 0


@dataclasses.dataclass
class TrainParts:
    """The training split before and after its augmentation.

    Attributes:
        unaugmented: Shuffled training batches before augmentation (labels
            one-hot when `ImageData.one_hot`).
        augment: The augmentation `augmented` applies (`None` for none).
        augmented: `augment_batches(unaugmented, augment)`: `ImageData.train`.
    """

    unaugmented: tf.data.Dataset
    augment: Callable | None
    augmented: tf.data.Dataset


@dataclasses.dataclass
class ImageData:
    """The data of a run: datasets, the files behind them, and what was skipped.

    Attributes:
        train: Batches of `(images, labels)`; images float32 in [0, 255],
            shuffled and augmented.
        val: Validation batches, in file order.
        test: Test batches, or `None` when the source has no test split.
        class_names: Class names, sorted; index = label.
        files: The `ImageFiles` of each split present.
        skipped: Files left out, with the reason.
        source: The source as the user gave it.
        image_size: Square image size of the batches.
        batch_size: Batch size.
        one_hot: Whether `train` yields one-hot (possibly mixed) labels, as
            MixUp and CutMix need; `val` and `test` always yield class
            indices, and `validation_data()` gives `val` in `train`'s format.
        train_parts: How `load_data` made `train` (`TrainParts`), so a
            training phase can take the same shuffled images with another
            augmentation (`train_source`); `None` when unknown.
    """

    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset | None
    class_names: list[str]
    files: dict[str, ImageFiles]
    skipped: list[SkippedFile]
    source: str
    image_size: int
    batch_size: int
    one_hot: bool = False
    train_parts: TrainParts | None = None

    def train_source(self) -> TrainParts | None:
        """`train_parts` while `train` is still the dataset made from them.

        Returns `None` when `train` was replaced after loading (for example
        by `dataclasses.replace(data, train=subset)`), so stale parts are
        never used.
        """
        parts = self.train_parts
        return parts if parts is not None and parts.augmented is self.train else None

    def validation_data(self) -> tf.data.Dataset:
        """Returns `val` with labels in the format of `train`, for `model.fit`."""
        if not self.one_hot:
            return self.val
        depth = len(self.class_names)
        return self.val.map(lambda x, y: (x, tf.one_hot(y, depth)))

    def class_counts(self) -> dict[str, dict[str, int]]:
        """Returns `{split: {class name: count}}`."""
        return {
            split: dict(zip(self.class_names, files.class_counts(len(self.class_names)), strict=True))
            for split, files in self.files.items()
        }

