"""Feature caching: train a frozen backbone's head on features computed once.

While the backbone is frozen (a phase with `trainable="head"`) and the
training images are not changed by augmentation, the output of
preprocessing -> backbone -> `avg_pool` is the same for an image in every
epoch. So it is computed once per image (training and validation splits),
and the head layers train on those features alone: a tiny model that runs in
a fraction of the time of the full one.

The head model here reuses the classifier's own head layer objects, so its
weights are the classifier's weights: training it updates the end-to-end
`keras.Model` in place, and what is saved stays the usual classifier.
Dropout still draws a fresh mask every step (from the same layer), so the
maths per step is the same as `model.fit` on the full frozen model.
"""


from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kerasdl.models.classifier import HEAD_LAYER_NAMES

MEMORY_FRACTION = 0.25


@dataclasses.dataclass
class CachedFeatures:
    """The backbone's pooled features of one split, with the labels.

    Attributes:
        features: `(num_images, feature_dim)` float32 array (in memory, or a
            `numpy.memmap` of a `.npy` file when it does not fit).
        labels: `(num_images,)` int32 labels, or one-hot float32 labels.
        on_disk: Whether `features` is a memory-mapped file.
    """

    features: np.ndarray
    labels: np.ndarray
    on_disk: bool = False


@dataclasses.dataclass
class BackboneFeatures:
    """Both splits' features, computed already, and the extractor weights they came from.

    `train` can fit a frozen phase on them instead of computing its own (the
    head-pooling probe hands its features to the head phase this way), but
    only while `weights_digest` is that of the phase's own extractor: the same
    backbone weights give the same features, other weights do not.

    Attributes:
        train: The training images' features, in the order of one pass over
            the un-augmented training split.
        val: The validation images' features.
        weights_digest: `weights_digest(extractor)` of the extractor that
            computed them.
    """

    train: CachedFeatures
    val: CachedFeatures
    weights_digest: str

    def columns(self, columns: slice) -> BackboneFeatures:
        """The same features cut to `columns` (the top map's slice of the pooled blocks, say)."""
        return BackboneFeatures(
            CachedFeatures(np.ascontiguousarray(self.train.features[:, columns]), self.train.labels),
            CachedFeatures(np.ascontiguousarray(self.val.features[:, columns]), self.val.labels),
            self.weights_digest,
        )


def weights_digest(extractor: keras.Model) -> str:
    """A digest of an extractor's weights: equal digests, equal features for an image."""
    digest = hashlib.blake2b(digest_size=16)
    for weight in extractor.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight.value)).tobytes())
    return digest.hexdigest()


def feature_cache_applies(trainable: str, pixel_augmentation: bool) -> bool:
    """Whether a phase can train on cached features.

    Args:
        trainable: The phase's trainable spec.
        pixel_augmentation: Whether the training images pass through an
            augmentation that changes pixels.

    Returns:
        `True` for a frozen backbone (`"head"`/`"none"`) without augmentation.
    """
    return str(trainable).strip().lower() in ("head", "none") and not pixel_augmentation


def build_feature_extractor(model: keras.Model) -> keras.Model:
    """Returns the part of a classifier from its input to `avg_pool`'s output."""
    return keras.Model(model.inputs, model.get_layer("avg_pool").output, name="feature_extractor")


def build_head_model(model: keras.Model) -> keras.Model:
    """Returns a model of the classifier's head layers on a feature input.

    The layers are the classifier's own objects (shared weights): fitting this
    model trains the classifier's head.

    Args:
        model: A classifier from `build_classifier`.

    Returns:
        A `keras.Model` from `(feature_dim,)` features to class probabilities.
    """
    pooled = model.get_layer("avg_pool").output
    inputs = keras.Input(tuple(pooled.shape[1:]), name="features")
    x = inputs
    for name in HEAD_LAYER_NAMES[1:]:
        try:
            layer = model.get_layer(name)
        except ValueError:
            continue
        x = layer(x)
    return keras.Model(inputs, x, name="head")


