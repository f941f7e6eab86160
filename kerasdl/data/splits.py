"""How labelled images are split: stratified train/val/test splits, k-fold's folds, class balance.

Each class is shuffled with the run's seed and dealt on its own, so every
split (and every fold) keeps the class proportions; the same seed gives the
same split, which resuming a run and comparing a k-fold ensemble with a
single run rely on.
"""


from __future__ import annotations

import warnings

import numpy as np

from kerasdl.data.types import ImageFiles
from kerasdl.errors import DataError

__all__ = [
    "IMBALANCE_RATIO",
    "balanced_class_weights",
    "fold_numbers",
    "kfold_pool",
    "split_files",
    "stratified_split",
    "warn_if_imbalanced",
]


def stratified_split(
    files: ImageFiles, fractions: dict[str, float], *, seed: int, num_classes: int
) -> dict[str, ImageFiles]:
    """Splits files per class, so every split keeps the class proportions.

    Args:
        files: The files to split.
        fractions: `{split name: fraction}` for the held-out splits; the
            rest goes to `"train"`.
        seed: Seed of the shuffle.
        num_classes: Number of classes.

    Returns:
        `{split: ImageFiles}` with `"train"` and each split of `fractions`.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(files.labels, dtype=int)
    chosen: dict[str, list[int]] = {name: [] for name in ["train", *fractions]}
    for label in range(num_classes):
        indices = np.flatnonzero(labels == label)
        rng.shuffle(indices)
        start = 0
        for name, fraction in fractions.items():
            take = int(round(len(indices) * fraction))
            if fraction > 0 and len(indices) >= 2:
                take = min(max(take, 1), len(indices) - 1 - start)
            chosen[name] += indices[start:start + take].tolist()
            start += take
        chosen["train"] += indices[start:].tolist()
    return {name: files.subset(sorted(idx)) for name, idx in chosen.items()}


IMBALANCE_RATIO = 5.0


def warn_if_imbalanced(counts: list[int], class_names: list[str]) -> float:
    """Warns when the largest class has more than 5x the images of the smallest.

    Args:
        counts: Images per class (of the training split).
        class_names: The class names, parallel to `counts`.

    Returns:
        The ratio largest / smallest.
    """
    largest, smallest = int(np.argmax(counts)), int(np.argmin(counts))
    ratio = counts[largest] / max(counts[smallest], 1)
    if ratio > IMBALANCE_RATIO:
        warnings.warn(
            f"Classes are imbalanced: {class_names[largest]!r} has {counts[largest]} training "
            f"images, {class_names[smallest]!r} {counts[smallest]} ({ratio:.1f}x). "
            "data.class_weight='auto' balances the loss.",
            stacklevel=2,
        )
    return ratio


def balanced_class_weights(counts: list[int]) -> dict[int, float]:
    """Weights `n / (k * count)` per class, as scikit-learn's "balanced".

    Args:
        counts: Training images per class.

    Returns:
        `{class index: weight}` for `model.fit(class_weight=...)`; the mean
        weight over the training images is 1.

    Example:
    ```python
    balanced_class_weights([90, 10])  # {0: 0.556, 1: 5.0}
    ```
    """
    total, present = sum(counts), sum(1 for count in counts if count)
    return {index: (total / (present * count) if count else 0.0) for index, count in enumerate(counts)}


def fold_numbers(files: ImageFiles, folds: int, *, seed: int, num_classes: int) -> np.ndarray:
    """Stratified k-fold: the fold (1 to `folds`) of each file.

    Each class's files are shuffled with `seed` and dealt to the folds in
    turn, so every fold holds each class in the same proportion (within one
    image).

    Args:
        files: The files to divide (train and val pooled).
        folds: Number of folds, 2 or more.
        seed: Seed of the shuffle.
        num_classes: Number of classes.

    Returns:
        An int array parallel to `files`.

    Raises:
        DataError: when a class has fewer images than folds, so some fold
            would validate without it.
    """
    labels = np.asarray(files.labels, dtype=int)
    counts = np.bincount(labels, minlength=num_classes)
    if folds > counts.min():
        raise DataError(
            f"Expected at most {int(counts.min())} folds here: every fold needs an image of every class. "
            f"Received: folds={folds} for a class of {int(counts.min())} images. Use fewer folds.",
            argument="folds",
        )
    rng = np.random.default_rng(seed)
    numbers = np.zeros(len(labels), dtype=int)
    for label in range(num_classes):
        indices = np.flatnonzero(labels == label)
        rng.shuffle(indices)
        numbers[indices] = np.arange(len(indices)) % folds + 1
    return numbers


def kfold_pool(files: dict[str, ImageFiles], *, val_split, test_split, seed, num_classes
               ) -> dict[str, ImageFiles]:
    """The images a k-fold run divides into folds (`"pool"`), and its test split if any.

    The test split is the one a single run with the same `test_split` and
    `seed` holds out, so the fold ensemble and a single run are scored on
    the same images; training and validation images are pooled.
    """
    split = split_files(dict(files), val_split=val_split or 0.2, test_split=test_split, seed=seed,
                         num_classes=num_classes)
    pool = ImageFiles(split["train"].paths + split["val"].paths, split["train"].labels + split["val"].labels,
                      split["train"].use_pillow + split["val"].use_pillow)
    return {"pool": pool, **({"test": split["test"]} if "test" in split else {})}


def split_files(files, *, val_split, test_split, seed, num_classes) -> dict[str, ImageFiles]:
    """A source's files as train, val (and test) splits: its own split folders, else stratified ones.

    `files` is `{"all": ...}` or `{"train": ..., "val"/"test": ...}` (consumed); a split the
    source lacks is held out of `"all"` (or `"train"`) by `val_split` / `test_split`.
    """
    base = files.pop("all", None) or files.pop("train")
    fractions = {}
    if "val" not in files:
        fractions["val"] = val_split
    if "test" not in files and test_split > 0:
        fractions["test"] = test_split
    if not fractions:
        return {"train": base, **files}
    if "val" in fractions and val_split <= 0:
        raise DataError(
            "Expected a validation split. Received: data.val_split=0 and no val/ folder. "
            "Set data.val_split above 0 or add a val/ folder."
        )
    split = stratified_split(base, fractions, seed=seed, num_classes=num_classes)
    return {**split, **files}
