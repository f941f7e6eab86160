"""Paths kerasdl owns: its home and cache folders, output-folder checks, safe publishing."""


from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from kerasdl.errors import RunFolderError, WeightsError


def kerasdl_home() -> Path:
    """The kerasdl cache folder: `$KERASDL_HOME`, else `~/.cache/kerasdl`."""
    return Path(os.environ.get("KERASDL_HOME", Path.home() / ".cache" / "kerasdl"))




def check_output_folder(path: str | os.PathLike) -> Path:
    """Checks that a folder can be created or written, before costly work.

    Raises:
        RunFolderError: if it is a file or cannot be written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"Expected an output folder. Received: {path}, a file. Pick another output_dir.",
                             argument="output_dir")
    existing = next((p for p in [path, *path.parents] if p.exists()), Path("."))
    if not existing.is_dir():
        raise RunFolderError(
            f"Expected a writable output folder. Received: {path}, inside {existing}, a file. "
            "Pick another output_dir.",
            argument="output_dir",
        )
    if not os.access(existing, os.W_OK):
        raise RunFolderError(
            f"Expected a writable output folder. Received: {path} ({existing} is not writable). "
            "Pick another output_dir.",
            argument="output_dir",
        )
    return path


def file_hash(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Returns the hex digest of a file (`"sha256"` or `"md5"`), read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def keras_cache_dir() -> Path:
    """Returns the folder where Keras caches downloaded weights.

    This is `$KERAS_HOME/models` (`~/.keras/models` by default) as Keras
    itself resolved it when it was imported.
    """
    try:
        from keras.src.backend import config as keras_config

        keras_home = keras_config.keras_home()
    except (ImportError, AttributeError):  # Keras moved its private helper.
        keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return Path(os.path.expanduser(keras_home)) / "models"


def check_writable(folder: Path) -> None:
    """Makes `folder` if needed, or raises `WeightsError` if it cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        writable = os.access(folder, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        raise WeightsError(
            f"Expected a writable Keras cache folder. Received: {folder}, which cannot be written. "
            "Fix its permissions, or set KERAS_HOME to a writable folder."
        )


def publish_file(write, target: Path) -> Path:
    """Writes a file under a temporary name beside `target`, then renames it.

    Args:
        write: Called with the temporary path; it writes the file there.
        target: The final path; replaced only once `write` has succeeded.

    Returns:
        `target`.

    Raises:
        WeightsError: if the folder cannot be written.
    """
    check_writable(target.parent)
    handle, temporary = tempfile.mkstemp(prefix=".partial_", suffix="." + target.name, dir=target.parent)
    os.close(handle)
    try:
        write(temporary)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; a cache is shared
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return target

