"""EfficientNet by compound scaling: --set backbone.phi=N scales B0's depth, width and resolution."""

from kerasdl.recipe import scratch_recipe


def recipe():
    return scratch_recipe(
        "efficientnet-compound",
        "efficientnet_compound",
        description="EfficientNet-B0 x phi: depth 1.2^phi, width 1.1^phi, size 1.15^phi (--set backbone.phi=N).",
        backbone_options={"phi": 0},
    )
