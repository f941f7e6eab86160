"""Image sources -> train/val/test `tf.data.Dataset`s and class names.

A source (the SRC of every command) is one of:
- a class-folder tree, `DIR/<class>/*.jpg`, optionally split as
  `DIR/train/<class>/`, `DIR/val/<class>/`, `DIR/test/<class>/`;
- `csv:FILE[,val=FILE][,test=FILE]`: CSV/TSV label files of image paths and
  labels (see `kerasdl.sources`);
- `tfds:NAME[:SPLIT]`: a TensorFlow Datasets image-classification set;
- `sample`: 200 labelled faces and non-faces that ship with scikit-image.
`load_labelled_files` lists and scans any of them; `load_data` adds the
split and the pipelines.

Every file is checked before training by a parallel scan: files that are not
decodable images are skipped, with the reason, and reported; training never
meets them. Decoding and resizing run in parallel inside tf.data, the
decoded, resized images are cached (in memory when they fit, else on disk),
and batches are prefetched.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps

from kerasdl.errors import DataError

_SPLIT_FOLDER_NAMES = {"train": "train", "training": "train", "val": "val",
                       "valid": "val", "validation": "val", "test": "test", "testing": "test"}
# Formats and modes TensorFlow's own decoder reads correctly; anything else
# (WebP, TIFF, CMYK, 16-bit, palette or 1-bit BMP) is decoded with Pillow.
_TF_MODES = {
    "JPEG": {"L", "RGB"},
    "PNG": {"L", "LA", "RGB", "RGBA", "P", "1"},
    "GIF": {"L", "P", "RGB"},
    "BMP": {"L", "RGB", "RGBA"},
}
_EXIF_ORIENTATION = 0x0112
MEMORY_CACHE_FRACTION = 0.25
# Decoded images a training split reshuffles among after the cache.
SHUFFLE_BUFFER = 1024


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


# ----------------------------------------------------------------- sources


def sample_data_dir() -> Path:
    """Returns the folder of the built-in sample data, writing it once.

    The sample is scikit-image's `lfw_subset`: 100 face and 100 non-face
    images of 25x25 px, shipped inside the scikit-image package (no download).

    Raises:
        DataError: if scikit-image is not installed.
    """
    cache_root = kerasdl_home()
    target = cache_root / "sample_faces"
    if target.is_dir():
        return target
    try:
        from skimage.data import lfw_subset
    except ImportError:
        raise DataError(
            "Expected scikit-image for --data sample. Received: it is not installed. "
            "Run `pip install 'kerasdl[sample]'`."
        ) from None
    images = (np.clip(lfw_subset(), 0.0, 1.0) * 255).round().astype(np.uint8)
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".sample_", dir=cache_root))
    for index, image in enumerate(images):
        class_name = "face" if index < 100 else "non_face"
        (staging / class_name).mkdir(exist_ok=True)
        Image.fromarray(image, mode="L").save(staging / class_name / f"{index:03d}.png")
    try:
        staging.rename(target)
    except OSError:  # another process wrote it first
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _files_in(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file())


def list_class_folder(root: Path) -> tuple[list[str], dict[str, list[tuple[str, str]]]]:
    """Lists a class-folder tree as `{split: [(path, class name), ...]}`.

    Args:
        root: `DIR/<class>/...` or `DIR/{train,val,test}/<class>/...`.

    Returns:
        `(class_names, files)`; `files` has key `"all"` when the tree is not
        pre-split, else some of `"train"`, `"val"`, `"test"`.

    Raises:
        DataError: for a missing folder, no class folders, or a class folder
            without files.
    """
    if not root.exists():
        raise DataError(
            f"Expected an image folder, a csv:FILE or tfds:NAME. Received: {root}, which "
            "does not exist. Check the path."
        )
    if not root.is_dir():
        raise DataError(
            f"Expected a folder with one sub-folder per class. Received: {root}, a file. "
            "Pass its folder, or csv:FILE for a label file."
        )
    subfolders = _class_folders(root)
    split_folders = {_SPLIT_FOLDER_NAMES[p.name.lower()]: p for p in subfolders
                     if p.name.lower() in _SPLIT_FOLDER_NAMES}
    if "train" in split_folders and len(split_folders) >= 2:
        tree = {split: folder for split, folder in split_folders.items()}
    else:
        tree = {"all": root}
    class_names = [p.name for p in _class_folders(tree.get("train", root))]
    if not class_names:
        raise DataError(
            f"Expected a folder with one sub-folder per class. Received: {root} with no "
            f"sub-folders. Put each class's images in {root}/<class>/."
        )
    files: dict[str, list[tuple[str, str]]] = {}
    for split, folder in tree.items():
        entries = []
        for class_name in class_names:
            class_dir = folder / class_name
            class_files = _files_in(class_dir) if class_dir.is_dir() else []
            if not class_files and split in ("all", "train"):
                raise DataError(
                    f"Expected images in every class folder. Received: {class_dir} with none. "
                    "Add images or remove the folder."
                )
            entries += [(path, class_name) for path in class_files]
        files[split] = entries
    return class_names, files


# -------------------------------------------------------------------- scan


_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"RIFF", b"II*\x00", b"MM\x00*")


def _has_image_signature(path: str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4).startswith(_SIGNATURES)


def inspect_image(path: str) -> tuple[bool, str | None]:
    """Checks that a file decodes fully as an image.

    Args:
        path: The file.

    Returns:
        `(needs_pillow, None)` for a good image, or `(False, reason)` for a
        file to skip.
    """
    try:
        if os.path.getsize(path) == 0:
            return False, "empty file"
        with Image.open(path) as image:
            image_format, mode = image.format, image.mode
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            image.draft("RGB", (64, 64))  # JPEG: decode at reduced scale, still reads it all
            image.load()
    except Image.UnidentifiedImageError:
        if _has_image_signature(path):
            return False, "corrupt (an image header, but the data does not decode)"
        return False, "not an image"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        return False, f"corrupt or truncated ({str(error).splitlines()[0][:80]})"
    needs_pillow = mode not in _TF_MODES.get(image_format, ()) or orientation != 1
    return needs_pillow, None


def scan_images(
    entries: list[tuple[str, int]], *, workers: int | None = None, progress: bool = False
) -> tuple[ImageFiles, list[SkippedFile]]:
    """Scans `(path, label)` pairs in parallel and keeps the readable images.

    Args:
        entries: Files with their class indices.
        workers: Threads to use. Defaults to `None` (a few per CPU).
        progress: Show a progress bar. Defaults to `False`.

    Returns:
        `(readable files, skipped files)`, in the order of `entries`.
    """
    paths = [path for path, _ in entries]
    workers = workers or min(32, 4 * (os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        results = pool.map(inspect_image, paths)
        if progress and len(paths) > 200:
            import keras

            bar = keras.utils.Progbar(len(paths), unit_name="file")
            checked = []
            for result in results:
                checked.append(result)
                if len(checked) % 100 == 0 or len(checked) == len(paths):
                    bar.update(len(checked))
            results = checked
        results = list(results)
    good, skipped = ImageFiles(), []
    for (path, label), (needs_pillow, reason) in zip(entries, results, strict=True):
        if reason:
            skipped.append(SkippedFile(path, reason))
        else:
            good.paths.append(path)
            good.labels.append(label)
            good.use_pillow.append(needs_pillow)
    return good, skipped


# ------------------------------------------------------------------ splits


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


# -------------------------------------------------------------- decoding


def _decode_with_pillow(path) -> np.ndarray:
    path = path.item() if isinstance(path, np.ndarray) else path  # eager mode gives an array
    with Image.open(path.decode()) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode.startswith("I;16") or image.mode in ("I", "F"):
            array = np.asarray(image, dtype=np.float32)
            array = array / 257.0 if array.max() > 255 else array
            return np.repeat(np.clip(array, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def decode_image(path: tf.Tensor, use_pillow: tf.Tensor | bool, image_size: int) -> tf.Tensor:
    """Decodes one file to a `(image_size, image_size, 3)` uint8 RGB tensor.

    Args:
        path: The file path, a string tensor.
        use_pillow: Decode with Pillow (see `inspect_image`); a Python bool
            picks the decoder once, a tensor per file.
        image_size: Square output size.

    Returns:
        The resized image, uint8 RGB.
    """

    def with_tensorflow():
        data = tf.io.read_file(path)
        return tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)

    def with_pillow():
        image = tf.numpy_function(_decode_with_pillow, [path], tf.uint8, stateful=False)
        return tf.ensure_shape(image, [None, None, 3])

    if isinstance(use_pillow, bool):
        image = with_pillow() if use_pillow else with_tensorflow()
    else:
        image = tf.cond(use_pillow, with_pillow, with_tensorflow)
    image = tf.image.resize(image, [image_size, image_size], method="bilinear")
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def fits_in_memory(num_images: int, image_size: int) -> bool:
    """Whether decoded images take less than a quarter of the machine's memory."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    return num_images * image_size * image_size * 3 < MEMORY_CACHE_FRACTION * total


