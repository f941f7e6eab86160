"""Image sources -> train/val/test `tf.data.Dataset`s and class names.

A source (the SRC of every command) is one of:
- a class-folder tree, `DIR/<class>/*.jpg`, optionally split as
  `DIR/train/<class>/`, `DIR/val/<class>/`, `DIR/test/<class>/`;
- `csv:FILE[,val=FILE][,test=FILE]`: CSV/TSV label files of image paths and
  labels (see `kerasdl.data.sources`);
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

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps

from kerasdl.data.types import ImageFiles

MEMORY_CACHE_FRACTION = 0.25
# Decoded images a training split reshuffles among after the cache.
SHUFFLE_BUFFER = 1024


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

