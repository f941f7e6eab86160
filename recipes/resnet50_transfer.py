"""ResNet50 from ImageNet: train a new head, then fine-tune it all, layer-wise rates."""

from kerasdl.recipe import transfer_recipe


def recipe():
    return transfer_recipe(
        "resnet50-transfer",
        "resnet50",
        description="ResNet50 from ImageNet: train a new head, then fine-tune it all, layer-wise rates.",
    )
