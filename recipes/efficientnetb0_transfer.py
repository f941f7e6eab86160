"""EfficientNetB0 from ImageNet: train a new head, then fine-tune the last 2 blocks."""

from kerasdl.recipe import transfer_recipe


def recipe():
    return transfer_recipe(
        "efficientnetb0-transfer",
        "efficientnetb0",
        description="EfficientNetB0 from ImageNet: train a new head, then fine-tune the last 2 blocks.",
    )
