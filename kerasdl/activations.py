"""Activation functions by the names the course uses.

Keras's own implementations are used wherever Keras has them.
"""

from __future__ import annotations

import keras

from kerasdl.errors import RecipeError

_KERAS_ACTIVATIONS = ("relu", "tanh", "linear", "selu", "elu", "sigmoid", "gelu", "swish")
ACTIVATIONS = _KERAS_ACTIVATIONS + ("leaky_relu", "prelu")


def get_activation(name: str, **kwargs) -> keras.layers.Layer:
    """Returns a layer applying the activation called `name`.

    Args:
        name: One of `ACTIVATIONS`.
        **kwargs: Passed to the layer (for example `name=`).

    Returns:
        A Keras layer.

    Raises:
        RecipeError: for an unknown name; the message lists the valid ones.
    """
    if name in _KERAS_ACTIVATIONS:
        return keras.layers.Activation(name, **kwargs)
    if name == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=0.01, **kwargs)
    if name == "prelu":
        return keras.layers.PReLU(shared_axes=None, **kwargs)
    raise RecipeError(
        f"Expected an activation from: {', '.join(ACTIVATIONS)}. Received: {name!r}."
    )
