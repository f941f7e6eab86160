"""Data health: exact and near duplicates, leakage across splits, and file properties that give the label away.

A high score can come from the data rather than the model: the same image in
train and test, a class whose files all share a size or a format, copies
with different labels. These checks run on the facts of every image
(`kerasdl.data.image_facts`), in seconds, in every `run` (a warning per
finding, `data_health` in metrics.json) and in `kerasdl audit`.
"""


from __future__ import annotations

import dataclasses
import logging
import time
from collections import defaultdict

import numpy as np

from kerasdl._util.console import plural
from kerasdl.data.image_facts import PROPERTY_NAMES, ImageFacts, read_facts

__all__ = [
    "DataHealth",
    "DuplicateGroup",
    "NEAR_HASH_DISTANCE",
    "SHORTCUT_AUC",
    "ShortcutScore",
    "check_health",
    "duplicate_groups",
    "exact_duplicates",
    "near_duplicates",
    "shortcut_score",
]

logger = logging.getLogger(__name__)

# Perceptual hashes (64 bits) this close mark near copies: resized, re-encoded or lightly cropped.
# On flowers128 with 100 planted copies (bench/bench_audit.py), 6 bits find 59% of them, 8 bits
# 87% with 38 other pairs (most are copies the data already holds), 10 bits 93% with 80 others.
NEAR_HASH_DISTANCE = 8
# A file-property model that predicts the label at least this well (cross-validated ROC-AUC) is a
# finding: the network can learn the files instead of their content.
SHORTCUT_AUC = 0.8
# Fewest images of each class for a cross-validated shortcut score.
_SHORTCUT_MIN_PER_CLASS = 5
_SHORTCUT_FOLDS = 5
_EXAMPLES = 5


@dataclasses.dataclass(frozen=True)
class DuplicateGroup:
    """Images that are copies of each other.

    Attributes:
        paths: The files, in data order.
        labels: Their class indices, parallel to `paths`.
        splits: Their splits (`"train"`, `"val"`, `"test"`, `"all"`), parallel to `paths`.
    """

    paths: tuple[str, ...]
    labels: tuple[int, ...]
    splits: tuple[str, ...]

    @property
    def across_classes(self) -> bool:
        """The copies carry different labels: at least one label is wrong."""
        return len(set(self.labels)) > 1

    @property
    def across_splits(self) -> bool:
        """The copies sit in different splits: the later split's score is partly memory."""
        return len(set(self.splits)) > 1

    def to_json(self) -> dict:
        return {"paths": list(self.paths), "labels": list(self.labels), "splits": list(self.splits)}


@dataclasses.dataclass(frozen=True)
class ShortcutScore:
    """How well file properties alone predict the label.

    Attributes:
        auc: Cross-validated ROC-AUC of a model given every file property
            (macro one-vs-rest for more than two classes); 0.5 is chance.
        property_auc: The same score for each property alone, strongest
            first; properties equal for every image are left out.
        threshold: The score from which it is a finding (`SHORTCUT_AUC`).
    """

    auc: float
    property_auc: dict[str, float]
    threshold: float = SHORTCUT_AUC

    @property
    def strongest(self) -> str | None:
        """The property that predicts the label best on its own."""
        return next(iter(self.property_auc), None)

    @property
    def strongest_tied(self) -> list[str]:
        """Every property as strong as `strongest` (width and height of a square resize)."""
        best = self.property_auc.get(self.strongest)
        return [name for name, value in self.property_auc.items() if value == best]

    @property
    def flagged(self) -> bool:
        return self.auc >= self.threshold

    def to_json(self) -> dict:
        return {"auc": round(self.auc, 4), "flagged": self.flagged, "threshold": self.threshold,
                "strongest": self.strongest, "strongest_tied": self.strongest_tied,
                "property_auc": {name: round(value, 4) for name, value in self.property_auc.items()}}


def duplicate_groups(keys: list, labels: list[int], splits: list[str], paths: list[str]) -> list[DuplicateGroup]:
    """Groups the images that share a key (a pixel digest, a cluster id); `None` keys stay apart."""
    members = defaultdict(list)
    for index, key in enumerate(keys):
        if key is not None:
            members[key].append(index)
    return [DuplicateGroup(tuple(paths[i] for i in group), tuple(labels[i] for i in group),
                           tuple(splits[i] for i in group))
            for group in members.values() if len(group) > 1]


def exact_duplicates(facts: list[ImageFacts | None], labels: list[int], splits: list[str]) -> list[DuplicateGroup]:
    """Images with the same decoded pixels, whatever their files.

    Args:
        facts: Each image's facts (`None` for one not read).
        labels: Class indices, parallel to `facts`.
        splits: Split names, parallel to `facts`.

    Returns:
        One `DuplicateGroup` per set of two or more identical images.
    """
    keys = [fact.pixels if fact else None for fact in facts]
    return duplicate_groups(keys, labels, splits, [fact.path if fact else "" for fact in facts])


