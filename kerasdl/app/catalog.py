"""What is installed, for `kerasdl list` and `kerasdl backbones`: the recipes' sizes, the backbones.

Imports no Keras model code, so listing stays fast and TensorFlow-free.
"""


from __future__ import annotations

from kerasdl.backbones.registry import BACKBONES, BackboneSpec, default_image_size
from kerasdl.recipe import Recipe


def recipe_image_size(recipe: Recipe) -> int | str:
    """The input size a recipe trains at: its own, else its backbone's default (or `"auto"`).

    Args:
        recipe: A `Recipe`.

    Returns:
        Pixels, or `"auto"` (sized from the images when the run starts).

    Example:
    ```python
    recipe_image_size(get_recipe("mobilenetv2-transfer"))  # 224
    ```
    """
    return recipe.image_size or default_image_size(recipe.backbone.name, recipe.backbone.options)


def backbone_specs() -> list[BackboneSpec]:
    """Every registered backbone's record, sorted by name.

    Returns:
        The `BackboneSpec`s (name, default size, preprocessing, options).
    """
    return sorted(BACKBONES.values(), key=lambda spec: spec.name)
