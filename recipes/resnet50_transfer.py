"""ResNet50 from ImageNet: train a new head, then fine-tune the last 2 blocks."""

from kerasdl.recipe import transfer_recipe


def recipe():
    return transfer_recipe(
        "resnet50-transfer",
        "resnet50",
        description="ResNet50 from ImageNet: train a new head, then fine-tune the last 2 blocks.",
    )
