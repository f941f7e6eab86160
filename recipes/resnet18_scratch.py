"""ResNet18 (basic blocks) from scratch, or from a local weights file with --weights FILE."""

from kerasdl.recipe import scratch_recipe


def recipe():
    return scratch_recipe(
        "resnet18-scratch",
        "resnet18",
        description="ResNet18 (basic blocks) from scratch, or --weights FILE; BatchNorm learns.",
    )