def _fits_in_memory(num_bytes: int) -> bool:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    return num_bytes < MEMORY_FRACTION * total


def extract_features(
    extractor: keras.Model,
    dataset: tf.data.Dataset,
    *,
    num_images: int,
    cache_dir: str | os.PathLike | None = None,
    name: str = "features",
    in_memory: bool | None = None,
) -> CachedFeatures:
    """Runs the extractor once over a dataset of `(images, labels)` batches.

    Features stay in memory when they take less than a quarter of the
    machine's memory; otherwise they go to `<cache_dir>/<name>.npy`,
    memory-mapped.

    Args:
        extractor: From `build_feature_extractor`.
        dataset: Batches of `(images, labels)`; any order (labels travel with
            their images).
        num_images: Images in the dataset, to size the arrays.
        cache_dir: Folder for the on-disk array. Defaults to `None` (a
            temporary folder).
        name: File name stem of the on-disk array. Defaults to `"features"`.
        in_memory: Force memory (`True`) or disk (`False`). Defaults to
            `None` (decide by size).

    Returns:
        `CachedFeatures`.
    """
    feature_dim = int(np.prod(extractor.output.shape[1:]))
    if in_memory is None:
        in_memory = _fits_in_memory(num_images * feature_dim * 4)
    features: np.ndarray
    if in_memory:
        features = np.empty((num_images, feature_dim), dtype=np.float32)
    else:
        folder = Path(cache_dir or tempfile.mkdtemp(prefix="kerasdl_features_"))
        folder.mkdir(parents=True, exist_ok=True)
        features = np.lib.format.open_memmap(
            folder / f"{name}.npy", mode="w+", dtype=np.float32, shape=(num_images, feature_dim)
        )
    labels: list[np.ndarray] = []
    start = 0
    for images, batch_labels in dataset.as_numpy_iterator():  # numpy feeds any backend
        batch = np.asarray(extractor.predict_on_batch(images), dtype=np.float32)
        features[start:start + len(batch)] = batch.reshape(len(batch), -1)
        labels.append(np.asarray(batch_labels))
        start += len(batch)
    if start != num_images:
        features = features[:start]
    if not in_memory:
        features.flush()
    return CachedFeatures(features, np.concatenate(labels) if labels else np.empty(0), not in_memory)


def features_dataset(
    cached: CachedFeatures, *, batch_size: int, shuffle: bool = False, seed: int = 0
) -> tf.data.Dataset:
    """Batches of `(features, labels)` from cached features.

    In-memory features are sliced directly; memory-mapped ones are read a
    batch at a time, so they never need to fit in memory.

    Args:
        cached: From `extract_features`.
        batch_size: Batch size (the same as the image pipeline's, so the
            steps per epoch and the learning-rate schedule are the same).
        shuffle: Reshuffle every epoch. Defaults to `False`.
        seed: Shuffle seed. Defaults to `0`.

    Returns:
        A `tf.data.Dataset`.
    """
    count = len(cached.labels)
    if not cached.on_disk:
        dataset = tf.data.Dataset.from_tensor_slices((cached.features, cached.labels))
        if shuffle:
            dataset = dataset.shuffle(max(count, 1), seed=seed, reshuffle_each_iteration=True)
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    features, labels = cached.features, cached.labels

    def read(indices):
        order = np.sort(indices)
        return features[order], labels[order]

    dataset = tf.data.Dataset.range(count)
    if shuffle:
        dataset = dataset.shuffle(max(count, 1), seed=seed, reshuffle_each_iteration=True)
    feature_dim = features.shape[1]
    label_dtype = tf.as_dtype(labels.dtype)

    def load(indices):
        x, y = tf.numpy_function(read, [indices], (tf.float32, label_dtype))
        x.set_shape([None, feature_dim])
        y.set_shape([None, *labels.shape[1:]])
        return x, y

    return dataset.batch(batch_size).map(load).prefetch(tf.data.AUTOTUNE)