def make_dataset(
    files: ImageFiles,
    *,
    image_size: int,
    batch_size: int,
    training: bool = False,
    augment: Callable | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    cache_name: str = "images",
    cache: bool | str = True,
    num_classes: int | None = None,
) -> tf.data.Dataset:
    """Builds the tf.data pipeline of one split.

    Args:
        files: The split's readable files.
        image_size: Square output size.
        batch_size: Batch size.
        training: Shuffle every epoch and apply `augment`. Defaults to `False`.
        augment: A callable on a batch of images (for example a
            `keras.layers.Pipeline`), or one with `mixes_labels = True`
            called on `(images, one-hot labels)` (MixUp, CutMix). Defaults
            to `None`.
        seed: Shuffle seed. Defaults to `0`.
        cache_dir: Where to cache decoded images when they do not fit in
            memory. Defaults to `None` (a temporary folder).
        cache_name: File name of the on-disk cache. Defaults to `"images"`.
        cache: Cache decoded images: `True` in memory when they fit, else
            on disk; `"memory"` or `"disk"` to choose; `False` streams them
            (for prediction). Defaults to `True`.
        num_classes: Yield one-hot float32 labels of this depth instead of
            class indices. Defaults to `None` (class indices).

    Returns:
        A dataset of `(images float32 [0, 255], labels)` batches.

    Raises:
        ValueError: for a label-mixing `augment` without `num_classes`.
    """
    mixes_labels = training and getattr(augment, "mixes_labels", False)
    if mixes_labels and num_classes is None:
        raise ValueError("MixUp/CutMix augmentation needs one-hot labels: pass num_classes.")
    dataset = tf.data.Dataset.from_tensor_slices(
        (files.paths, np.asarray(files.labels, dtype=np.int32), files.use_pillow)
    )
    if training:
        # Shuffling file names costs nothing and lets decoding overlap training
        # from the first batch (a shuffle buffer of decoded images would first
        # decode them all).
        dataset = dataset.shuffle(max(len(files), 1), seed=seed, reshuffle_each_iteration=True)
    # One decoder for the whole split when it can: no per-file branch, and no
    # Python (Pillow) call in the graph when no file needs it.
    same_decoder = len(set(files.use_pillow)) <= 1
    only_pillow = bool(files.use_pillow) and files.use_pillow[0]
    dataset = dataset.map(
        lambda path, label, use_pillow: (
            decode_image(path, only_pillow if same_decoder else use_pillow, image_size), label),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if cache is True:
        cache = "memory" if fits_in_memory(len(files), image_size) else "disk"
    if not cache:
        pass
    elif cache == "memory":
        dataset = dataset.cache()
    else:
        folder = Path(cache_dir or tempfile.mkdtemp(prefix="kerasdl_cache_"))
        folder.mkdir(parents=True, exist_ok=True)
        dataset = dataset.cache(str(folder / cache_name))
    if training and cache:
        # The cache replays epoch 1's order: mix it again each epoch within a
        # bounded buffer of decoded images.
        dataset = dataset.shuffle(min(max(len(files), 1), SHUFFLE_BUFFER), seed=seed + 1,
                                  reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if num_classes is None:
        dataset = dataset.map(lambda x, y: (tf.cast(x, tf.float32), y),
                              num_parallel_calls=tf.data.AUTOTUNE)
    else:
        dataset = dataset.map(lambda x, y: (tf.cast(x, tf.float32), tf.one_hot(y, num_classes)),
                              num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        dataset = augment_batches(dataset, augment)
    return dataset.prefetch(tf.data.AUTOTUNE)


def augment_batches(dataset: tf.data.Dataset, augment: Callable | None) -> tf.data.Dataset:
    """Applies an augmentation to `(images, labels)` batches inside tf.data.

    Args:
        dataset: Batches of `(images float32 [0, 255], labels)`; labels
            one-hot when `augment` mixes labels (MixUp, CutMix).
        augment: A callable on a batch of images, one with
            `mixes_labels = True` called on `(images, labels)`, or `None`
            (the dataset is returned as it is).

    Returns:
        The augmented batches.
    """
    if augment is None:
        return dataset
    if getattr(augment, "mixes_labels", False):
        return dataset.map(lambda x, y: augment(x, y, training=True),
                           num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.map(lambda x, y: (augment(x, training=True), y),
                       num_parallel_calls=tf.data.AUTOTUNE)


# ---------------------------------------------------------------- loading


def load_labelled_files(
    source: str | os.PathLike,
    *,
    path_column: str | None = None,
    label_column: str | None = None,
    progress: bool = False,
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

    Returns:
        `(class_names, files, skipped)`: `files` maps `"all"` (a source not
        split in advance) or `"train"`/`"val"`/`"test"` to the readable
        `ImageFiles`; `skipped` lists every file or label row left out, with
        the reason.

    Raises:
        DataError: for a missing or malformed source, fewer than two
            classes, or no readable image in a class.

    Example:
    ```python
    class_names, files, skipped = load_labelled_files("csv:faces/trainset_label.txt")
    ```
    """
    from kerasdl import sources

    source = str(source)
    if source.startswith(sources.CSV_PREFIX):
        class_names, listed, skipped = sources.list_csv_source(
            source, path_column=path_column, label_column=label_column)
    elif source.startswith(sources.TFDS_PREFIX):
        class_names, listed, skipped = sources.list_tfds_source(source, cache_root=kerasdl_home())
    else:
        root = sample_data_dir() if source == "sample" else Path(source).expanduser()
        class_names, listed = list_class_folder(root)
        skipped = []
    if len(class_names) < 2:
        raise DataError(
            f"Expected at least two classes. Received: only {', '.join(map(repr, class_names))} in "
            f"{source}. Add images of another class."
        )
    index = {name: i for i, name in enumerate(class_names)}
    files: dict[str, ImageFiles] = {}
    for split, entries in listed.items():
        files[split], unreadable = scan_images([(p, index[c]) for p, c in entries], progress=progress)
        skipped += unreadable
    if skipped:
        shown = "\n".join(f"  {item.path}: {item.reason}" for item in skipped[:20])
        more = f"\n  ... and {len(skipped) - 20} more" if len(skipped) > 20 else ""
        warnings.warn(f"Skipping {len(skipped)} files or rows of {source}:\n{shown}{more}",
                      stacklevel=2)
    _check_every_class_has_images(files.get("all", files.get("train")), class_names, source, skipped)
    return class_names, files, skipped


def load_data(
    source: str | os.PathLike,
    *,
    image_size: int,
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
) -> ImageData:
    """Reads an image source into train/val/test datasets.

    Args:
        source: A class-folder tree, `"sample"`, `"csv:FILE"` or
            `"tfds:NAME[:SPLIT]"` (see `load_labelled_files`).
        image_size: Square image size.
        batch_size: Batch size. Defaults to `32`.
        val_split: Validation fraction when the source has no val split.
            Defaults to `0.2`.
        test_split: Test fraction when the source has no test split.
            Defaults to `0.0`.
        seed: Seed of the split and the shuffle. Defaults to `0`.
        augment: Training-split augmentation callable (see
            `kerasdl.augment.get_augmentation`). Defaults to `None`.
        cache_dir: Folder for on-disk caches. Defaults to `None`.
        progress: Show a progress bar while scanning. Defaults to `False`.
        path_column: Path column of a label file. Defaults to `None`.
        label_column: Label column of a label file. Defaults to `None`.
        one_hot: Make `train` yield one-hot labels (for label smoothing);
            a MixUp/CutMix `augment` implies it. Defaults to `False`.

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
    class_names, files, skipped = load_labelled_files(
        source, path_column=path_column, label_column=label_column, progress=progress)
    files = _split_files(files, val_split=val_split, test_split=test_split, seed=seed,
                         num_classes=len(class_names))
    for split in ("train", "val"):
        if not len(files[split]):
            raise DataError(
                f"Expected images in the {split} split. Received: none readable in {source}. "
                f"Add images, or lower data.val_split."
            )
    warn_if_imbalanced(files["train"].class_counts(len(class_names)), class_names)
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
            f"images, {class_names[smallest]!r} {counts[smallest]} ({ratio:.1f}x). --class-weight auto "
            "(data.class_weight=auto) balances the loss.",
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


def kerasdl_home() -> Path:
    """The kerasdl cache folder: `$KERASDL_HOME`, else `~/.cache/kerasdl`."""
    return Path(os.environ.get("KERASDL_HOME", Path.home() / ".cache" / "kerasdl"))


def _check_every_class_has_images(
    files: ImageFiles, class_names: list[str], source, skipped: list[SkippedFile]
) -> None:
    counts = files.class_counts(len(class_names))
    empty = [name for name, count in zip(class_names, counts, strict=True) if count == 0]
    if len(empty) == len(class_names):
        raise DataError(
            f"Expected readable images. Received: none in {source} ({len(skipped)} files skipped, "
            "reasons above). Add images that decode as JPEG, PNG, BMP, GIF or WebP."
        )
    if empty:
        raise DataError(
            f"Expected readable images in every class. Received: none in {', '.join(empty)} "
            f"in {source}. Add images or remove the class."
        )


def _split_files(files, *, val_split, test_split, seed, num_classes) -> dict[str, ImageFiles]:
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


def write_split_csv(data: ImageData, path: str | os.PathLike) -> None:
    """Writes `split,path,label` rows so a run's split can be reproduced."""
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["split", "path", "label"])
        for split, files in data.files.items():
            for file_path, label in zip(files.paths, files.labels, strict=True):
                writer.writerow([split, file_path, data.class_names[label]])


def write_skipped_csv(skipped: list[SkippedFile], path: str | os.PathLike) -> None:
    """Writes `path,reason` rows of the files left out."""
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "reason"])
        writer.writerows([item.path, item.reason] for item in skipped)
