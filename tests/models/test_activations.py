"""Activation functions by name, the step's straight-through gradient, the SELU head, the plot."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from kerasdl.errors import RecipeError
from kerasdl.models.activations import (
    ACTIVATIONS,
    COURSE_ACTIVATIONS,
    BinaryStep,
    activation_and_derivative,
    get_activation,
)

POINTS = np.array([-2.0, -0.5, 0.0, 0.5, 2.0], dtype="float32")


def test_every_course_function_is_registered():
    assert set(COURSE_ACTIVATIONS) <= set(ACTIVATIONS)
    assert len(COURSE_ACTIVATIONS) == 9


@pytest.mark.parametrize("name, expected", [
    ("relu", [0, 0, 0, 0.5, 2]),
    ("leaky_relu", [-0.02, -0.005, 0, 0.5, 2]),
    ("linear", POINTS),
    ("binary_step", [0, 0, 1, 1, 1]),
    ("prelu", [-0.5, -0.125, 0, 0.5, 2]),  # slope 0.25 before training
    ("sigmoid", 1 / (1 + np.exp(-POINTS))),
    ("tanh", np.tanh(POINTS)),
    ("elu", np.where(POINTS > 0, POINTS, np.exp(POINTS) - 1)),
    ("selu", 1.0507009873554805 * np.where(POINTS > 0, POINTS, 1.6732632423543772 * (np.exp(POINTS) - 1))),
])
def test_values(name, expected):
    values, _ = activation_and_derivative(name, POINTS)
    np.testing.assert_allclose(values, expected, atol=1e-5)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "sigmoid", "tanh", "elu", "selu", "prelu"])
def test_derivatives_match_finite_differences_away_from_zero(name):
    x = np.array([-1.5, -0.7, 0.6, 1.3], dtype="float32")
    _, derivative = activation_and_derivative(name, x)
    h = 1e-2
    plus, _ = activation_and_derivative(name, x + h)
    minus, _ = activation_and_derivative(name, x - h)
    np.testing.assert_allclose(derivative, (plus - minus) / (2 * h), atol=2e-3)


def test_binary_step_forward_is_exact_and_gradient_passes_straight_through():
    x = tf.constant([[-3.0, -1e-7, 0.0, 1e-7, 0.1, 4.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = BinaryStep()(x)
        weighted = tf.reduce_sum(y * tf.constant([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]))
    np.testing.assert_array_equal(y.numpy(), [[0, 0, 1, 1, 1, 1]])
    np.testing.assert_array_equal(tape.gradient(weighted, x).numpy(), [[1, 2, 3, 4, 5, 6]])


def test_binary_step_layer_learns_and_survives_a_keras_file(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((3,)), keras.layers.Dense(4), get_activation("binary_step"), keras.layers.Dense(1),
    ])
    model.compile("sgd", "mse")
    before = model.layers[0].get_weights()[0].copy()
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    model.fit(x, np.ones((8, 1)), epochs=1, verbose=0)
    assert not np.allclose(model.layers[0].get_weights()[0], before)  # gradient reached below the step
    model.save(tmp_path / "step.keras")
    loaded = keras.saving.load_model(tmp_path / "step.keras")
    assert isinstance(loaded.layers[1], BinaryStep)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_prelu_slope_is_learnable():
    layer = get_activation("prelu")
    layer(np.zeros((1, 3), dtype="float32"))
    (alpha,) = layer.trainable_weights
    np.testing.assert_allclose(keras.ops.convert_to_numpy(alpha), 0.25)


def test_unknown_activation_lists_valid_names():
    with pytest.raises(RecipeError, match="Expected an activation from: .*binary_step.*prelu.*swish.*"
                                          "Received: 'softsign'"):
        get_activation("softsign")


def test_selu_head_uses_lecun_normal_and_alpha_dropout():
    from kerasdl.models.classifier import build_classifier

    model = build_classifier("mobilenetv2", 2, weights=None, image_size=32, hidden_units=16,
                             activation="selu", backbone_options={"alpha": 0.35})
    hidden = model.get_layer("head_hidden")
    assert isinstance(hidden.kernel_initializer, keras.initializers.LecunNormal)
    assert isinstance(model.get_layer("head_dropout"), keras.layers.AlphaDropout)
    assert model.get_layer("head_activation").get_config()["activation"] == "selu"


def test_hidden_head_from_recipe_override(tiny_recipe):
    from kerasdl.models.classifier import build_classifier
    from kerasdl.recipe import apply_overrides

    recipe = apply_overrides(tiny_recipe, ["head.hidden_units=8", "head.activation=prelu"])
    model = build_classifier(
        recipe.backbone.name, 2, weights=None, image_size=32, hidden_units=recipe.head.hidden_units,
        activation=recipe.head.activation, backbone_options=recipe.backbone.options,
    )
    assert isinstance(model.get_layer("head_activation"), keras.layers.PReLU)
    assert isinstance(model.get_layer("head_dropout"), keras.layers.Dropout)
    assert model.output_shape == (None, 2)


def test_plot_activations_command_writes_one_png(tmp_path):
    from kerasdl.cli.commands import main

    output = tmp_path / "activations.png"
    result = CliRunner().invoke(main, ["plot", "activations", "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["activations.png"]  # no temporary left
