"""MobileNetV3-Small from ImageNet, the smallest: new head, then fine-tune it all, layer-wise rates."""

from kerasdl.recipe import transfer_recipe


def recipe():
    return transfer_recipe(
        "mobilenetv3small-transfer",
        "mobilenetv3small",
        description="MobileNetV3-Small from ImageNet, the smallest: new head, then fine-tune it all, layer-wise rates.",
    )
