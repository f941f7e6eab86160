"""Drawing Grad-CAM pictures: an image under its heatmap, alone, beside the image, or in a grid.

`overlay_png` gives the demo page one image's overlay, `ExplanationFigure`
draws `kerasdl explain`'s pictures, and `draw_cam_grid` the run report's
`cam_wrong.png` and `cam_right.png` (see `kerasdl.evaluation.explain`).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from kerasdl._util.files import atomic_path
from kerasdl._util.plotting import pyplot, save_figure

HEATMAP_ALPHA = 0.45


def overlay(image: np.ndarray, heatmap: np.ndarray, *, alpha: float = HEATMAP_ALPHA) -> np.ndarray:
    """The image under its heatmap (jet colours), as `uint8` RGB.

    Args:
        image: `(h, w, 3)` RGB in [0, 255].
        heatmap: `(fh, fw)` in [0, 1]; resized to the image, bilinearly.
        alpha: The heatmap's weight. Defaults to `0.45`.
    """
    import matplotlib
    from PIL import Image

    height, width = image.shape[:2]
    resized = np.asarray(Image.fromarray(np.asarray(heatmap, dtype=np.float32), mode="F")
                         .resize((width, height), Image.BILINEAR))
    colours = matplotlib.colormaps["jet"](np.clip(resized, 0.0, 1.0))[..., :3] * 255.0
    blended = (1.0 - alpha) * np.asarray(image, dtype=np.float32) + alpha * colours
    return np.clip(blended, 0, 255).astype(np.uint8)


def overlay_png(image: np.ndarray, heatmap: np.ndarray) -> bytes:
    """`overlay` encoded as PNG bytes (the demo page shows them)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(overlay(image, heatmap)).save(buffer, format="PNG")
    return buffer.getvalue()


class ExplanationFigure:
    """One image beside its Grad-CAM overlay, with a title: one figure, redrawn per picture.

    Making a matplotlib figure costs more than drawing one, so `kerasdl explain`
    keeps one figure and replaces its images and titles for each picture.

    Example:
    ```python
    with ExplanationFigure() as figure:
        figure.save(image, heatmap, "face.jpg: ai 0.98", "face_gradcam.png")
    ```
    """

    def __init__(self):
        self._plt = pyplot()
        self.figure, axes = self._plt.subplots(1, 2, figsize=(7.2, 4.0))
        self.figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.86, wspace=0.03)
        self._panels = []
        for axis in axes:
            axis.axis("off")
            self._panels.append((axis, None))

    def save(self, image: np.ndarray, heatmap: np.ndarray, title: str, path: str | os.PathLike, *,
             heatmap_title: str = "Grad-CAM") -> None:
        """Draws `image` and its overlay under `title` and writes the PNG (atomically)."""
        for index, (shown, name) in enumerate(((np.asarray(image, dtype=np.uint8), "image"),
                                               (overlay(image, heatmap), heatmap_title))):
            axis, drawn = self._panels[index]
            if drawn is None or drawn.get_array().shape != shown.shape:
                axis.clear()
                axis.axis("off")
                drawn = axis.imshow(shown)
            else:
                drawn.set_data(shown)
            axis.set_title(name, fontsize=9)
            self._panels[index] = (axis, drawn)
        self.figure.suptitle(title, fontsize=11)
        with atomic_path(path) as temporary:
            self.figure.savefig(temporary, dpi=100, format="png", pil_kwargs={"compress_level": 1})

    def __enter__(self) -> ExplanationFigure:
        return self

    def __exit__(self, *exc_info) -> None:
        self._plt.close(self.figure)


def draw_cam_grid(rows: list[list[tuple[np.ndarray, np.ndarray, str]]], title: str, path: Path) -> None:
    """Rows of `(image, heatmap, caption)` cells, drawn as overlays."""
    plt = pyplot()
    columns = max(len(row) for row in rows)
    figure, axes = plt.subplots(len(rows), columns, figsize=(2.6 * columns, 3.1 * len(rows) + 0.4),
                                squeeze=False, layout="constrained")  # room for each caption
    for axis in axes.flat:
        axis.axis("off")
    for axes_row, row in zip(axes, rows, strict=False):
        for axis, (image, heatmap, caption) in zip(axes_row, row, strict=False):
            axis.imshow(overlay(image, heatmap))
            axis.set_title(caption, fontsize=8)
    figure.suptitle(title, fontsize=11)
    save_figure(figure, path)


def draw_note(text: str, path: Path) -> None:
    """A picture that says `text` in words, in place of a grid with no image."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 1.2))
    axis.axis("off")
    axis.text(0.5, 0.5, text, ha="center", va="center")
    save_figure(figure, path)
