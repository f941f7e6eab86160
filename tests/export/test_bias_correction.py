"""Bias correction for int8 export: the measured shift, its cancellation, the converter's rounding."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from kerasdl.export.bias_correction import (
    int8_bias_correction,
    measure_int8_bias_shift,
    round_to_int8_grid,
)
from kerasdl.export.tflite import export_tflite
from kerasdl.inference.runners import TFLiteModel

SIZE = 12


def nested_model(seed: int = 0) -> keras.Model:
    """Outer functional model with a nested backbone: conv -> BN, depthwise -> BN, biased conv."""
    keras.utils.set_random_seed(seed)
    inner_input = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", use_bias=False, name="conv")(inner_input)
    x = keras.layers.BatchNormalization(name="conv_bn")(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False, name="depthwise")(x)
    x = keras.layers.BatchNormalization(name="depthwise_bn")(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.Conv2D(4, 1, name="biased")(x)
    backbone = keras.Model(inner_input, x, name="backbone")
    inputs = keras.Input((SIZE, SIZE, 3))
    features = backbone(keras.layers.Rescaling(1 / 255)(inputs))
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(features))
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(seed)
    for name in ("conv_bn", "depthwise_bn"):  # inference statistics that are not the identity
        bn = backbone.get_layer(name)
        gamma, beta, mean, variance = bn.get_weights()
        bn.set_weights([rng.uniform(0.5, 2, gamma.shape), rng.normal(0, 0.5, beta.shape),
                        rng.normal(0, 0.5, mean.shape), rng.uniform(0.5, 2, variance.shape)])
    return model


def images(count: int = 16, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (count, SIZE, SIZE, 3)).astype("float32")


def layer_input(model, name) -> np.ndarray:
    backbone = model.get_layer("backbone")
    inner = keras.Model(backbone.input, backbone.get_layer(name).input)
    return inner.predict_on_batch(images() / 255.0)


def rounded_minus_original_mean(layer, inputs: np.ndarray) -> np.ndarray:
    """Mean per channel of layer(inputs) with its kernel rounded, minus with the original kernel."""
    original = layer.get_weights()
    before = np.asarray(layer(inputs))
    depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
    layer.set_weights([round_to_int8_grid(original[0], depthwise=depthwise), *original[1:]])
    after = np.asarray(layer(inputs))
    layer.set_weights(original)
    return (after - before).mean(axis=(0, 1, 2))


def test_round_to_int8_grid_is_symmetric_per_output_channel():
    kernel = np.random.default_rng(0).normal(0, 1, (3, 3, 4, 5)).astype("float32")
    kernel[..., 1] *= 1000  # a channel with a large range must not coarsen the others
    rounded = round_to_int8_grid(kernel)
    for channel in range(5):
        step = np.abs(kernel[..., channel]).max() / 127
        steps = rounded[..., channel] / step
        np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
        assert np.abs(rounded[..., channel] - kernel[..., channel]).max() <= step / 2 + 1e-6
    depthwise = np.random.default_rng(1).normal(0, 1, (3, 3, 4, 2)).astype("float32")
    rounded = round_to_int8_grid(depthwise, depthwise=True).reshape(3, 3, 8)
    flat = depthwise.reshape(3, 3, 8)
    for channel in range(8):
        assert np.abs(rounded[..., channel]).max() == pytest.approx(np.abs(flat[..., channel]).max(), rel=1e-6)


def test_rounding_matches_the_int8_weights_the_converter_writes(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(5, 3, name="conv")(inputs)
    outputs = keras.layers.DepthwiseConv2D(3, name="depthwise")(x)
    model = keras.Model(inputs, outputs)
    path = export_tflite(model, tmp_path / "model.tflite", quantize="int8", representative_images=[images()],
                         int8_io="float", bias_correction=False)
    interpreter = TFLiteModel(path).interpreter
    written = {}
    for detail in interpreter.get_tensor_details():
        scales = detail["quantization_parameters"]["scales"]
        if detail["dtype"] == np.int8 and len(detail["shape"]) == 4 and len(scales) > 1:
            # TFLite layouts: conv (out, h, w, in); depthwise (1, h, w, out).
            values = interpreter.get_tensor(detail["index"])
            channels_last = values[0] if values.shape[0] == 1 else np.moveaxis(values, 0, -1)
            written[tuple(detail["shape"])] = channels_last * scales
    conv = model.get_layer("conv").get_weights()[0]
    depthwise = model.get_layer("depthwise").get_weights()[0]
    np.testing.assert_allclose(written[(5, 3, 3, 3)], round_to_int8_grid(conv), atol=1e-6)
    np.testing.assert_allclose(written[(1, 3, 3, 5)],
                               round_to_int8_grid(depthwise, depthwise=True)[..., 0], atol=1e-6)


def test_measured_shift_is_the_mean_error_of_each_rounded_kernel():
    model = nested_model()
    shifts = {holder.name: (kind, shift) for holder, kind, shift in measure_int8_bias_shift(model, [images()])}
    assert set(shifts) == {"conv_bn", "depthwise_bn", "biased"}
    assert shifts["conv_bn"][0] == "moving_mean" and shifts["biased"][0] == "bias"
    backbone = model.get_layer("backbone")
    for conv, holder in (("conv", "conv_bn"), ("depthwise", "depthwise_bn"), ("biased", "biased")):
        expected = rounded_minus_original_mean(backbone.get_layer(conv), layer_input(model, conv))
        assert np.abs(expected).max() > 1e-4  # the test would prove nothing with no error
        np.testing.assert_allclose(shifts[holder][1], expected, atol=1e-5)


def test_correction_cancels_the_mean_error_inside_the_block_and_restores_after():
    model = nested_model()
    backbone = model.get_layer("backbone")
    before = [w.copy() for w in model.get_weights()]
    probe = keras.Model(backbone.input, backbone.get_layer("conv_bn").output)
    scaled = images() / 255.0
    float_mean = probe.predict_on_batch(scaled).mean(axis=(0, 1, 2))
    conv = backbone.get_layer("conv")
    kernel = conv.get_weights()[0]

    conv.set_weights([round_to_int8_grid(kernel)])  # what the converter will compute
    uncorrected = probe.predict_on_batch(scaled).mean(axis=(0, 1, 2))
    conv.set_weights([kernel])
    with int8_bias_correction(model, [images()]) as corrected:
        assert corrected == 3
        conv.set_weights([round_to_int8_grid(kernel)])
        corrected_mean = probe.predict_on_batch(scaled).mean(axis=(0, 1, 2))
        conv.set_weights([kernel])

    assert np.abs(uncorrected - float_mean).max() > 1e-3
    np.testing.assert_allclose(corrected_mean, float_mean, atol=1e-4)
    for original, restored in zip(before, model.get_weights()):
        np.testing.assert_array_equal(original, restored)


def test_layers_whose_error_passes_a_nonlinearity_or_that_are_shared_are_left_alone():
    inputs = keras.Input((SIZE, SIZE, 3))
    outputs = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    assert measure_int8_bias_shift(keras.Model(inputs, outputs), [images()]) == []
    shared = keras.layers.Conv2D(3, 1, padding="same")
    outputs = shared(shared(inputs))  # called twice: no single input to measure
    assert measure_int8_bias_shift(keras.Model(inputs, outputs), [images()]) == []


def test_int8_export_converts_corrected_weights_and_leaves_the_model_as_it_was(tmp_path):
    classifier = nested_model()
    model = keras.Model(classifier.input, classifier.layers[-2].output)  # pooled features, not rounded by a softmax
    before = [w.copy() for w in model.get_weights()]
    calibration = [images(32, seed=2)]
    corrected = TFLiteModel(export_tflite(model, tmp_path / "corrected.tflite", quantize="int8",
                                          representative_images=calibration, int8_io="float"))
    plain = TFLiteModel(export_tflite(model, tmp_path / "plain.tflite", quantize="int8",
                                      representative_images=calibration, int8_io="float",
                                      bias_correction=False))
    for original, after in zip(before, model.get_weights()):
        np.testing.assert_array_equal(original, after)
    # The correction changes what is converted (BatchNorm folds into the int8 biases).
    batch = images(8, seed=3)
    assert not np.array_equal(corrected.predict_batch(batch), plain.predict_batch(batch))


def test_shift_is_the_same_under_a_mirrored_strategy(tmp_path):
    # `kerasdl run --distribute mirrored` exports inside the strategy's scope, where
    # predict_on_batch returns each replica's copy of the batch.
    script = f"""
