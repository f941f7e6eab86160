"""The course's classic networks, built from Keras layers and registered as backbones.

- `alexnet`: AlexNet as Krizhevsky, Sutskever and Hinton (2012) describe
  it: five convolutional layers (max pooling after the 1st, 2nd and 5th),
  then fully connected layers with ReLU and dropout. 227 px by default; for
  smaller images the first convolution's kernel and stride shrink in
  proportion, so the network still fits (down to 32 px).
- `resnet18`, `resnet34`: ResNet (He et al. 2015) with basic blocks (two
  3x3 convolutions and an identity shortcut), named like Keras
  Applications' ResNet50 (`conv2_block1_1_conv`, ...).
- `efficientnet_compound`: EfficientNet-B0 scaled by the paper's compound
  rule with coefficient `phi`: depth 1.2^phi, width 1.1^phi, resolution
  1.15^phi (224 px at phi=0), built by Keras's own EfficientNet builder.

Keras has no ImageNet weights for these, so they train from scratch
(`weights=None`) or load a local weights file; `weights="imagenet"` is
refused with one line (see `kerasdl.backbones.weights.check_weights_available`).

Example:
```python
from kerasdl import build_classifier
model = build_classifier("alexnet", 2, weights=None, image_size=64, trainable="scratch")
```
"""


from __future__ import annotations

import math
from typing import Any

import keras

from kerasdl.backbones.compound import (
    OFFICIAL_EFFICIENTNETS,
    compound_scaling,
)
from kerasdl.errors import RecipeError

ALEXNET_SIZE = 227
# (filters, kernel, max pooling after it) of the five convolutions of the 2012 paper.
ALEXNET_CONVOLUTIONS = ((96, 11, True), (256, 5, True), (384, 3, False), (384, 3, False), (256, 3, True))
RESNET_BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
RESNET_FILTERS = (64, 128, 256, 512)



def _refuse_imagenet(weights, name: str) -> None:
    # build_backbone checks this first with a fuller message; this guards direct calls.
    if weights == "imagenet":
        raise RecipeError(
            f"Expected weights=None or a file for {name}. Received: 'imagenet', which Keras does "
            "not have for it. Train from scratch or load a local weights file."
        )


def _input_size(input_shape, default: int) -> tuple[int, int, int]:
    return tuple(input_shape) if input_shape is not None else (default, default, 3)


# ------------------------------------------------------------------- AlexNet


def alexnet_first_convolution(image_size: int) -> tuple[int, int]:
    """Returns the (kernel, stride) of AlexNet's first convolution at a size.

    At 227 px it is the paper's 11x11 with stride 4; both shrink in
    proportion to the image (kernel kept odd, at least 3; stride at least 1).

    Args:
        image_size: The square input size.

    Returns:
        `(kernel, stride)`.
    """
    scale = image_size / ALEXNET_SIZE
    stride = max(1, round(4 * scale))
    kernel = max(3, round(11 * scale) | 1)
    return kernel, stride


