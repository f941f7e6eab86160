"""Activation functions by the names the course uses.

The course's nine functions of the neuron model are here by name: relu,
leaky_relu, tanh, binary_step, linear, selu, elu, sigmoid and prelu (plus
Keras's gelu and swish). Keras's own implementations are used wherever Keras
has them; the two it lacks are defined here as serializable Keras layers:

- `BinaryStep`, the step function, trained with a straight-through
  estimator (its true derivative is zero almost everywhere, so a gradient
  that follows it exactly would never update the weights below it);
- `prelu` is Keras's `PReLU` layer with its learnable slope started at 0.25,
  the value of He et al. (2015).

`get_activation(name)` returns a fresh layer for a name; an unknown name
raises `RecipeError` listing the valid ones. `plot_activations(path)` draws
every function with its derivative, as `kerasdl plot activations` does.
"""


from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from kerasdl._util.files import atomic_path
from kerasdl._util.plotting import pyplot
from kerasdl._util.registry import register
from kerasdl.errors import RecipeError

LEAKY_RELU_SLOPE = 0.01
PRELU_INITIAL_SLOPE = 0.25
# The nine functions of the course, in the order its notes present them.
COURSE_ACTIVATIONS = (
    "binary_step", "linear", "sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu", "selu",
)

ACTIVATIONS: dict[str, Callable[..., keras.layers.Layer]] = {}


def register_activation(name: str):
    """Registers a factory of an activation layer under `name` (a decorator).

    Args:
        name: The name users type, e.g. as the recipe field `head.activation`.

    Returns:
        The decorator; it returns the factory unchanged.

    Example:
    ```python
    @register_activation("mish")
    def mish(**kwargs):
        return keras.layers.Activation("mish", **kwargs)
    ```
    """

    def decorator(factory):
        register(ACTIVATIONS, "activation", name, factory)
        return factory

    return decorator


