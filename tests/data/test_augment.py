"""Augmentation presets, label mixing, and the loss that follows the labels."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasdl.data.augment import AUGMENTATIONS, LabelMixingAugmentation, get_augmentation
from kerasdl.data.load import load_data
from kerasdl.errors import RecipeError
from kerasdl.recipe import Phase
from kerasdl.training.engine import compile_for_phase


def test_presets_are_registered_and_unknown_names_list_them():
    assert {"none", "light", "strong", "mixup", "cutmix"} <= set(AUGMENTATIONS)
    assert get_augmentation("none") is None
    with pytest.raises(RecipeError, match="none, flip, light, strong, mixup, cutmix.*Received: augment='heavy'"):
        get_augmentation("heavy")


@pytest.mark.parametrize("name", ["light", "strong"])
def test_image_presets_run_in_tf_data_on_the_training_split_only(image_folder, name):
    augment = get_augmentation(name, seed=1)
    assert isinstance(augment, keras.layers.Layer)
    plain = load_data(image_folder, image_size=16, batch_size=4, seed=0)
    data = load_data(image_folder, image_size=16, batch_size=4, seed=0, augment=augment)
    images, labels = next(iter(data.train))
    assert images.shape == (4, 16, 16, 3) and images.dtype == tf.float32 and labels.shape == (4,)
    assert float(tf.reduce_min(images)) >= -1e-3 and float(tf.reduce_max(images)) <= 255.5
    # Validation is never augmented: identical with and without the preset.
    np.testing.assert_array_equal(np.concatenate([x for x, _ in data.val]),
                                  np.concatenate([x for x, _ in plain.val]))
    augmented = np.concatenate([x for x, _ in data.train])
    unaugmented = np.concatenate([x for x, _ in plain.train])
    assert augmented.shape == unaugmented.shape and not np.allclose(
        np.sort(augmented.ravel()), np.sort(unaugmented.ravel()))


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_mixing_presets_yield_mixed_one_hot_labels(image_folder, name):
    augment = get_augmentation(name, seed=3)
    assert isinstance(augment, LabelMixingAugmentation) and augment.mixes_labels
    data = load_data(image_folder, image_size=16, batch_size=6, seed=0, augment=augment)
    assert data.one_hot
    labels = np.concatenate([y for _, y in data.train])
    assert labels.shape == (len(data.files["train"]), 2)
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-5)
    assert ((labels > 1e-3) & (labels < 1 - 1e-3)).any()  # some labels are mixtures
    _, val_labels = next(iter(data.validation_data()))
    assert val_labels.shape[-1] == 2  # validation in the same format for model.fit
    _, sparse = next(iter(data.val))
    assert sparse.shape.rank == 1  # evaluation keeps class indices


def tiny_model(num_classes=2, size=16):
    """A classifier shaped like kerasdl's: a nested `backbone` model and a head."""
    backbone = keras.Sequential(
        [keras.Input((size, size, 3)), keras.layers.Rescaling(1 / 255),
         keras.layers.Conv2D(4, 3, activation="relu")], name="backbone")
    inputs = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))


@pytest.mark.parametrize("one_hot, smoothing, loss_class", [
    (False, 0.0, keras.losses.SparseCategoricalCrossentropy),
    (True, 0.0, keras.losses.CategoricalCrossentropy),
    (False, 0.1, keras.losses.CategoricalCrossentropy),  # training makes the labels one-hot
    (True, 0.1, keras.losses.CategoricalCrossentropy),
])
def test_loss_follows_the_label_format(one_hot, smoothing, loss_class):
    model = tiny_model()
    phase = Phase(trainable="all", label_smoothing=smoothing)
    compile_for_phase(model, phase, 4, one_hot_labels=one_hot)
    assert isinstance(model.loss, loss_class)
    if loss_class is keras.losses.CategoricalCrossentropy:
        assert model.loss.label_smoothing == pytest.approx(smoothing)


def test_fit_with_mixup_and_class_weights(image_folder):
    from kerasdl.data.splits import balanced_class_weights

    data = load_data(image_folder, image_size=16, batch_size=4, augment=get_augmentation("cutmix"))
    model = tiny_model()
    compile_for_phase(model, Phase(trainable="all"), 4, one_hot_labels=data.one_hot)
    weights = balanced_class_weights(data.files["train"].class_counts(2))
    history = model.fit(data.train, validation_data=data.validation_data(), epochs=1, verbose=0,
                        class_weight=weights)
    assert np.isfinite(history.history["loss"][0]) and "val_accuracy" in history.history
