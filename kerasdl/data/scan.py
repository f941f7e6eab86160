"""Finding and checking images: class folders, signatures, splits and the skip list."""


from __future__ import annotations

import concurrent.futures
import functools
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from kerasdl._util.paths import kerasdl_home
from kerasdl.data.types import ImageData, ImageFiles, SkippedFile
from kerasdl.errors import DataError

_SPLIT_FOLDER_NAMES = {"train": "train", "training": "train", "val": "val",
                       "valid": "val", "validation": "val", "test": "test", "testing": "test"}
# Formats and modes TensorFlow's own decoder reads correctly; anything else
# (WebP, TIFF, CMYK, 16-bit, palette or 1-bit BMP) is decoded with Pillow, and
# so is a file of these that TensorFlow's decoder refuses (see inspect_image).
_TF_MODES = {
    "JPEG": {"L", "RGB"},
    "PNG": {"L", "LA", "RGB", "RGBA", "P", "1"},
    "GIF": {"L", "P", "RGB"},
    "BMP": {"L", "RGB", "RGBA"},
}
_EXIF_ORIENTATION = 0x0112
# Images of more pixels are skipped unread (`data.max_image_pixels`): 40 MP is
# a 7300 x 5500 photo, 120 MB decoded, well past any size a classifier sees.
MAX_IMAGE_PIXELS = 40_000_000
SAMPLE_FOLDER = "sample_faces"


def sample_data_path() -> Path:
    """Where `sample_data_dir` keeps the sample (without writing it)."""
    return kerasdl_home() / SAMPLE_FOLDER


def sample_data_dir() -> Path:
    """Returns the folder of the built-in sample data, writing it once.

    The sample is scikit-image's `lfw_subset`: 100 face and 100 non-face
    images of 25x25 px, shipped inside the scikit-image package (no download).

    Raises:
        DataError: if scikit-image is not installed.
    """
    target = sample_data_path()
    cache_root = target.parent
    if target.is_dir():
        return target
    try:
        from skimage.data import lfw_subset
    except ImportError:
        raise DataError(
            "Expected scikit-image for data_source='sample'. Received: it is not installed. "
            "Run `pip install 'kerasdl[sample]'`."
        ) from None
    images = (np.clip(lfw_subset(), 0.0, 1.0) * 255).round().astype(np.uint8)
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".sample_", dir=cache_root))
    for index, image in enumerate(images):
        class_name = "face" if index < 100 else "non_face"
        (staging / class_name).mkdir(exist_ok=True)
        Image.fromarray(image, mode="L").save(staging / class_name / f"{index:03d}.png")
    try:
        staging.rename(target)
    except OSError:  # another process wrote it first
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _files_in(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file())


def _class_tree(root: Path) -> dict[str, Path]:
    """`{"all": root}`, or the `train`/`val`/`test` folders of a tree split in advance."""
    if not root.exists():
        raise DataError(
            f"Expected an image folder, a csv:FILE or tfds:NAME. Received: {root}, which "
            "does not exist. Check the path."
        )
    if not root.is_dir():
        raise DataError(
            f"Expected a folder with one sub-folder per class. Received: {root}, a file. "
            "Pass its folder, or csv:FILE for a label file."
        )
    split_folders = {_SPLIT_FOLDER_NAMES[p.name.lower()]: p for p in _class_folders(root)
                     if p.name.lower() in _SPLIT_FOLDER_NAMES}
    if "train" in split_folders and len(split_folders) >= 2:
        return dict(split_folders)
    return {"all": root}


def list_class_names(root: Path) -> list[str]:
    """The classes of a class-folder tree (its sub-folder names, sorted), from folder names alone.

    Raises:
        DataError: for a missing folder, a file, or no class folders.
    """
    tree = _class_tree(root)
    class_names = [p.name for p in _class_folders(tree.get("train", root))]
    if not class_names:
        raise DataError(
            f"Expected a folder with one sub-folder per class. Received: {root} with no "
            f"sub-folders. Put each class's images in {root}/<class>/."
        )
    return class_names