def alexnet(
    *,
    include_top: bool = False,
    weights: str | None = None,
    input_shape: tuple[int, int, int] | None = None,
    classes: int = 1000,
    fc_units: int = 4096,
    dropout: float = 0.5,
    name: str = "alexnet",
) -> keras.Model:
    """Builds AlexNet (2012) from Keras layers.

    conv1 96@11x11/4 - maxpool 3/2 - conv2 256@5x5 - maxpool 3/2 - conv3
    384@3x3 - conv4 384@3x3 - conv5 256@3x3 - maxpool 3/2 - fc6 - dropout -
    fc7 [- dropout - fc8 softmax with `include_top`]. Every layer uses ReLU.
    As in later re-implementations, the two-GPU split is merged into one
    tower and local response normalization is left out. Without the top the
    model ends at fc7's output, a vector: a kerasdl classifier adds the
    dropout and the new output layer (fc8) as its head.

    Args:
        include_top: Add dropout and the `classes`-way softmax layer (fc8).
            Defaults to `False`.
        weights: `None`, or a local weights file path (loaded by the
            caller); `"imagenet"` is refused. Defaults to `None`.
        input_shape: `(size, size, 3)`. Defaults to `None` (227 px).
        classes: Output classes with `include_top`. Defaults to `1000`.
        fc_units: Width of fc6 and fc7. Defaults to `4096`.
        dropout: Dropout rate after fc6 (and fc7 with the top).
            Defaults to `0.5`.
        name: The model's name. Defaults to `"alexnet"`.

    Returns:
        A `keras.Model` from preprocessed images to fc7 features (or
        class probabilities with `include_top`).

    Raises:
        RecipeError: for `weights="imagenet"` or an image too small.

    Example:
    ```python
    model = alexnet(input_shape=(227, 227, 3), include_top=True)  # 62.4M parameters
    ```
    """
    _refuse_imagenet(weights, "alexnet")
    shape = _input_size(input_shape, ALEXNET_SIZE)
    kernel, stride = alexnet_first_convolution(min(shape[0], shape[1]))
    inputs = keras.Input(shape, name="input")
    x = inputs
    for index, (filters, size, pooled) in enumerate(ALEXNET_CONVOLUTIONS, start=1):
        if index == 1:
            x = keras.layers.Conv2D(filters, kernel, strides=stride, activation="relu", name="conv1")(x)
        else:
            x = keras.layers.Conv2D(filters, size, padding="same", activation="relu", name=f"conv{index}")(x)
        if pooled:
            if min(x.shape[1], x.shape[2]) < 3:
                raise RecipeError(
                    f"Expected a larger image for alexnet: pool{index} needs a feature map of 3 px or "
                    f"more. Received: {shape[0]}x{shape[1]} px, which leaves {min(x.shape[1:3])} px. "
                    "Pass image_size=32 or larger.",
                    argument="image_size",
                )
            x = keras.layers.MaxPooling2D(3, strides=2, name=f"pool{index}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(int(fc_units), activation="relu", name="fc6")(x)
    x = keras.layers.Dropout(float(dropout), name="fc6_dropout")(x)
    x = keras.layers.Dense(int(fc_units), activation="relu", name="fc7")(x)
    if include_top:
        x = keras.layers.Dropout(float(dropout), name="fc7_dropout")(x)
        x = keras.layers.Dense(classes, activation="softmax", name="fc8")(x)
    return keras.Model(inputs, x, name=name)


# -------------------------------------------------------------------- ResNet


def _batch_norm(name: str) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(epsilon=1.001e-5, name=name)


def _basic_block(x, filters: int, stride: int, name: str):
    """Two 3x3 convolutions and a shortcut, added, then ReLU (ResNet v1)."""
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_0_conv")(x)
        shortcut = _batch_norm(f"{name}_0_bn")(shortcut)
    # Explicit 1-pixel padding, as in the original: TF's "same" pads
    # stride-2 convolutions on one side only.
    y = keras.layers.ZeroPadding2D(1, name=f"{name}_1_pad")(x)
    y = keras.layers.Conv2D(filters, 3, strides=stride, use_bias=False, name=f"{name}_1_conv")(y)
    y = _batch_norm(f"{name}_1_bn")(y)
    y = keras.layers.ReLU(name=f"{name}_1_relu")(y)
    y = keras.layers.ZeroPadding2D(1, name=f"{name}_2_pad")(y)
    y = keras.layers.Conv2D(filters, 3, use_bias=False, name=f"{name}_2_conv")(y)
    y = _batch_norm(f"{name}_2_bn")(y)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def resnet_basic(
    depth_name: str,
    *,
    include_top: bool = False,
    weights: str | None = None,
    input_shape: tuple[int, int, int] | None = None,
    classes: int = 1000,
) -> keras.Model:
    """Builds ResNet18 or ResNet34 (basic blocks) from Keras layers.

    A 7x7/2 convolution and 3x3/2 max pooling, then four stages of basic
    blocks (64, 128, 256, 512 filters; stages 3-5 start with stride 2),
    as in He et al. (2015), Table 1.

    Args:
        depth_name: `"resnet18"` or `"resnet34"`.
        include_top: Add global average pooling and a softmax layer.
            Defaults to `False`.
        weights: `None`, or a local weights file path (loaded by the
            caller); `"imagenet"` is refused. Defaults to `None`.
        input_shape: `(size, size, 3)`. Defaults to `None` (224 px).
        classes: Output classes with `include_top`. Defaults to `1000`.

    Returns:
        A `keras.Model` from preprocessed images to the last feature map
        (or class probabilities with `include_top`).

    Raises:
        RecipeError: for `weights="imagenet"` or an unknown depth name.

    Example:
    ```python
    model = resnet_basic("resnet18", include_top=True)  # 11.7M parameters
    ```
    """
    if depth_name not in RESNET_BLOCKS:
        raise RecipeError(
            f"Expected a basic-block ResNet from: {', '.join(RESNET_BLOCKS)}. Received: {depth_name!r}."
        )
    _refuse_imagenet(weights, depth_name)
    inputs = keras.Input(_input_size(input_shape, 224), name="input")
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = keras.layers.Conv2D(64, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = _batch_norm("conv1_bn")(x)
    x = keras.layers.ReLU(name="conv1_relu")(x)
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stage, (blocks, filters) in enumerate(zip(RESNET_BLOCKS[depth_name], RESNET_FILTERS, strict=True), start=2):
        for block in range(1, blocks + 1):
            stride = 2 if block == 1 and stage > 2 else 1
            x = _basic_block(x, filters, stride, f"conv{stage}_block{block}")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name=depth_name)


def resnet18(**kwargs) -> keras.Model:
    """ResNet18 (basic blocks 2-2-2-2) from Keras layers; see `resnet_basic`."""
    return resnet_basic("resnet18", **kwargs)


def resnet34(**kwargs) -> keras.Model:
    """ResNet34 (basic blocks 3-4-6-3) from Keras layers; see `resnet_basic`."""
    return resnet_basic("resnet34", **kwargs)


# ------------------------------------------------------ EfficientNet scaling


def efficientnet_compound(
    *,
    include_top: bool = False,
    weights: str | None = None,
    input_shape: tuple[int, int, int] | None = None,
    classes: int = 1000,
    phi: float = 0,
) -> keras.Model:
    """Builds EfficientNet-B0 scaled by phi, through Keras's EfficientNet builder.

    Args:
        include_top: Add Keras's classifier top. Defaults to `False`.
        weights: `None`, or a local weights file path (loaded by the
            caller); `"imagenet"` is refused. Defaults to `None`.
        input_shape: `(size, size, 3)`. Defaults to `None` (the phi's
            resolution).
        classes: Output classes with `include_top`. Defaults to `1000`.
        phi: The compound coefficient. Defaults to `0` (B0).

    Returns:
        A `keras.Model` taking [0, 255] RGB images (it scales them itself).

    Raises:
        RecipeError: for a bad phi or `weights="imagenet"`.

    Example:
    ```python
    model = efficientnet_compound(phi=1)  # depth 1.2, width 1.1, 258 px
    ```
    """
    from keras.src.applications.efficientnet import EfficientNet

    scaling = compound_scaling(phi)
    _refuse_imagenet(weights, "efficientnet_compound")
    return EfficientNet(
        scaling.width, scaling.depth, scaling.resolution,
        include_top=include_top, weights=None,
        input_shape=_input_size(input_shape, scaling.resolution), classes=classes,
        name=f"efficientnet_phi{phi:g}",
    )


def compound_scaling_table(phis=(0, 1, 2, 3)) -> list[dict[str, Any]]:
    """Builds EfficientNet at each phi and returns its scaling and size.

    Parameters are counted with the 1000-class ImageNet top, as the
    EfficientNet paper counts them.

    Args:
        phis: The compound coefficients. Defaults to `(0, 1, 2, 3)`.

    Returns:
        One dict per phi: `phi`, `depth`, `width`, `resolution`, `blocks`
        (MBConv blocks), `parameters`, `closest` and `closest_scaling`
        (the official model's width, depth, resolution).

    Raises:
        RecipeError: for a bad phi.
    """
    from keras.src.applications.efficientnet import DEFAULT_BLOCKS_ARGS

    rows = []
    for phi in phis:
        scaling = compound_scaling(phi)
        model = efficientnet_compound(include_top=True, phi=phi)
        blocks = sum(math.ceil(scaling.depth * args["repeats"]) for args in DEFAULT_BLOCKS_ARGS)
        rows.append({
            "phi": phi, "depth": scaling.depth, "width": scaling.width,
            "resolution": scaling.resolution, "blocks": blocks, "parameters": model.count_params(),
            "closest": scaling.closest, "closest_scaling": OFFICIAL_EFFICIENTNETS[scaling.closest],
        })
    return rows


def format_compound_table(rows: list[dict[str, Any]], *, chosen: float | None = None) -> str:
    """Formats `compound_scaling_table` rows as an aligned text table.

    Args:
        rows: Rows from `compound_scaling_table`.
        chosen: A phi to mark as the recipe's own. Defaults to `None`.

    Returns:
        The table as text.
    """
    lines = [
        "EfficientNet compound scaling from B0 (224 px): depth 1.2^phi, width 1.1^phi, resolution 1.15^phi",
        f"{'phi':>4} {'depth':>6} {'width':>6} {'res px':>6} {'blocks':>6} {'params':>11}  closest official",
    ]
    for row in rows:
        w, d, r = row["closest_scaling"]
        lines.append(
            f"{row['phi']:>4g} {row['depth']:>6.3f} {row['width']:>6.3f} {row['resolution']:>6d} "
            f"{row['blocks']:>6d} {row['parameters']:>11,}  {row['closest']} (width {w}, depth {d}, {r} px)"
            + ("  <- this recipe" if chosen is not None and row["phi"] == chosen else "")
        )
    lines.append("Parameters include the 1000-class ImageNet top, as the paper counts them.")
    return "\n".join(lines)

