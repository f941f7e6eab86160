"""The course's ideas drawn as pictures (`kerasdl plot`)."""


from __future__ import annotations

import os
from pathlib import Path

from kerasdl.models.activations import plot_activations


def draw_activations(path: str | os.PathLike) -> Path:
    """Plots every activation function of the course with its derivative, in one PNG.

    Args:
        path: The PNG file to write.

    Returns:
        The file written.
    """
    return plot_activations(path)