def _hash_bits(facts: list[ImageFacts | None]) -> tuple[np.ndarray, np.ndarray]:
    """The perceptual hashes as uint64, and the indices of the images that have one."""
    present = np.array([i for i, fact in enumerate(facts) if fact is not None], dtype=int)
    hashes = np.array([int(facts[i].phash, 16) for i in present], dtype=np.uint64)
    return hashes, present


def near_duplicates(facts: list[ImageFacts | None], labels: list[int], splits: list[str], *,
                    distance: int = NEAR_HASH_DISTANCE, block_cells: int = 2**24) -> list[DuplicateGroup]:
    """Images whose perceptual hashes differ in at most `distance` bits, joined into clusters.

    Exact copies are clustered too: a group holds every copy of an image,
    exact or near. All pairs are compared, a block of rows at a time, so
    memory stays bounded (time grows with the square of the images).

    Args:
        facts: Each image's facts (`None` for one not read).
        labels: Class indices, parallel to `facts`.
        splits: Split names, parallel to `facts`.
        distance: Most bits two hashes of copies differ in. Defaults to
            `NEAR_HASH_DISTANCE`.
        block_cells: Hash pairs compared at once (memory: 9 bytes each).
            Defaults to `2**24` (150 MB).

    Returns:
        One `DuplicateGroup` per cluster of two or more images.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    hashes, present = _hash_bits(facts)
    rows, cols = [], []
    block = max(1, block_cells // max(1, len(hashes)))
    for start in range(0, len(hashes), block):
        differing = np.bitwise_count(hashes[start:start + block, None] ^ hashes[None, :])
        row, col = np.nonzero(differing <= distance)
        keep = row + start < col  # each pair once
        rows.append(row[keep] + start)
        cols.append(col[keep])
    row, col = (np.concatenate(rows), np.concatenate(cols)) if rows else (np.zeros(0, int),) * 2
    graph = coo_matrix((np.ones(len(row)), (row, col)), shape=(len(hashes),) * 2)
    _, cluster = connected_components(graph, directed=False)
    sizes = np.bincount(cluster, minlength=len(hashes))
    keys: list = [None] * len(facts)
    for position, index in enumerate(present):
        if sizes[cluster[position]] > 1:
            keys[index] = int(cluster[position])
    return duplicate_groups(keys, labels, splits, [fact.path if fact else "" for fact in facts])


def _property_table(facts: list[ImageFacts]):
    """The file properties as numbers, one column per `PROPERTY_NAMES` (categories as codes)."""
    columns = []
    for name in PROPERTY_NAMES:
        values = [fact.properties()[name] for fact in facts]
        if any(isinstance(value, str) for value in values) or name in ("format", "mode", "subsampling"):
            codes = {value: code for code, value in enumerate(sorted({str(v) for v in values}))}
            columns.append([codes[str(value)] for value in values])
        else:
            columns.append([-1.0 if value is None else float(value) for value in values])
    return np.asarray(columns, dtype=float).T


def _cross_validated_auc(table: np.ndarray, labels: np.ndarray, *, seed: int) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = StratifiedKFold(min(_SHORTCUT_FOLDS, int(np.bincount(labels).min())), shuffle=True, random_state=seed)
    # scikit-learn's default leaf of 20 images would not split a small data set at all
    leaf = int(np.clip(len(labels) // 40, 2, 20))
    model = HistGradientBoostingClassifier(max_iter=50, max_depth=3, min_samples_leaf=leaf, random_state=seed)
    probabilities = cross_val_predict(model, table, labels, cv=folds, method="predict_proba")
    if probabilities.shape[1] == 2:
        return float(roc_auc_score(labels, probabilities[:, 1]))
    return float(roc_auc_score(labels, probabilities, multi_class="ovr", average="macro"))


def shortcut_score(facts: list[ImageFacts | None], labels: list[int], *, seed: int = 0) -> ShortcutScore | None:
    """Scores how well a model that sees only file properties predicts the label.

    A gradient-boosted tree model (scikit-learn's) is given width, height,
    aspect ratio, bytes per pixel, format, colour mode, JPEG quality and
    subsampling, grayscale and EXIF, and scored by stratified 5-fold
    cross-validated ROC-AUC; then each property alone the same way.

    Args:
        facts: Each image's facts (`None` for one not read: left out).
        labels: Class indices, parallel to `facts`.
        seed: Seed of the folds and the model. Defaults to `0`.

    Returns:
        A `ShortcutScore`, or `None` when a class has fewer than 5 images.

    Example:
    ```python
    score = shortcut_score(read_facts(paths), labels)
    if score and score.flagged:
        print(f"file properties alone: ROC-AUC {score.auc:.2f}, strongest {score.strongest}")
    ```
    """
    kept = [i for i, fact in enumerate(facts) if fact is not None]
    y = np.unique(np.asarray(labels)[kept], return_inverse=True)[1]
    if len(kept) == 0 or np.bincount(y).min() < _SHORTCUT_MIN_PER_CLASS or y.max() < 1:
        return None
    table = _property_table([facts[i] for i in kept])
    auc = _cross_validated_auc(table, y, seed=seed)
    alone = {name: _cross_validated_auc(table[:, [column]], y, seed=seed)
             for column, name in enumerate(PROPERTY_NAMES) if np.ptp(table[:, column]) > 0}
    return ShortcutScore(auc=auc, property_auc=dict(sorted(alone.items(), key=lambda item: -item[1])))


@dataclasses.dataclass
class DataHealth:
    """What the data-health checks found (`check_health`).

    Attributes:
        images: Images checked.
        exact: Groups of identical images (`exact_duplicates`).
        near: Clusters of near copies, exact ones included (`near_duplicates`).
        shortcut: The file-property score, `None` when too few images.
        seconds: Time the checks took.
    """

    images: int
    exact: list[DuplicateGroup]
    near: list[DuplicateGroup]
    shortcut: ShortcutScore | None
    seconds: float = 0.0

    def findings(self) -> list[str]:
        """One line per finding, for the console and report.md; empty when all is well."""
        lines = []
        exact_lines = _group_lines(self.exact, "identical")
        lines += exact_lines
        near_only = [group for group in self.near if not _is_exact(group, self.exact)]
        lines += _group_lines(near_only, "near-identical")
        score = self.shortcut
        if score is not None and score.flagged:
            strongest = score.strongest_tied
            lines.append(f"File properties alone predict the label with ROC-AUC {score.auc:.2f}; the strongest "
                         f"{'is' if len(strongest) == 1 else 'are'} {' and '.join(strongest)} "
                         f"({score.property_auc[score.strongest]:.2f}): the model may learn the files "
                         f"rather than the images.")
        return lines

    def to_json(self) -> dict:
        """The figures for metrics.json's `data_health`."""
        return {
            "images": self.images,
            "exact_duplicates": _group_summary(self.exact),
            "near_duplicates": {**_group_summary(self.near), "method": "perceptual hash",
                                "max_distance_bits": NEAR_HASH_DISTANCE},
            "shortcut": None if self.shortcut is None else self.shortcut.to_json(),
            "seconds": round(self.seconds, 2),
        }


def _is_exact(group: DuplicateGroup, exact: list[DuplicateGroup]) -> bool:
    return any(set(group.paths) == set(other.paths) for other in exact)


def _group_summary(groups: list[DuplicateGroup]) -> dict:
    ordered = sorted(groups, key=lambda group: (not group.across_splits, not group.across_classes))
    return {
        "groups": len(groups),
        "files": sum(len(group.paths) for group in groups),
        "within_class": sum(not group.across_classes for group in groups),
        "across_classes": sum(group.across_classes for group in groups),
        "across_splits": sum(group.across_splits for group in groups),
        "examples": [group.to_json() for group in ordered[:_EXAMPLES]],
    }


def _group_lines(groups: list[DuplicateGroup], kind: str) -> list[str]:
    lines = []
    leaking = [group for group in groups if group.across_splits]
    conflicting = [group for group in groups if group.across_classes]
    if leaking:
        first = leaking[0]
        lines.append(f"{plural(len(leaking), 'group')} of {kind} images straddle splits (leakage), "
                     f"e.g. {first.paths[0]} ({first.splits[0]}) and {first.paths[1]} ({first.splits[1]}).")
    if conflicting:
        first = conflicting[0]
        lines.append(f"{plural(len(conflicting), 'group')} of {kind} images carry different labels, "
                     f"e.g. {first.paths[0]} and {first.paths[1]}.")
    rest = len(groups) - len({id(group) for group in leaking + conflicting})
    if rest:
        lines.append(f"{plural(rest, 'group')} of {kind} images within one class and split "
                     f"({plural(sum(len(g.paths) for g in groups), 'file')} in all {kind} groups).")
    return lines


def check_health(files: dict, *, seed: int = 0, facts: dict[str, ImageFacts | None] | None = None) -> DataHealth:
    """Runs the data-health checks on a run's files, split by split.

    Args:
        files: `{split: ImageFiles}` as `kerasdl.data.load.load_data`
            gives them (`ImageData.files`).
        seed: Seed of the shortcut model's folds. Defaults to `0`.
        facts: Facts already read, by path (e.g. for grouping the
            split); the rest are read. Defaults to `None`.

    Returns:
        A `DataHealth`.

    Example:
    ```python
    health = check_health(data.files)
    for line in health.findings():
        print(line)
    ```
    """
    started = time.monotonic()
    paths = [path for part in files.values() for path in part.paths]
    labels = [label for part in files.values() for label in part.labels]
    splits = [name for name, part in files.items() for _ in part.paths]
    known = facts or {}
    missing = [path for path in paths if path not in known]
    known = {**known, **dict(zip(missing, read_facts(missing), strict=True))}
    ordered = [known[path] for path in paths]
    return DataHealth(images=len(paths), exact=exact_duplicates(ordered, labels, splits),
                      near=near_duplicates(ordered, labels, splits),
                      shortcut=shortcut_score(ordered, labels, seed=seed),
                      seconds=time.monotonic() - started)
