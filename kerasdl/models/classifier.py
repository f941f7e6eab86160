"""Classifiers built on a pretrained backbone, and what is trainable in them.

Every model here is a plain functional `keras.Model`:

    image [0, 255] RGB float ──> preprocessing ──> backbone(training=False)
        ──> avg_pool ──> [head_hidden ──> head_activation] ──> head_dropout
        ──> predictions (softmax probabilities)

(`avg_pool` is left out for a backbone that already ends in a vector, such
as AlexNet's fc7.)

Trainability is a small spec string used by recipes' phases:
- `"head"`: the backbone is frozen, only the new head trains;
- `"all"`: everything trains;
- `"top:N"`: the last N weighted layers of the backbone train;
- `"blocks:K"`: the last K blocks of the backbone train;
- `"scratch"`: the whole network trains as a new one, from random weights.
BatchNormalization layers of the backbone stay frozen in every case but
`"scratch"`, so their moving statistics keep the values learned on ImageNet.
A classifier built with `trainable="scratch"` calls its backbone in training
mode instead (BatchNorm uses batch statistics, dropout is active), as a
network trained from random weights needs, with a BatchNorm momentum of at
most 0.9 so the moving statistics catch up within a short run.
"""


from __future__ import annotations

import re
from typing import Any

import keras
import numpy as np

from kerasdl.backbones.build import build_backbone
from kerasdl.backbones.registry import get_backbone
from kerasdl.errors import RecipeError
from kerasdl.models.activations import get_activation

IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53)
IMAGENET_STD_RGB = (58.395, 57.12, 57.375)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
BACKBONE_LAYER_NAME = "backbone"
SCRATCH_BATCHNORM_MOMENTUM = 0.9
HEAD_LAYER_NAMES = ("avg_pool", "head_hidden", "head_activation", "head_dropout", "predictions")


def preprocessing_layer(mode: str) -> keras.layers.Layer:
    """Returns a built-in Keras layer that scales [0, 255] RGB as `mode` needs.

    Only stock layers are used, so a saved model loads without kerasdl.

    Args:
        mode: `"tf"`, `"torch"`, `"caffe"`, `"lite"` or `"none"`.

    Returns:
        The preprocessing layer, named `"preprocessing"`.
    """
    if mode == "tf":
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocessing")
    if mode == "lite":
        return keras.layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="preprocessing")
    if mode == "torch":
        return keras.layers.Normalization(
            mean=list(IMAGENET_MEAN_RGB),
            variance=[s**2 for s in IMAGENET_STD_RGB],
            name="preprocessing",
        )
    if mode == "caffe":
        # RGB -> BGR and mean subtraction as one frozen 1x1 convolution.
        flip = np.zeros((1, 1, 3, 3), dtype="float32")
        for source, target in [(0, 2), (1, 1), (2, 0)]:
            flip[0, 0, source, target] = 1.0
        bias = -np.array(CAFFE_MEAN_BGR, dtype="float32")
        return keras.layers.Conv2D(
            3, 1, name="preprocessing", trainable=False,
            kernel_initializer=keras.initializers.Constant(flip),
            bias_initializer=keras.initializers.Constant(bias),
        )
    if mode == "none":
        return keras.layers.Identity(name="preprocessing")
    raise ValueError(f"Unknown preprocessing mode {mode!r}.")


