"""ConvNeXt-Tiny from ImageNet: new head, then fine-tune it all, layer-wise rates."""

from kerasdl.recipe import transfer_recipe


def recipe():
    return transfer_recipe(
        "convnext-tiny-transfer",
        "convnext_tiny",
        description="ConvNeXt-Tiny from ImageNet: new head, then fine-tune it all, layer-wise rates.",
    )
