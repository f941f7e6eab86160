"""Named augmentation presets, built from Keras's own preprocessing layers.

Augmentation runs inside tf.data on the training split only, and never goes
into the saved model (a model holding random layers will not convert to a
builtins-only TFLite file).
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from kerasdl.errors import RecipeError

AUGMENTATIONS: dict[str, Callable[[int], keras.layers.Layer | None]] = {}


def register_augmentation(name: str):
    """Registers a preset factory `factory(seed) -> layer or None` (a decorator)."""

    def decorator(factory):
        AUGMENTATIONS[name] = factory
        return factory

    return decorator


@register_augmentation("none")
def _none(seed: int):
    return None


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


def get_augmentation(name: str, *, seed: int = 0) -> keras.layers.Layer | None:
    """Returns the augmentation layer of a preset, or `None` for `"none"`.

    Args:
        name: A preset name (`none`, `light`, `strong`, ...).
        seed: Seed of the random layers. Defaults to `0`.

    Returns:
        A layer taking a batch of [0, 255] images, or `None`.

    Raises:
        RecipeError: for an unknown name; the message lists the presets.
    """
    if name not in AUGMENTATIONS:
        raise RecipeError(
            f"Expected an augmentation preset from: {', '.join(AUGMENTATIONS)}. "
            f"Received: {name!r}."
        )
    return AUGMENTATIONS[name](seed)
