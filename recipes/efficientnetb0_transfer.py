"""EfficientNetB0 from ImageNet: train a new head, then fine-tune it all, layer-wise rates."""

from kerasdl.recipe import transfer_recipe


def recipe():
    return transfer_recipe(
        "efficientnetb0-transfer",
        "efficientnetb0",
        description="EfficientNetB0 from ImageNet: train a new head, then fine-tune it all, layer-wise rates.",
    )