def list_class_folder(root: Path) -> tuple[list[str], dict[str, list[tuple[str, str]]]]:
    """Lists a class-folder tree as `{split: [(path, class name), ...]}`.

    Args:
        root: `DIR/<class>/...` or `DIR/{train,val,test}/<class>/...`.

    Returns:
        `(class_names, files)`; `files` has key `"all"` when the tree is not
        pre-split, else some of `"train"`, `"val"`, `"test"`.

    Raises:
        DataError: for a missing folder, no class folders, or a class folder
            without files.
    """
    tree = _class_tree(root)
    class_names = list_class_names(root)
    files: dict[str, list[tuple[str, str]]] = {}
    for split, folder in tree.items():
        entries = []
        for class_name in class_names:
            class_dir = folder / class_name
            class_files = _files_in(class_dir) if class_dir.is_dir() else []
            if not class_files and split in ("all", "train"):
                raise DataError(
                    f"Expected images in every class folder. Received: {class_dir} with none. "
                    "Add images or remove the folder."
                )
            entries += [(path, class_name) for path in class_files]
        files[split] = entries
    return class_names, files


_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"RIFF", b"II*\x00", b"MM\x00*")


def _has_image_signature(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4).startswith(_SIGNATURES)
    except OSError:
        return False


def _header_size(path: str) -> tuple[int, int] | None:
    """An image's width and height from its header, without Pillow's size limit.

    `Image.open` warns about, or refuses, an image with more pixels than
    `Image.MAX_IMAGE_PIXELS`; this asks the format plugins Pillow registers
    for the header alone, so a huge image is measured and never decoded.
    """
    Image.init()
    with open(path, "rb") as handle:
        prefix = handle.read(16)
        for name in Image.ID:
            factory, accept = Image.OPEN[name]
            accepted = not accept or accept(prefix)
            if not accepted or isinstance(accepted, str):
                continue
            handle.seek(0)
            try:
                image = factory(handle, path)
            except Exception:  # noqa: BLE001 - not this format (or not an image): try the next
                continue
            width, height = image.size
            image.close()
            return width, height
    return None


# Files whose headers `typical_image_size` reads: enough for a stable median, and quick.
TYPICAL_SIZE_SAMPLE = 256


def typical_image_size(paths: list[str], *, seed: int = 0, sample: int = TYPICAL_SIZE_SAMPLE) -> int | None:
    """The median shorter side of the images, read from the headers of a seeded sample.

    Args:
        paths: Image files.
        seed: Seed of the sample. Defaults to `0`.
        sample: Files to measure at most. Defaults to `TYPICAL_SIZE_SAMPLE`.

    Returns:
        The size in pixels, or `None` when no header could be read.
    """
    chosen = np.random.default_rng(seed).permutation(len(paths))[:sample]
    sides = []
    for index in chosen:
        try:
            size = _header_size(paths[index])
        except OSError:
            size = None
        if size:
            sides.append(min(size))
    return int(np.median(sides)) if sides else None


def inspect_image(path: str, *, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[bool, str | None]:
    """Checks that a file decodes fully as an image, and is not too large to.

    The header is read first: an image of more than `max_pixels` is skipped
    without decoding its pixels (and without Pillow's
    `DecompressionBombWarning`). Then the decoder training will use reads
    it: TensorFlow's for JPEG and PNG that it handles (checked by decoding),
    else Pillow's.

    Args:
        path: The file.
        max_pixels: Width x height above which an image is skipped as too
            large. Defaults to `MAX_IMAGE_PIXELS` (40 megapixels).

    Returns:
        `(needs_pillow, None)` for a good image (`needs_pillow` when
        TensorFlow's decoder cannot read it, or not upright), or
        `(False, reason)` for a file to skip, e.g.
        `"too large (12000 x 12000)"`.
    """
    try:
        if os.path.getsize(path) == 0:
            return False, "empty file"
        try:
            size = _header_size(path)
        except Exception:  # noqa: BLE001 - an unreadable header: Image.open below says why
            size = None
        if size is not None and size[0] * size[1] > max_pixels:
            return False, f"too large ({size[0]} x {size[1]})"
        with Image.open(path) as image:
            image_format, mode = image.format, image.mode
            if image.size[0] * image.size[1] > max_pixels:
                return False, f"too large ({image.size[0]} x {image.size[1]})"
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            if (mode in _TF_MODES.get(image_format, ()) and orientation == 1
                    and _tensorflow_decodes(path, image_format)):
                return False, None  # training decodes it with TensorFlow, which just did
            image.draft("RGB", (64, 64))  # JPEG: decode at reduced scale, still reads it all
            image.load()
    except FileNotFoundError:  # a file a label file or @list.txt names that is not there
        return False, "file not found"
    except Image.DecompressionBombError:  # above Pillow's own hard limit
        return False, f"too large ({size[0]} x {size[1]})" if size else "too large"
    except Image.UnidentifiedImageError:
        if _has_image_signature(path):
            return False, "corrupt (an image header, but the data does not decode)"
        return False, "not an image"
    except Exception as error:  # noqa: BLE001 - whatever a damaged file makes Pillow raise
        message = (str(error).splitlines() or [type(error).__name__])[0][:80]
        return False, f"corrupt or truncated ({message})"
    return True, None  # Pillow reads it; TensorFlow cannot, or not the right way up


def _tensorflow_decodes(path: str, image_format: str) -> bool:
    """Whether TensorFlow's own decoder, the one training uses, reads the file.

    It is stricter than Pillow (libpng checks every chunk up to IEND, its JPEG
    reader fails on a missing end marker, its BMP reader on bytes after the
    rows, its GIF reader on a pixel outside a short palette), so a file
    Pillow reads could still stop training mid-epoch; such files are decoded
    with Pillow instead. A JPEG is decoded at 1/8 scale, which still reads
    all of its data.
    """
    import tensorflow as tf

    try:
        data = tf.io.read_file(path)
        if image_format == "JPEG":
            tf.io.decode_jpeg(data, channels=3, ratio=8)
        else:
            tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.OpError, ValueError):
        return False
    return True