def build_classifier(
    backbone: str,
    num_classes: int,
    *,
    weights: str | None = "imagenet",
    image_size: int | None = None,
    dropout: float = 0.2,
    hidden_units: int = 0,
    activation: str = "relu",
    trainable: str = "head",
    backbone_options: dict[str, Any] | None = None,
    name: str | None = None,
    pooling: str = "top",
) -> keras.Model:
    """Builds a transfer-learning classifier: a pretrained backbone, a new head.

    The model takes a batch of RGB images with values in [0, 255] (any float
    or integer dtype; shape `(batch, image_size, image_size, 3)`) and returns
    class probabilities (softmax, float32) of shape `(batch, num_classes)`.
    The backbone is called with `training=False`, so its BatchNormalization
    layers run in inference mode, also while fine-tuning.

    Args:
        backbone: A registered backbone name (see `kerasdl backbones`).
        num_classes: Number of classes, at least 2.
        weights: `"imagenet"`, `"none"`/`None`, or a local weights file.
            Defaults to `"imagenet"`.
        image_size: Square input size. Defaults to the backbone's own size.
        dropout: Dropout rate before the output layer. Defaults to `0.2`.
        hidden_units: Width of an optional hidden dense layer in the head;
            0 means none. Defaults to `0`.
        activation: Activation of the hidden layer. Defaults to `"relu"`.
        trainable: What trains: `"head"`, `"all"`, `"top:N"`, `"blocks:K"`,
            or `"scratch"` (everything, the backbone in training mode).
            Defaults to `"head"`.
        backbone_options: Options such as `{"alpha": 0.35}`. Defaults to `None`.
        name: The model's name. Defaults to `"<backbone>_classifier"`.
        pooling: What the head sees: `"top"`, the backbone's last feature
            map averaged; or `"blocks"`, the averaged outputs of every block
            at the backbone's two coarsest resolutions side by side
            (`coarse_block_outputs`): mid-level texture features besides the
            top's object features, which is what tells a generated image
            from a photo. Defaults to `"top"`.

    Returns:
        A `keras.Model`, not compiled.

    Raises:
        RecipeError: for an unknown backbone, a bad size or class count.
        WeightsError: if the weights cannot be had or do not fit.

    Example:
    ```python
    model = build_classifier("mobilenetv2", 2, weights=None, image_size=96)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images, labels, epochs=1)
    ```
    """
    spec = get_backbone(backbone)
    image_size = image_size or spec.default_size
    if num_classes < 2:
        raise RecipeError(
            f"Expected at least 2 classes. Received: {num_classes}. "
            "Add a folder of images for each class."
        )
    if image_size < spec.min_size:
        raise RecipeError(
            f"Expected an image size of at least {spec.min_size} px for {backbone}. "
            f"Received: image_size={image_size}. Pass a larger image size.",
            argument="image_size",
        )
    if not 0.0 <= dropout < 1.0:
        raise RecipeError(f"Expected head dropout in [0, 1). Received: {dropout}.")
    if pooling not in POOLINGS:
        raise RecipeError(f"Expected head.pooling from: {', '.join(POOLINGS)}. Received: {pooling!r}.")
    base = build_backbone(
        backbone, image_size=image_size, weights=weights, options=backbone_options
    )
    base.name = BACKBONE_LAYER_NAME

    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = preprocessing_layer(spec.preprocessing)(inputs)
    # A pretrained backbone runs in inference mode, also while fine-tuning;
    # one trained from scratch must learn its BatchNorm statistics.
    scratch = parse_trainable(trainable)[0] == "scratch"
    if scratch:
        _speed_up_batchnorm_statistics(base)
    tapped = coarse_block_outputs(base) if pooling == "blocks" and len(base.output.shape) == 4 else []
    tapped = tapped if len(tapped) > 1 else []  # one block: the top feature map alone
    if tapped:  # the same layers and weights, with the blocks' outputs as outputs too
        base = keras.Model(base.inputs, [base.get_layer(name).output for name in tapped], name=base.name)
    x = base(x) if scratch else base(x, training=False)
    if tapped:  # pooling="blocks": each block's map averaged, side by side
        x = keras.layers.Concatenate(name="avg_pool")([
            keras.layers.GlobalAveragePooling2D(name=f"pool_{name}")(t) for name, t in zip(tapped, x)])
    elif len(x.shape) == 4:  # a feature map; a backbone ending in a vector needs no pooling
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if hidden_units:
        x = _hidden_layer(x, hidden_units, activation)
    x = _dropout_layer(activation if hidden_units else "relu", dropout)(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="predictions"
    )(x)
    model = keras.Model(inputs, outputs, name=name or f"{backbone}_classifier")
    set_trainable(model, trainable)
    return model


def _speed_up_batchnorm_statistics(base: keras.Model) -> None:
    # Keras Applications' BatchNorm momentum (0.99; MobileNetV2 0.999) moves
    # the moving statistics so slowly that after the few hundred steps of a
    # small from-scratch run they are still near their initial values, and
    # the model predicts garbage in inference mode. 0.9 (PyTorch's default)
    # converges in tens of steps.
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = min(layer.momentum, SCRATCH_BATCHNORM_MOMENTUM)


POOLINGS = ("top", "blocks")


def coarse_block_outputs(base: keras.Model) -> list[str]:
    """The layers that end the backbone's blocks at its two coarsest resolutions, last one included.

    Blocks are found by name (`block_name`); a block's output is its last
    layer. For EfficientNet-Lite0 at 256 px these are the ends of blocks
    4a to 7a (16 and 8 px maps) and the backbone's own output; for ResNet50,
    `conv4_block1_out` to `conv5_block3_out`.

    Args:
        base: A backbone with a 4-D feature map output.

    Returns:
        Layer names in network order; the last is the backbone's output layer.
    """
    ends: dict[str, keras.layers.Layer] = {}
    for layer in base.layers:
        block = block_name(layer.name)
        if block != layer.name and len(getattr(layer.output, "shape", ())) == 4:
            ends.pop(block, None)
            ends[block] = layer  # the block's latest layer so far
    sizes = sorted({layer.output.shape[1] for layer in ends.values()})
    coarse = [layer.name for layer in ends.values() if layer.output.shape[1] in sizes[:2]]
    last = base.layers[-1].name
    return [name for name in coarse if name != last] + [last]


