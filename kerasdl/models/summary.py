"""A short text summary of a classifier: its layers and parameter counts."""


from __future__ import annotations

import keras

from kerasdl.models.classifier import count_parameters

# ------------------------------------------------------------- descriptions


def classifier_summary(model: keras.Model) -> str:
    """Returns a model's layer table, nested models expanded, and parameter counts.

    Plain text (Keras's own `summary` crops to the terminal's width).

    Args:
        model: A built Keras model, e.g. from `build_classifier`.

    Returns:
        One line per layer (name, type, output shape, parameters), then the
        total, trainable and non-trainable parameter counts.
    """
    lines = [f"{'layer':<34} {'type':<22} {'output shape':<22} {'parameters':>12}"]

    def add_layers(container: keras.Model, indent: str) -> None:
        for layer in container.layers:
            shape = tuple(getattr(layer.output, "shape", ()))
            lines.append(
                f"{indent + layer.name:<34} {type(layer).__name__:<22} {str(shape):<22} "
                f"{layer.count_params():>12,}"
            )
            if isinstance(layer, keras.Model):
                add_layers(layer, indent + "  ")

    add_layers(model, "")
    counts = count_parameters(model)
    lines.append(
        f"Total parameters: {counts['total']:,} (trainable {counts['trainable']:,}, "
        f"non-trainable {counts['non_trainable']:,})"
    )
    return "\n".join(lines)