def scan_images(
    entries: list[tuple[str, int]], *, workers: int | None = None, progress: bool = False,
    max_pixels: int = MAX_IMAGE_PIXELS, on_checked: Callable[[int], None] | None = None,
) -> tuple[ImageFiles, list[SkippedFile]]:
    """Scans `(path, label)` pairs in parallel and keeps the readable images.

    Args:
        entries: Files with their class indices.
        workers: Threads to use. Defaults to `None` (a few per CPU).
        progress: Show a progress bar. Defaults to `False`.
        max_pixels: Images of more pixels are skipped as too large,
            unread (see `inspect_image`). Defaults to `MAX_IMAGE_PIXELS`.
        on_checked: Called with the number of files checked so far (every
            100 and at the end), e.g. to move one bar over several scans.
            Defaults to `None`.

    Returns:
        `(readable files, skipped files)`, in the order of `entries`.
    """
    paths = [path for path, _ in entries]
    workers = workers or min(32, 4 * (os.cpu_count() or 1))
    check = functools.partial(inspect_image, max_pixels=max_pixels)
    # The filter is set here, once, for the worker threads: with a limit above
    # Pillow's, Image.open warns about images that are allowed.
    with warnings.catch_warnings(), concurrent.futures.ThreadPoolExecutor(workers) as pool:
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        results = pool.map(check, paths)
        if progress and len(paths) > 200:
            from kerasdl._util.console import progress_bar

            on_checked = progress_bar(len(paths), unit_name="file", done="Checked").update
        if on_checked is not None:
            checked = []
            for result in results:
                checked.append(result)
                if len(checked) % 100 == 0 or len(checked) == len(paths):
                    on_checked(len(checked))
            results = checked
        results = list(results)
    good, skipped = ImageFiles(), []
    for (path, label), (needs_pillow, reason) in zip(entries, results, strict=True):
        if reason:
            skipped.append(SkippedFile(path, reason))
        else:
            good.paths.append(path)
            good.labels.append(label)
            good.use_pillow.append(needs_pillow)
    return good, skipped


def _check_every_class_has_images(
    files: ImageFiles, class_names: list[str], source, skipped: list[SkippedFile]
) -> None:
    counts = files.class_counts(len(class_names))
    empty = [name for name, count in zip(class_names, counts, strict=True) if count == 0]
    if len(empty) == len(class_names):
        raise DataError(
            f"Expected readable images. Received: none in {source} ({len(skipped)} files skipped, "
            "reasons above). Add images that decode as JPEG, PNG, BMP, GIF or WebP."
        )
    if empty:
        raise DataError(
            f"Expected readable images in every class. Received: none in {', '.join(empty)} "
            f"in {source}. Add images or remove the class."
        )


def file_size(path: str) -> int | str:
    """A file's size in bytes, or `""` when it cannot be read (split.csv's `bytes` column)."""
    try:
        return os.path.getsize(path)
    except OSError:
        return ""


def write_split_csv(data: ImageData, path: str | os.PathLike) -> None:
    """Writes `split,path,label,bytes` rows so a run's split can be reproduced (and a resume
    can say which files changed, `kerasdl.data.file_list`)."""
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["split", "path", "label", "bytes"])
        for split, files in data.files.items():
            for file_path, label in zip(files.paths, files.labels, strict=True):
                writer.writerow([split, file_path, data.class_names[label], file_size(file_path)])


def write_skipped_csv(skipped: list[SkippedFile], path: str | os.PathLike) -> None:
    """Writes `path,reason` rows of the files left out."""
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "reason"])
        writer.writerows([item.path, item.reason] for item in skipped)