@keras.ops.custom_gradient
def binary_step(x):
    """The binary step `1 if x >= 0 else 0`, with a straight-through gradient.

    The forward pass is the exact step. The backward pass is the
    straight-through estimator (Hinton 2012; Bengio et al. 2013): the
    incoming gradient is passed through unchanged, as if the function were
    the identity, because the true derivative (zero everywhere except an
    impulse at 0) would stop all learning below the step.

    Args:
        x: A tensor.

    Returns:
        A tensor of `x`'s shape and dtype holding 0s and 1s.

    Example:
    ```python
    binary_step(keras.ops.convert_to_tensor([-1.0, 0.0, 2.0]))  # [0., 1., 1.]
    ```
    """

    def straight_through(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        return upstream

    step = keras.ops.cast(keras.ops.greater_equal(x, 0), x.dtype)
    return step, straight_through


@keras.saving.register_keras_serializable(package="kerasdl")
class BinaryStep(keras.layers.Layer):
    """A layer applying `binary_step`: the step forward, straight-through backward.

    The gradient is a straight-through estimator: it passes the incoming
    gradient on unchanged (the step's true derivative is zero almost
    everywhere). The layer is registered as `kerasdl>BinaryStep`, so a
    `.keras` file holding it loads once kerasdl is imported.

    Example:
    ```python
    layer = BinaryStep()
    layer(np.array([[-0.5, 0.5]]))  # [[0., 1.]]
    ```
    """

    def call(self, inputs):
        return binary_step(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape


def _keras_activation(name: str):
    def factory(**kwargs):
        return keras.layers.Activation(name, **kwargs)

    factory.__name__ = name
    return factory


for _name in ("relu", "tanh", "linear", "selu", "elu", "sigmoid", "gelu", "swish"):
    register_activation(_name)(_keras_activation(_name))


@register_activation("leaky_relu")
def leaky_relu(**kwargs) -> keras.layers.Layer:
    """Keras's LeakyReLU with the course's slope of 0.01 for negative inputs."""
    return keras.layers.LeakyReLU(negative_slope=LEAKY_RELU_SLOPE, **kwargs)


@register_activation("prelu")
def prelu(**kwargs) -> keras.layers.Layer:
    """Keras's PReLU: a learnable slope per unit, started at 0.25 (He et al.)."""
    return keras.layers.PReLU(
        alpha_initializer=keras.initializers.Constant(PRELU_INITIAL_SLOPE), **kwargs
    )


@register_activation("binary_step")
def binary_step_layer(**kwargs) -> keras.layers.Layer:
    """The step function as a `BinaryStep` layer (straight-through gradient)."""
    return BinaryStep(**kwargs)


def get_activation(name: str, /, **kwargs) -> keras.layers.Layer:
    """Returns a new layer applying the activation called `name`.

    Args:
        name: A key of `ACTIVATIONS`, e.g. `"selu"` or `"prelu"`.
        **kwargs: Passed to the layer (for example `name=`).

    Returns:
        A Keras layer.

    Raises:
        RecipeError: for an unknown name; the message lists the valid ones.

    Example:
    ```python
    x = get_activation("leaky_relu", name="head_activation")(x)
    ```
    """
    factory = ACTIVATIONS.get(str(name))
    if factory is None:
        raise RecipeError(
            f"Expected an activation from: {', '.join(sorted(ACTIVATIONS))}. Received: {name!r}. "
            "Set head.activation to one of them."
        )
    return factory(**kwargs)


def activation_and_derivative(name: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Evaluates an activation layer and its derivative at the points `x`.

    The derivative is the gradient the layer passes back in training,
    found by automatic differentiation (TensorFlow's GradientTape) on the
    TensorFlow backend; on other backends by central finite differences of
    the same layer. For `binary_step` this is the straight-through gradient
    (1 everywhere), not the true derivative.

    Args:
        name: A key of `ACTIVATIONS`.
        x: 1-D points.

    Returns:
        `(values, derivatives)`, float32 arrays shaped like `x`.

    Raises:
        RecipeError: for an unknown name.
    """
    layer = get_activation(name)
    column = np.asarray(x, dtype="float32").reshape(-1, 1)  # PReLU learns one slope per column
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        inputs = tf.constant(column)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = layer(inputs)
        # Each output depends only on its own input, so the gradient of the
        # sum is the elementwise derivative.
        gradient = tape.gradient(outputs, inputs)
        return outputs.numpy().ravel(), gradient.numpy().ravel()
    step = 1e-3
    values = keras.ops.convert_to_numpy(layer(column)).ravel()
    above = keras.ops.convert_to_numpy(layer(column + step)).ravel()
    below = keras.ops.convert_to_numpy(layer(column - step)).ravel()
    return values, (above - below) / (2 * step)


def plot_activations(
    path: str | os.PathLike,
    *,
    names: tuple[str, ...] = COURSE_ACTIVATIONS,
    x_range: tuple[float, float] = (-4.0, 4.0),
) -> Path:
    """Draws each activation and its derivative in one PNG, one panel each.

    Args:
        path: The PNG file to write (written to a temporary name, then renamed).
        names: The activations to draw. Defaults to the course's nine.
        x_range: The inputs shown. Defaults to `(-4.0, 4.0)`.

    Returns:
        The path written.

    Raises:
        RecipeError: for an unknown activation name.

    Example:
    ```python
    plot_activations("activations.png")
    ```
    """
    plt = pyplot()
    for name in names:
        get_activation(name)  # fail on a bad name before drawing anything
    path = Path(path)
    x = np.linspace(*x_range, 801, dtype="float32")
    columns = 3
    rows = -(-len(names) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    for axis, name in zip(axes.ravel(), names, strict=False):
        values, derivatives = activation_and_derivative(name, x)
        axis.plot(x, values, label="f(x)", linewidth=2)
        label = "straight-through gradient (1)" if name == "binary_step" else "f'(x)"
        axis.plot(x, derivatives, "--", label=label)
        title = name
        if name == "prelu":
            title += f" (slope {PRELU_INITIAL_SLOPE}, learnable)"
        elif name == "leaky_relu":
            title += f" (slope {LEAKY_RELU_SLOPE})"
        axis.set_title(title)
        axis.axhline(0, color="gray", linewidth=0.5)
        axis.axvline(0, color="gray", linewidth=0.5)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="upper left")
    for axis in axes.ravel()[len(names):]:
        axis.set_visible(False)
    figure.suptitle("Activation functions (solid) and the gradients they pass back (dashed)")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=90)
    plt.close(figure)
    return path

