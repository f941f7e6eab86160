"""Bias correction for full-integer int8 export.

The TFLite converter rounds each convolution kernel to int8, symmetrically per
output channel. The rounding error is small per weight, but for the narrow
layers of small mobile backbones (the 8-channel early blocks of MobileNetV2
alpha 0.35) it shifts the *mean* of each output channel, and that shift
propagates through the whole network. Bias correction (Nagel et al., 2019,
"Data-Free Quantization Through Weight Equalization and Bias Correction",
section 4.2) measures that mean shift on the calibration images and
subtracts it from the channel's bias, so the int8 model's outputs are right
on average:

    E[conv(x, round(W))] - E[conv(x, W)] = E[conv(x, round(W) - W)]

which is linear in x, so one extra convolution per layer over the
calibration images measures it exactly. For a convolution followed by
BatchNorm (the usual case, folded by the converter) the shift goes into the
BatchNorm's moving mean; for a convolution with its own bias, into the bias.

Per-channel symmetric rounding commutes with the per-channel scale of
BatchNorm folding, so rounding the unfolded kernel gives the same error the
converter makes after folding.

The correction is applied to the model only while it is converted; the
Keras model is left as it was.
"""


from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import keras
import numpy as np

from kerasdl.inference.batches import batch_predictor  # predict_on_batch is wrong under tf.distribute

INT8_MAX = 127


def round_to_int8_grid(kernel: np.ndarray, *, depthwise: bool = False) -> np.ndarray:
    """Rounds a kernel as the TFLite converter does for int8 weights.

    Symmetric, per output channel: each channel's largest magnitude maps to
    127.

    Args:
        kernel: A Conv2D kernel `(h, w, in, out)` or a DepthwiseConv2D kernel
            `(h, w, in, multiplier)`.
        depthwise: Whether `kernel` is depthwise (its output channels are
            `in * multiplier`). Defaults to `False`.

    Returns:
        The rounded kernel, in float, with the shape of `kernel`.
    """
    shape = kernel.shape
    channels = kernel.reshape(*shape[:-2], -1) if depthwise else kernel
    reduce_axes = tuple(range(channels.ndim - 1))
    scale = np.abs(channels).max(axis=reduce_axes, keepdims=True) / INT8_MAX
    scale = np.where(scale == 0, 1.0, scale)
    rounded = np.clip(np.round(channels / scale), -INT8_MAX, INT8_MAX) * scale
    return rounded.reshape(shape).astype(kernel.dtype)


def _is_functional(model) -> bool:
    """Whether `model` is a graph of layers that can be probed (subclassed models are left as they are)."""
    return (isinstance(model, keras.Model) and bool(getattr(model, "_operations", None))
            and bool(getattr(model, "inputs", None)))


def _functionals(model) -> Iterator[tuple[keras.Model, keras.KerasTensor | None]]:
    """The model and each functional model nested in it, with the outer tensor feeding it."""
    if not _is_functional(model):
        return
    yield model, None
    for layer in model.layers:
        if _is_functional(layer) and len(layer._inbound_nodes) == 1 and len(layer.inputs) == 1:
            yield layer, layer._inbound_nodes[0].input_tensors[0]


def _correctable(functional) -> list[tuple[keras.layers.Layer, keras.layers.Layer, str]]:
    """`(convolution, layer holding its bias, "bias" or "moving_mean")` triples."""
    producers = {}
    for layer in functional.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and layer._inbound_nodes:
            producer = layer.input._keras_history.operation
            producers[id(producer)] = layer
    found = []
    for layer in functional.layers:
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            continue
        if len(layer._inbound_nodes) != 1:
            continue  # a layer called more than once has no single input to measure
        if layer.activation is not keras.activations.linear or getattr(layer, "groups", 1) != 1:
            continue  # the error would pass through a non-linearity or a grouped kernel
        if layer.use_bias:
            found.append((layer, layer, "bias"))
        elif id(layer) in producers and len(layer._outbound_nodes) == 1:
            found.append((layer, producers[id(layer)], "moving_mean"))
    return found


