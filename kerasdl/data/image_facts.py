"""What each image file is, read in one pass: its file properties, a digest of its pixels, a perceptual hash.

The data-health checks (`kerasdl.data.health`) and `kerasdl audit` work from
these facts: exact duplicates share a pixel digest, near duplicates a close
perceptual hash, and the file properties (size, format, JPEG quality, ...)
are what a shortcut model is given. The pass streams: each image is decoded,
summarised and dropped, in a few threads (Pillow's decoders release the
GIL), so its memory does not grow with the data.
"""


from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import os
import warnings
from collections.abc import Callable, Iterable

import imagehash
import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin

__all__ = ["ImageFacts", "PROPERTY_NAMES", "read_facts", "read_image_facts"]

# Side of the grayscale copy that brightness, contrast, sharpness and information are measured on:
# the same scale for every image, so a large photo is not called sharper than its thumbnail.
_MEASURE_SIDE = 256
# A colour image whose channels differ by at most this much (0-255, at the 99th percentile of a
# 64-pixel copy) is grayscale saved as RGB, as scanners and JPEG encoders often write it.
_GRAY_TOLERANCE = 3
_GRAY_CHECK_SIDE = 64
# libjpeg's quality-50 luminance table (ITU T.81, Annex K): a file's table scaled against it gives
# the quality setting it was saved at, as ImageMagick's `identify` estimates it.
_STANDARD_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=float)
_SUBSAMPLING = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}
# The file properties a shortcut model sees (`ImageFacts.properties`), in its column order.
PROPERTY_NAMES = ("width", "height", "aspect_ratio", "bytes_per_pixel", "format", "mode",
                  "jpeg_quality", "subsampling", "grayscale", "exif")


@dataclasses.dataclass(frozen=True)
class ImageFacts:
    """One image file's properties and summaries.

    Attributes:
        path: The file.
        width: Width in pixels, as stored (before any EXIF rotation).
        height: Height in pixels, as stored.
        format: Pillow's format name (`"JPEG"`, `"PNG"`, `"WEBP"`, ...).
        mode: Pillow's colour mode as stored (`"RGB"`, `"L"`, `"RGBA"`, `"CMYK"`, ...).
        bytes: File size.
        exif: Whether the file carries EXIF data.
        jpeg_quality: The JPEG quality setting the file was saved at
            (estimated from its luminance quantisation table), `None` for
            other formats.
        subsampling: JPEG chroma subsampling (`"4:2:0"`, ...), `None` for
            other formats or when not readable.
        grayscale: One channel, or colour channels that (nearly) agree.
        pixels: A digest of the decoded, upright RGB pixels and their size:
            equal for exact duplicates whatever their file format.
        phash: The 64-bit perceptual hash (DCT of a 32 x 32 grayscale copy)
            as 16 hex digits: close for resized or re-encoded copies.
        brightness: Mean luminance, 0 to 255.
        contrast: Standard deviation of the luminance.
        sharpness: Variance of the Laplacian of a 256-pixel grayscale copy:
            low for a blurred image.
        information: Entropy of the luminance histogram in bits (0 to 8):
            low for a blank or nearly uniform image.
    """

    path: str
    width: int
    height: int
    format: str
    mode: str
    bytes: int
    exif: bool
    jpeg_quality: int | None
    subsampling: str | None
    grayscale: bool
    pixels: str
    phash: str
    brightness: float
    contrast: float
    sharpness: float
    information: float

    @property
    def aspect_ratio(self) -> float:
        """Width over height."""
        return self.width / self.height

    def properties(self) -> dict[str, float | str | bool | None]:
        """The file properties a shortcut model sees, by `PROPERTY_NAMES`."""
        values = dataclasses.asdict(self)
        values["aspect_ratio"] = self.aspect_ratio
        values["bytes_per_pixel"] = self.bytes / (self.width * self.height)
        return {name: values[name] for name in PROPERTY_NAMES}


