"""matplotlib without a display, one way to save a figure, and captions that fit."""


from __future__ import annotations

import os
from pathlib import Path

from kerasdl._util.files import atomic_path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: str | os.PathLike) -> None:
    """Saves a PNG under a temporary name, then renames it into place."""
    plt = pyplot()
    path = Path(path)
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=100, format="png")
    finally:
        plt.close(figure)



def shortened(text: str, width: int) -> str:
    """`text` cut to `width` characters with an ellipsis in the middle, keeping its end (a file's extension)."""
    if len(text) <= width:
        return text
    tail = max(width // 3, 1)
    return text[: width - 1 - tail] + "…" + text[-tail:]
