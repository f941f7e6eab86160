"""The typed records that the data layer passes around: files, skips and datasets."""


from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class SkippedFile:
    """A file left out of the data, and why.

    Attributes:
        path: The file's path.
        reason: A short reason such as `"empty file"` or `"not an image"`.
    """

    path: str
    reason: str


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

