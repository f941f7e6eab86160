"""MobileNetV2 from ImageNet, phone-sized: new head, then fine-tune it all, layer-wise rates."""

from kerasdl.recipe import transfer_recipe


def recipe():
    return transfer_recipe(
        "mobilenetv2-transfer",
        "mobilenetv2",
        description="MobileNetV2 from ImageNet, phone-sized: new head, then fine-tune it all, layer-wise rates.",
    )
