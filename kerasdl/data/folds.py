"""k-fold cross-validation's data: the labelled images dealt once into stratified folds, and
each fold's split (`FoldPlan.split`) for `load_data(split=...)`."""


from __future__ import annotations

import dataclasses
import os

import numpy as np

from kerasdl.data.load import load_labelled_files
from kerasdl.data.scan import MAX_IMAGE_PIXELS
from kerasdl.data.splits import fold_numbers, kfold_pool
from kerasdl.data.types import DataSplit, ImageFiles, SkippedFile
from kerasdl.errors import DataError

# The arguments of `load_data` that `plan_folds` takes too (the source's reading and splitting).
PLAN_ARGUMENTS = ("val_split", "test_split", "seed", "path_column", "label_column", "encoding",
                  "max_image_pixels", "class_names")
# Images of every class each fold needs, once test_split has held out its share.
MIN_IMAGES_PER_FOLD = 2


@dataclasses.dataclass
class FoldPlan:
    """The data of a k-fold run, dealt once before its folder is claimed.

    Attributes:
        class_names: Class names by label index.
        pool: The `ImageFiles` dealt into folds (train and val pooled).
        numbers: The fold (1 to K) of each file of `pool`.
        test: The test split's `ImageFiles`, or `None`.
        skipped: Files of the source that could not be read.
    """

    class_names: list[str]
    pool: ImageFiles
    numbers: np.ndarray
    test: ImageFiles | None
    skipped: list[SkippedFile]

    @property
    def folds(self) -> int:
        """The number of folds, K."""
        return int(self.numbers.max())

    def split(self, fold: int) -> DataSplit:
        """Fold `fold` (1 to K) as a run's split: `val` is the fold, `train` the other folds.

        Example:
        ```python
        data = load_data("faces/", image_size=224, split=plan.split(2))
        ```
        """
        files = {"train": self.pool.subset(np.flatnonzero(self.numbers != fold)),
                 "val": self.pool.subset(np.flatnonzero(self.numbers == fold))}
        if self.test is not None:
            files["test"] = self.test
        return DataSplit(class_names=self.class_names, files=files, skipped=self.skipped, fold=fold)


def plan_folds(
    source: str | os.PathLike,
    *,
    folds: int,
    val_split: float = 0.2,
    test_split: float = 0.0,
    seed: int = 0,
    path_column: str | None = None,
    label_column: str | None = None,
    encoding: str | None = None,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
    class_names: list[str] | None = None,
    progress: bool = False,
) -> FoldPlan:
    """Scans a labelled source and deals its images into `folds` stratified folds.

    The train and val images are pooled (`kerasdl.data.splits.kfold_pool`);
    the test split a single run with the same `test_split` and `seed` holds
    out stays out of every fold. Each class is dealt evenly
    (`kerasdl.data.splits.fold_numbers`).

    Args:
        source: Any labelled source (see `load_labelled_files`).
        folds: Number of folds, 2 or more.
        val_split, test_split, seed, path_column, label_column, encoding,
            max_image_pixels, class_names, progress: As `load_data`'s.

    Returns:
        A `FoldPlan`.

    Raises:
        DataError: for a source that cannot be read, more folds than the
            smallest class has images, or a test split that leaves a class
            too few images a fold.

    Example:
    ```python
    plan = plan_folds("faces/", folds=5, seed=0)
    data = load_data("faces/", image_size=224, split=plan.split(1))
    ```
    """
    class_names, files, skipped = load_labelled_files(
        source, path_column=path_column, label_column=label_column, progress=progress, encoding=encoding,
        max_image_pixels=max_image_pixels, class_names=class_names)
    parts = kfold_pool(files, val_split=val_split, test_split=test_split, seed=seed,
                       num_classes=len(class_names))
    if "test" in parts and "test" not in files:  # held out by test_split, not a test/ folder
        _check_test_split(parts, folds, test_split, class_names)
    numbers = fold_numbers(parts["pool"], folds, seed=seed, num_classes=len(class_names))
    return FoldPlan(class_names=class_names, pool=parts["pool"], numbers=numbers, test=parts.get("test"),
                    skipped=skipped)


def _check_test_split(parts, folds: int, test_split: float, class_names: list[str]) -> None:
    """Refuses a `test_split` that leaves a class fewer than `MIN_IMAGES_PER_FOLD` images a fold."""
    left = parts["pool"].class_counts(len(class_names))
    needed = MIN_IMAGES_PER_FOLD * folds
    short = [(name, count) for name, count in zip(class_names, left, strict=True) if count < needed]
    if not short:
        return
    held, total = len(parts["test"]), len(parts["test"]) + len(parts["pool"])
    raise DataError(
        f"Expected a test split that leaves {MIN_IMAGES_PER_FOLD} images of every class a fold ({needed} for "
        f"{folds} folds). Received: data.test_split={test_split:g}, which holds out {held} of the "
        f"{total} images ({held / total:.0%}) and leaves {short[0][0]} {short[0][1]}. Lower data.test_split, "
        "or use fewer folds.")


__all__ = ["MIN_IMAGES_PER_FOLD", "PLAN_ARGUMENTS", "FoldPlan", "plan_folds"]
