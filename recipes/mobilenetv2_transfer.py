"""MobileNetV2 from ImageNet, phone-sized: new head, then fine-tune the last 2 blocks."""

from kerasdl.recipe import transfer_recipe


def recipe():
    return transfer_recipe(
        "mobilenetv2-transfer",
        "mobilenetv2",
        description="MobileNetV2 from ImageNet, phone-sized: new head, then fine-tune the last 2 blocks.",
    )
