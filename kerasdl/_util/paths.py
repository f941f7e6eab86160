"""Paths kerasdl owns: its home and cache folders, output-folder checks, safe publishing, run models."""


from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from kerasdl.errors import ModelFileError, RunFolderError, WeightsError


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


def run_model_path(source: str | os.PathLike, run_models: tuple[str, ...], *, expected: str, fix: str) -> Path:
    """`source` itself, or for a folder the first of `run_models` it holds (the model of a run folder).

    One resolver for the commands that take "a run folder or a model file"
    (`kerasdl demo` prefers the run's exported `.tflite`, `kerasdl explain`
    needs its `.keras`); each checks the path it gets for what it can run.

    Args:
        source: A run folder, or a model file or folder.
        run_models: Paths relative to a folder, in order of preference, e.g.
            `("export/model.tflite", "model.keras")`.
        expected: What `source` should be, for the error, e.g. `"a run
            folder or a model file"`.
        fix: The error's last sentence, what to pass instead.

    Returns:
        The model file found in the folder, else `source` as a `Path` (a
        file, or a folder holding none of `run_models`).

    Raises:
        ModelFileError: if `source` does not exist.
    """
    source = Path(source)
    if not source.exists():
        raise ModelFileError(f"Expected {expected}. Received: {source}, which does not exist. {fix}")
    if source.is_dir():
        return next((source / name for name in run_models if (source / name).is_file()), source)
    return source