def _hidden_layer(x, units: int, activation: str):
    # SELU only self-normalizes with LeCun-normal initial weights.
    initializer = "lecun_normal" if activation == "selu" else "glorot_uniform"
    x = keras.layers.Dense(units, kernel_initializer=initializer, name="head_hidden")(x)
    return get_activation(activation, name="head_activation")(x)


def _dropout_layer(activation: str, rate: float) -> keras.layers.Layer:
    # AlphaDropout keeps SELU's mean and variance; plain dropout would not.
    if activation == "selu":
        return keras.layers.AlphaDropout(rate, name="head_dropout")
    return keras.layers.Dropout(rate, name="head_dropout")


def get_backbone_layer(model: keras.Model) -> keras.Model:
    """Returns the nested backbone model of a classifier built here."""
    try:
        return model.get_layer(BACKBONE_LAYER_NAME)
    except ValueError:
        raise RecipeError(
            f"Expected a kerasdl classifier with a nested {BACKBONE_LAYER_NAME!r} model. "
            f"Received: {model.name}, which has none. Build it with build_classifier()."
        ) from None


_TRAINABLE_SPEC = re.compile(r"^(head|all|none|scratch|top:\d+|blocks:\d+)$")


def parse_trainable(spec: str) -> tuple[str, int]:
    """Splits a trainable spec into (kind, count); raises `RecipeError` if bad."""
    spec = str(spec).strip().lower()
    if not _TRAINABLE_SPEC.match(spec):
        raise RecipeError(
            "Expected trainable to be head, all, top:N (layers), blocks:K or scratch. "
            f"Received: {spec!r}."
        )
    kind, _, count = spec.partition(":")
    return ("head" if kind == "none" else kind), int(count or 0)


def block_name(layer_name: str) -> str:
    """The block a backbone layer belongs to, from Keras Applications' names.

    `conv5_block3_2_conv` -> `conv5_block3`, `block_16_project` -> `block_16`,
    `block7a_se_excite` -> `block7a`, `conv_dw_13_relu` -> `conv_dw_13`,
    `convnext_tiny_stage_3_block_2_pointwise_conv_1` -> `..._stage_3_block_2`.
    """
    match = re.match(r"^(.*?stage_\d+_block_\d+|conv\d+_block\d+|.*?\d+[a-z]?)(?:_|$)", layer_name)
    return match.group(1) if match else layer_name


def set_trainable(model: keras.Model, spec: str = "head") -> None:
    """Sets which layers of a classifier train; BatchNorm stays frozen.

    Recompile the model after calling this.

    Args:
        model: A classifier from `build_classifier`.
        spec: `"head"`, `"all"`, `"top:N"`, `"blocks:K"` or `"scratch"`
            (everything, BatchNorm included). Defaults to `"head"`.

    Raises:
        RecipeError: if the spec is malformed.

    Example:
    ```python
    set_trainable(model, "blocks:2")
    model.compile(keras.optimizers.Adam(1e-5), "sparse_categorical_crossentropy")
    ```
    """
    kind, count = parse_trainable(spec)
    base = get_backbone_layer(model)
    for layer in model.layers:
        if layer is not base and layer.name != "preprocessing":
            layer.trainable = True
    if kind == "head":
        base.trainable = False
        return
    base.trainable = True
    if kind == "scratch":
        for layer in base.layers:
            layer.trainable = True
        return
    layers = [layer for layer in base.layers if layer.weights]
    if kind == "top":
        chosen = set(id(layer) for layer in layers[-count:]) if count else set()
    elif kind == "blocks":
        blocks: list[str] = []
        for layer in layers:
            key = block_name(layer.name)
            if not blocks or blocks[-1] != key:
                blocks.append(key)
        wanted = set(blocks[-count:]) if count else set()
        chosen = {id(layer) for layer in layers if block_name(layer.name) in wanted}
    else:
        chosen = {id(layer) for layer in layers}
    for layer in base.layers:
        layer.trainable = id(layer) in chosen and not isinstance(
            layer, keras.layers.BatchNormalization
        )


def count_parameters(model: keras.Model) -> dict[str, int]:
    """Returns `{"trainable": n, "non_trainable": m, "total": n + m}`."""
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    frozen = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return {"trainable": trainable, "non_trainable": frozen, "total": trainable + frozen}

