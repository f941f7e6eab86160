"""What a recipe builds, in words and (optionally) layer by layer."""


from __future__ import annotations

from kerasdl.backbones.classic import compound_scaling_table, format_compound_table
from kerasdl.backbones.compound import compound_scaling
from kerasdl.backbones.registry import default_image_size
from kerasdl.models.classifier import build_classifier
from kerasdl.models.summary import classifier_summary


def describe_recipe(recipe, *, layers: bool | None = None, num_classes: int = 2) -> str:
    """Describes the network a recipe builds, for `kerasdl show`.

    For compound scaling (`efficientnet_compound`) it gives the table of
    phi = 0..3 with the official EfficientNet each is closest to. It gives
    the layer table and parameter count of the classifier (built with random
    weights for `num_classes` classes) when `layers` is true, or, when
    `layers` is `None`, for recipes that train from scratch.

    Args:
        recipe: A `Recipe`.
        layers: Whether to give the layer table; `None` decides as above.
            Defaults to `None`.
        num_classes: Classes of the classifier summarized. Defaults to `2`.

    Returns:
        The text, empty when there is nothing to add.

    Raises:
        RecipeError: for an unknown backbone or bad options (such as phi).

    Example:
    ```python
    print(describe_recipe(get_recipe("alexnet-scratch")))
    ```
    """
    options = dict(recipe.backbone.options)
    image_size = default_image_size(recipe.backbone.name, options) if recipe.image_size in (None, "auto") \
        else recipe.image_size
    sections = []
    compound = recipe.backbone.name == "efficientnet_compound"
    if compound:
        chosen = options.get("phi", 0)
        compound_scaling(chosen)  # refuse a bad phi before building anything
        rows = compound_scaling_table(sorted({0, 1, 2, 3, chosen}))
        sections.append(format_compound_table(rows, chosen=chosen))
    if layers is None:
        layers = not compound and any(phase.trainable == "scratch" for phase in recipe.phases)
    if layers:
        model = build_classifier(
            recipe.backbone.name, num_classes, weights=None, image_size=image_size,
            dropout=recipe.head.dropout, hidden_units=recipe.head.hidden_units,
        pooling="top" if recipe.head.pooling == "auto" else recipe.head.pooling,
            activation=recipe.head.activation, backbone_options=options,
            trainable=recipe.phases[0].trainable if recipe.phases else "head",
        )
        sections.append(
            f"{recipe.name}: {recipe.backbone.name} at {image_size} px"
            + (" (image_size auto: the data's size decides)" if recipe.image_size == "auto" else "")
            + f", {num_classes} classes\n"
            + classifier_summary(model)
        )
    return "\n\n".join(sections)

