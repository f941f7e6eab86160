"""A recipe file for the training tests: a tiny CNN backbone, random weights.

Keras Applications' networks built with random weights give near-zero
features at 32 px (BatchNorm in inference mode), so nothing learns; this
two-block CNN gives features that carry the class, and trains in seconds.
It is also a recipe file for `kerasdl run tests/support/training_tiny_recipe.py`.
"""

import keras

from kerasdl.backbones.registry import BACKBONES, register_backbone
from kerasdl.recipe import HeadConfig, transfer_recipe

NAME = "tiny_cnn"


def tiny_cnn(include_top=False, weights=None, input_shape=(32, 32, 3), **options):
    inputs = keras.Input(input_shape)
    x = inputs
    for block, filters in ((1, 8), (2, 16)):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", name=f"block_{block}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block_{block}_bn")(x)
        x = keras.layers.ReLU(name=f"block_{block}_relu")(x)
    return keras.Model(inputs, x, name=NAME)


if NAME not in BACKBONES:
    register_backbone(NAME, default_size=32, preprocessing="tf", min_size=16)(tiny_cnn)


def recipe():
    built = transfer_recipe(
        "tiny-cnn", NAME, description="tests", image_size=24, head_epochs=2, fine_tune_epochs=3,
        batch_size=4, augment="none", fine_tune_trainable="blocks:1", head_learning_rate=1e-2,
        head=HeadConfig(pooling="top"),  # the tests of head.pooling="auto" set it
    )
    built.backbone.weights = None
    built.export.formats = []
    built.phases[1].early_stopping = 0  # the resume tests count every epoch of both phases
    return built