import json, sys
sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(Path(__file__).parents[2])!r}]
from test_bias_correction import images, nested_model
from kerasdl.export.bias_correction import measure_int8_bias_shift
from kerasdl.training.distribute import distribution_scope
with distribution_scope("mirrored") as replicas:
    assert replicas == 2, replicas
    model = nested_model()
    shifts = {{holder.name: shift.tolist() for holder, _, shift in measure_int8_bias_shift(model, [images()])}}
print("SHIFTS" + json.dumps(shifts))
"""
    env = {**os.environ, "KERASDL_CPU_DEVICES": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    mirrored = json.loads(done.stdout.split("SHIFTS", 1)[1])
    expected = {holder.name: shift for holder, _, shift in measure_int8_bias_shift(nested_model(), [images()])}
    assert set(mirrored) == set(expected)
    for name, shift in expected.items():
        np.testing.assert_allclose(mirrored[name], shift, atol=1e-5)


class SubclassedClassifier(keras.Model):
    def __init__(self):
        super().__init__()
        self.conv = keras.layers.Conv2D(4, 3, use_bias=False)
        self.norm = keras.layers.BatchNormalization()
        self.pool = keras.layers.GlobalAveragePooling2D()

    def call(self, inputs):
        return self.pool(self.norm(self.conv(inputs / 255.0)))


def test_models_without_a_layer_graph_convert_uncorrected(tmp_path):
    model = SubclassedClassifier()
    model(images(1))
    assert measure_int8_bias_shift(model, [images()]) == []
    path = export_tflite(model, tmp_path / "model.tflite", quantize="int8", representative_images=[images()],
                         int8_io="float")
    assert TFLiteModel(path).predict_batch(images(2)).shape == (2, 4)