def _mean_error(layer, inputs, delta):
    """Per-channel mean of `conv(inputs, delta)` with `layer`'s geometry."""
    options = {"strides": layer.strides, "padding": layer.padding, "data_format": layer.data_format,
               "dilation_rate": layer.dilation_rate}
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        shifted = keras.ops.depthwise_conv(inputs, delta, **options)
    else:
        shifted = keras.ops.conv(inputs, delta, **options)
    spatial = (2, 3) if layer.data_format == "channels_first" else (1, 2)
    return keras.ops.mean(shifted, axis=spatial)


def measure_int8_bias_shift(
    model, images: Iterable[np.ndarray], *, batch_size: int = 8
) -> list[tuple[keras.layers.Layer, str, np.ndarray]]:
    """Measures each channel's mean output shift caused by int8 kernel rounding.

    Args:
        model: A Keras functional model (kerasdl classifier), possibly with a
            nested functional backbone.
        images: Batches of model inputs (the int8 calibration images).
        batch_size: Images whose layer inputs are held in memory at once.
            Defaults to `8`.

    Returns:
        `(layer holding the bias, "bias" or "moving_mean", shift)` for each
        correctable convolution, the shift being per output channel.
    """
    pieces = [np.asarray(batch, dtype="float32") for batch in images]
    pixels = np.concatenate(pieces) if pieces else np.zeros((0,), "float32")
    found = []
    for functional, outer_input in _functionals(model):
        layers = _correctable(functional)
        if not layers:
            continue
        deltas = []
        for conv, _, _ in layers:
            kernel = keras.ops.convert_to_numpy(conv.kernel)
            rounded = round_to_int8_grid(kernel, depthwise=isinstance(conv, keras.layers.DepthwiseConv2D))
            deltas.append(keras.ops.convert_to_tensor(rounded - kernel))
        # The layers' own inputs, from the existing graph (no new operations in it).
        probe = batch_predictor(keras.Model(functional.inputs, [conv.input for conv, _, _ in layers]))
        feed = batch_predictor(keras.Model(model.inputs, outer_input)) if outer_input is not None else None
        totals = [0.0] * len(layers)
        for start in range(0, len(pixels), batch_size):
            batch = pixels[start:start + batch_size]
            inputs = probe(feed(batch) if feed is not None else batch)
            inputs = inputs if isinstance(inputs, list) else [inputs]
            for index, ((conv, _, _), delta, values) in enumerate(zip(layers, deltas, inputs)):
                shift = keras.ops.convert_to_numpy(_mean_error(conv, values, delta))
                totals[index] = totals[index] + shift.astype("float64").sum(axis=0)
        found += [(holder, kind, (np.asarray(total) / max(len(pixels), 1)).astype("float32"))
                  for (_, holder, kind), total in zip(layers, totals)]
    return found


@contextlib.contextmanager
def int8_bias_correction(model, images: Iterable[np.ndarray]):
    """Applies bias correction to `model` for the duration of the block.

    Convert the model to int8 inside the block; on leaving it, the original
    biases and BatchNorm statistics are restored.

    Args:
        model: The Keras model about to be converted.
        images: Batches of [0, 255] calibration images.

    Yields:
        The number of convolutions corrected.

    Example:
    ```python
    with int8_bias_correction(model, calibration_batches):
        export_tflite(model, "model_int8.tflite", quantize="int8",
                      representative_images=calibration_batches)
    ```
    """
    corrections = measure_int8_bias_shift(model, images)
    saved = [(holder, holder.get_weights()) for holder, _, _ in corrections]
    try:
        for holder, kind, shift in corrections:
            variable = holder.bias if kind == "bias" else holder.moving_mean
            # bias: y = conv + b, so subtract the shift; BatchNorm: y = s * (conv - mean) + beta, so add it.
            correction = -shift if kind == "bias" else shift
            variable.assign(keras.ops.convert_to_numpy(variable) + correction)
        yield len(corrections)
    finally:
        for holder, weights in saved:
            holder.set_weights(weights)