def _jpeg_quality(image: Image.Image) -> int | None:
    tables = getattr(image, "quantization", None)
    if not tables or 0 not in tables:
        return None
    # the file's table over the standard one: 50/q for q <= 50, 2 - q/50 above (libjpeg's scaling)
    scale = float(np.mean(np.asarray(tables[0], dtype=float)[:64] / _STANDARD_LUMINANCE))
    quality = 50 / scale if scale >= 1 else 50 * (2 - scale)
    return int(np.clip(round(quality), 1, 100))


def _subsampling(image: Image.Image) -> str | None:
    if image.format != "JPEG" or image.mode != "RGB":
        return None
    return _SUBSAMPLING.get(JpegImagePlugin.get_sampling(image))


def _measures(rgb: Image.Image) -> dict[str, float | bool | str]:
    small = rgb.copy()
    small.thumbnail((_MEASURE_SIDE, _MEASURE_SIDE))
    gray_image = small.convert("L")
    gray = np.asarray(gray_image, dtype=np.float32)
    laplacian = (gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:] - 4 * gray[1:-1, 1:-1])
    tiny = small.copy()
    tiny.thumbnail((_GRAY_CHECK_SIDE, _GRAY_CHECK_SIDE))
    spread = np.ptp(np.asarray(tiny), axis=2)  # how far the channels of each pixel disagree
    return {
        "grayscale": bool(np.percentile(spread, 99) <= _GRAY_TOLERANCE),
        "phash": str(imagehash.phash(gray_image)),
        "brightness": float(gray.mean()),
        "contrast": float(gray.std()),
        "sharpness": float(laplacian.var()) if laplacian.size else 0.0,
        "information": float(gray_image.entropy()),
    }


def read_image_facts(path: str) -> ImageFacts:
    """Reads one image's facts (`ImageFacts`), decoding it once.

    Args:
        path: An image file Pillow reads (as `kerasdl.data.scan` keeps).

    Returns:
        Its `ImageFacts`.

    Raises:
        OSError: when the file cannot be read or decoded.

    Example:
    ```python
    facts = read_image_facts("faces/real/0001.jpg")
    facts.width, facts.jpeg_quality, facts.grayscale
    ```
    """
    with Image.open(path) as image:
        stored = {"width": image.width, "height": image.height, "format": image.format or "unknown",
                  "mode": image.mode, "exif": bool(image.getexif()),
                  "jpeg_quality": _jpeg_quality(image) if image.format == "JPEG" else None,
                  "subsampling": _subsampling(image)}
        rgb = ImageOps.exif_transpose(image).convert("RGB")
    digest = hashlib.blake2b(np.asarray(rgb).tobytes(), digest_size=16)
    digest.update(f"{rgb.width}x{rgb.height}".encode())
    return ImageFacts(path=path, bytes=os.path.getsize(path), pixels=digest.hexdigest(),
                      **stored, **_measures(rgb))


def read_facts(paths: Iterable[str], *, workers: int | None = None,
               on_read: Callable[[int], None] | None = None) -> list[ImageFacts | None]:
    """Reads every image's facts in a few threads, streaming.

    Args:
        paths: Image files.
        workers: Threads. Defaults to `None` (one per CPU, at most 8).
        on_read: Called with the number of files read so far (every 100
            and at the end), e.g. to move a progress bar. Defaults to
            `None`.

    Returns:
        `ImageFacts` parallel to `paths`; `None` for a file that could not
        be read (the scan has usually left such files out already).

    Example:
    ```python
    facts = read_facts(data.files["train"].paths)
    ```
    """
    paths = list(paths)
    workers = workers or min(8, os.cpu_count() or 1)

    def read(path: str) -> ImageFacts | None:
        try:
            return read_image_facts(path)
        except (OSError, ValueError, Image.DecompressionBombError):
            return None

    facts = []
    with warnings.catch_warnings(), concurrent.futures.ThreadPoolExecutor(workers) as pool:
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the scan has checked sizes
        for fact in pool.map(read, paths):
            facts.append(fact)
            if on_read is not None and (len(facts) % 100 == 0 or len(facts) == len(paths)):
                on_read(len(facts))
    return facts
