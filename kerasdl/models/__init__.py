"""Classifiers over a backbone: the head, trainable specs and activations."""

from kerasdl.models.activations import (
    ACTIVATIONS,
    BinaryStep,
    binary_step,
    get_activation,
    plot_activations,
    register_activation,
)
from kerasdl.models.classifier import build_classifier, count_parameters, set_trainable

__all__ = [
    "ACTIVATIONS",
    "BinaryStep",
    "binary_step",
    "build_classifier",
    "count_parameters",
    "get_activation",
    "plot_activations",
    "register_activation",
    "set_trainable",
]
