"""ConvNeXt-Tiny from ImageNet: new head, then fine-tune the last blocks at a low rate."""

from kerasdl.recipe import transfer_recipe


def recipe():
    return transfer_recipe(
        "convnext-tiny-transfer",
        "convnext_tiny",
        description="ConvNeXt-Tiny from ImageNet: new head, then fine-tune the last blocks at a low rate.",
    )
