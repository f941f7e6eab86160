"""One Keras model that averages the probabilities of several classifiers (a k-fold ensemble)."""


from __future__ import annotations

import keras

from kerasdl.errors import RecipeError


def average_models(models: list[keras.Model], *, name: str = "fold_ensemble") -> keras.Model:
    """Returns a functional model whose output is the mean of `models`' outputs.

    The members keep their weights and layers (each renamed `fold_1`,
    `fold_2`, ... so their names are unique), so the ensemble saves as one
    `.keras` file, loads with plain Keras, and exports like any classifier:
    K members make a file K times one member's size, and K times the work
    per image.

    Args:
        models: Classifiers with the same input shape and classes, e.g. the
            fold models of a k-fold run. Their names are changed.
        name: The ensemble's name. Defaults to `"fold_ensemble"`.

    Returns:
        The averaging `keras.Model`.

    Raises:
        RecipeError: for no models, or models of different input or output
            shapes.

    Example:
    ```python
    ensemble = average_models([keras.saving.load_model(p) for p in fold_model_files])
    ```
    """
    if not models:
        raise RecipeError("Expected at least one model to average. Received: none.")
    shapes = {(tuple(model.input_shape[1:]), tuple(model.output_shape[1:])) for model in models}
    if len(shapes) > 1:
        raise RecipeError(
            f"Expected models of one input and output shape to average. Received: {sorted(shapes)}."
        )
    inputs = keras.Input(models[0].input_shape[1:], name="image")
    for number, model in enumerate(models, start=1):
        model.name = f"fold_{number}"
    outputs = [model(inputs) for model in models]
    averaged = outputs[0] if len(outputs) == 1 else keras.layers.Average(name="fold_average")(outputs)
    return keras.Model(inputs, averaged, name=name)
