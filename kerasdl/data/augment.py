"""Named augmentation presets, built from Keras's own preprocessing layers.

Augmentation runs inside tf.data on the training split only, and never goes
into the saved model (a model holding random layers will not convert to a
builtins-only TFLite file).

`mixup` and `cutmix` blend pairs of images of a batch and their labels, so
they work on `(images, one-hot labels)` batches: `kerasdl.data` then yields
one-hot labels and training uses a categorical cross-entropy loss.
"""


from __future__ import annotations

from collections.abc import Callable

import keras

from kerasdl._util.registry import register
from kerasdl.errors import RecipeError

AUGMENTATIONS: dict[str, Callable[[int], keras.layers.Layer | None]] = {}


def register_augmentation(name: str):
    """Registers a preset factory `factory(seed) -> layer or None` (a decorator)."""

    def decorator(factory):
        register(AUGMENTATIONS, "augmentation", name, factory)
        return factory

    return decorator


@register_augmentation("none")
def _none(seed: int):
    return None


class LabelMixingAugmentation:
    """Per-image augmentation, then MixUp or CutMix across the batch.

    Called inside tf.data on `(images, one-hot labels)` batches; returns
    the mixed `(images, labels)`.

    Args:
        mixer: A `keras.layers.MixUp` or `keras.layers.CutMix`.
        per_image: A layer applied to the images first, or `None`.
            Defaults to `None`.
    """

    mixes_labels = True

    def __init__(self, mixer: keras.layers.Layer, per_image: keras.layers.Layer | None = None):
        self.mixer = mixer
        self.per_image = per_image
        self.name = f"{per_image.name}+{mixer.name}" if per_image is not None else mixer.name

    def __call__(self, images, labels, training: bool = True):
        if self.per_image is not None:
            images = self.per_image(images, training=training)
        mixed = self.mixer({"images": images, "labels": labels}, training=training)
        return mixed["images"], mixed["labels"]


@register_augmentation("flip")
def _flip(seed: int):
    # Mirroring moves pixels without resampling them, so fine detail (a
    # generated image's traces, texture, print) is kept exactly.
    return keras.layers.RandomFlip("horizontal", seed=seed, name="augment_flip")


@register_augmentation("light")
def _light(seed: int):
    return keras.layers.Pipeline(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.05, seed=seed),
            keras.layers.RandomZoom(0.1, seed=seed),
            keras.layers.RandomTranslation(0.05, 0.05, seed=seed),
        ],
        name="augment_light",
    )


@register_augmentation("strong")
def _strong(seed: int):
    return keras.layers.Pipeline(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandAugment(value_range=(0, 255), seed=seed),
            keras.layers.RandomColorJitter(
                value_range=(0, 255), brightness_factor=0.2, contrast_factor=0.2,
                saturation_factor=(0.4, 0.6), hue_factor=0.05, seed=seed,
            ),
            keras.layers.RandomErasing(factor=0.5, value_range=(0, 255), seed=seed),
        ],
        name="augment_strong",
    )


@register_augmentation("mixup")
def _mixup(seed: int):
    return LabelMixingAugmentation(keras.layers.MixUp(alpha=0.2, seed=seed), _light(seed))


@register_augmentation("cutmix")
def _cutmix(seed: int):
    return LabelMixingAugmentation(keras.layers.CutMix(factor=1.0, seed=seed), _light(seed))


def get_augmentation(name: str, *, seed: int = 0):
    """Returns the augmentation of a preset, or `None` for `"none"`.

    Args:
        name: A preset name: `none`, `flip` (horizontal flip only: no
            pixel is resampled), `light` (flip, small rotation, zoom,
            translation), `strong` (RandAugment, color jitter, random
            erasing), `mixup` or `cutmix` (light, then MixUp/CutMix).
        seed: Seed of the random layers. Defaults to `0`.

    Returns:
        A layer taking a batch of [0, 255] images; for `mixup`/`cutmix` a
        `LabelMixingAugmentation` taking `(images, one-hot labels)`; or
        `None`.

    Raises:
        RecipeError: for an unknown name; the message lists the presets.
    """
    check_augmentation_name(name)
    return AUGMENTATIONS[name](seed)


def check_augmentation_name(name: str, *, key: str = "augment") -> None:
    """Checks that `name` is a registered preset, without building it.

    Args:
        name: The preset name to check.
        key: The recipe key that holds it, named in the error. Defaults to
            `"augment"`.

    Raises:
        RecipeError: for an unknown name; the message lists the presets.
    """
    if name not in AUGMENTATIONS:
        raise RecipeError(
            f"Expected an augmentation preset from: {', '.join(AUGMENTATIONS)}. "
            f"Received: {key}={name!r}. Set {key} to one of them.",
            argument="augment" if key == "augment" else None,
        )

