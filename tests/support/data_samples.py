"""Generated image files of every supported kind, plus bad files, for the data tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

_EXIF_ORIENTATION = 0x0112


def striped(kind: int, size: int = 24, width: int | None = None, seed: int = 0) -> np.ndarray:
    """An RGB image with a bright stripe in the rows of its class (`kind` 0 or 1)."""
    rng = np.random.default_rng(seed)
    width = width or size
    image = rng.integers(0, 60, (size, width, 3), dtype=np.uint8)
    rows = slice(kind * size // 2, (kind + 1) * size // 2)
    image[rows, :, kind % 3] = 230
    return image


def write_every_format(folder: Path, kind: int, seed: int = 0) -> dict[str, Path]:
    """Writes one readable image per format and mode into `folder`.

    Returns:
        `{short name: path}` of the readable files.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(striped(kind, seed=seed))
    written = {}

    def save(name, image, **options):
        written[name.split(".")[0]] = folder / name
        image.save(folder / name, **options)

    save("jpeg.jpg", rgb, quality=95)
    save("png.png", rgb)
    save("bmp.bmp", rgb)
    save("webp.webp", rgb, lossless=True)
    save("gray.png", rgb.convert("L"))
    save("cmyk.jpg", rgb.convert("CMYK"), quality=95)
    save("rgba.png", rgb.convert("RGBA"))
    save("palette.bmp", rgb.convert("P"))
    save("onebit.bmp", rgb.convert("1"))
    save("sixteen.png", Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257))
    frames = [rgb.convert("P"), Image.fromarray(255 - np.asarray(rgb)).convert("P")]
    written["gif"] = folder / "animated.gif"
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:])
    # A PNG with a .jpg name: readable by its content, so kept.
    written["png_as_jpg"] = folder / "png_named.jpg"
    shutil.copy(folder / "png.png", folder / "png_named.jpg")
    return written


def write_rotated_jpeg(path: Path, kind: int = 0, height: int = 16, width: int = 32) -> np.ndarray:
    """Writes a `height x width` JPEG tagged EXIF orientation 6 (rotate 90 on display).

    Returns:
        The stored (unrotated) pixels.
    """
    pixels = striped(kind, size=height, width=width)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[_EXIF_ORIENTATION] = 6
    image.save(path, exif=exif, quality=95)
    return pixels


def write_bad_files(folder: Path) -> dict[str, str]:
    """Writes unreadable files; returns `{file name: expected reason prefix}`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("not an image at all")
    (folder / "readme.txt").write_text("a stray text file")
    encoded = folder / "_whole.jpg"
    Image.fromarray(striped(0)).save(encoded, quality=95)
    data = encoded.read_bytes()
    encoded.unlink()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    png = folder / "_whole.png"
    Image.fromarray(striped(1)).save(png)
    data = png.read_bytes()
    png.unlink()
    (folder / "truncated.png").write_bytes(data[: len(data) - 30])
    corrupt = bytearray(data)
    corrupt[40:80] = b"\x00" * 40  # breaks the IDAT chunk's checksum
    (folder / "corrupt.png").write_bytes(bytes(corrupt))
    return {
        "empty.jpg": "empty file",
        "notes.jpg": "not an image",
        "readme.txt": "not an image",
        "truncated.jpg": "corrupt or truncated",
        "truncated.png": "corrupt or truncated",
        "corrupt.png": "corrupt",
    }


def write_mixed_folder(root: Path) -> tuple[Path, dict[str, str]]:
    """Two classes of every format, with bad files in each class folder.

    Returns:
        `(root, {bad file path: expected reason prefix})`.
    """
    bad = {}
    for kind, name in enumerate(("cat", "dog")):
        for seed in range(2):
            write_every_format(root / name / f"set{seed}", kind, seed=seed)
        for file_name, reason in write_bad_files(root / name).items():
            bad[str(root / name / file_name)] = reason
    return root, bad
