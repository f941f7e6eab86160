"""The Grad-CAM picture in README (bench/gradcam.png), and the time `kerasdl explain` takes.

Runs `explain_images` (what `kerasdl explain` runs) on the given images of a
run's model, times it, and puts the pictures it wrote into one PNG, a grid
of `--columns` pictures a row.

Usage (a default run on faces-real-ai, two AI and two real faces):
    kerasdl run efficientnet-lite0-transfer --data ../shared/data/faces-real-ai --output runs/faces
    python bench/gradcam_picture.py runs/faces FACE.jpg ... --output bench/gradcam.png
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="A run folder (its model.keras) or a .keras file.")
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--output", type=Path, default=Path("gradcam.png"))
    parser.add_argument("--columns", type=int, default=2)
    parser.add_argument("--width", type=int, default=800, help="Width of the picture in pixels.")
    args = parser.parse_args()

    import numpy as np
    from PIL import Image

    from kerasdl.evaluation.explain import explain_images

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        result = explain_images(args.run_dir, list(args.images), output_dir=Path(folder) / "cams")
        seconds = time.perf_counter() - started
        pictures = [np.asarray(Image.open(path).convert("RGB")) for path in result.written]
    height, width = pictures[0].shape[:2]
    rows = -(-len(pictures) // args.columns)
    grid = np.full((rows * height, args.columns * width, 3), 255, dtype=np.uint8)
    for index, picture in enumerate(pictures):
        row, column = divmod(index, args.columns)
        grid[row * height:(row + 1) * height, column * width:(column + 1) * width] = picture
    picture = Image.fromarray(grid)
    picture = picture.resize((args.width, round(picture.height * args.width / picture.width)), Image.LANCZOS)
    picture.save(args.output, optimize=True)
    print(f"Wrote {args.output}: {len(pictures)} Grad-CAM pictures (feature map {result.layer}); "
          f"explain took {seconds:.1f} s with the model's loading, {result.seconds / len(pictures):.2f} s "
          "an image")


if __name__ == "__main__":
    main()
