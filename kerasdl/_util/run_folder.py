"""Which files of an output folder kerasdl wrote, and what it may therefore replace.

kerasdl never deletes or writes over a user's files. An output folder is
one of:

- new or empty: a run (or an evaluation) may go there;
- a kerasdl run: its `config.json` carries `"kerasdl_run"` (or, from older
  versions, kerasdl's own keys), or its `manifest.json` says so; `resume=True`
  continues it and `overwrite=True` replaces it;
- a kerasdl evaluation: `kerasdl evaluate --overwrite` may replace it;
- anything else, the user's: refused.

`manifest.json` lists every file kerasdl wrote in the folder. While a run is
in progress it also claims the names the run is about to write and its
scratch folders (`checkpoints/`, `cache/`, `export/`, `logs/`, whose files
TensorFlow names), so a run killed at any moment is still covered; when the run is
complete it lists exactly the files there. Replacing a run deletes the files
of its manifest (or, for a run without one, the files under the run-folder
names of DESIGN.md), then the folders they leave empty, and nothing else.
"""


from __future__ import annotations

import json
import os
from pathlib import Path

from kerasdl._util.files import write_json
from kerasdl._util.paths import check_output_folder
from kerasdl.errors import RunFolderError

MANIFEST = "manifest.json"
CONFIG = "config.json"
# The field of config.json that marks a kerasdl run folder, and its format.
RUN_MARKER_KEY = "kerasdl_run"
RUN_FORMAT = 1
MANIFEST_KEY = "kerasdl_manifest"
# config.json of a run written before the marker existed has all of these.
OLD_CONFIG_KEYS = frozenset({"status", "command", "recipe", "seed", "environment"})
# The files of a run folder (DESIGN.md, and what the code writes beside them).
RUN_FILES = ("config.json", "history.csv", "model.keras", "metrics.json", "curves.png",
             "confusion_matrix.png", "roc.png", "precision_recall.png", "misclassified.png",
             "cam_wrong.png", "cam_right.png", "report.md", "split.csv", "skipped.csv", MANIFEST, ".model.tmp.keras")
# Folders of a run whose files TensorFlow, TensorBoard and the exporters name; kerasdl owns them whole.
RUN_FOLDERS = ("export", "checkpoints", "cache", "logs")
EVALUATION_FILES = ("metrics.json", "confusion_matrix.png", "roc.png", "precision_recall.png",
                    "misclassified.png", "cam_wrong.png", "cam_right.png", MANIFEST)
# Outputs that `kerasdl evaluate` and `kerasdl explain` may write inside a run (RUN/evaluation/).
NESTED_KINDS = ("evaluation", "explanation")
_MAX_CONFIG_BYTES = 16 << 20
_SHOWN = 4


def read_json_object(path: Path) -> dict | None:
    """The JSON object in a plain file of at most 16 MiB; `None` for anything else or unreadable."""
    try:
        if not path.is_file() or path.stat().st_size > _MAX_CONFIG_BYTES:
            return None
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    return data if isinstance(data, dict) else None


def is_run_config(path: str | os.PathLike) -> bool:
    """Whether a file is the `config.json` of a kerasdl run.

    Args:
        path: The file.

    Returns:
        True when it is a JSON object with `"kerasdl_run"`, or with every
        key an older kerasdl run wrote (`status`, `command`, `recipe`,
        `seed`, `environment`).
    """
    config = read_json_object(Path(path))
    if config is None:
        return False
    return RUN_MARKER_KEY in config or (OLD_CONFIG_KEYS <= set(config)
                                        and isinstance(config.get("recipe"), dict))


def _manifest(folder: Path) -> dict | None:
    data = read_json_object(folder / MANIFEST)
    if data is None or MANIFEST_KEY not in data:
        return None
    lists = [data.get(key, []) for key in ("files", "folders")]
    if not all(isinstance(names, list) and all(isinstance(n, str) for n in names) for names in lists):
        return None
    return data


def _walk_files(root: Path, base: Path) -> list[str]:
    """Files (and links) under `root`, relative to `base`; links are not followed."""
    if root != base and (root.is_symlink() or not root.is_dir()):
        return [root.relative_to(base).as_posix()]
    found = []
    for folder, folders, files in os.walk(root):
        for name in files + [d for d in folders if os.path.islink(os.path.join(folder, d))]:
            found.append(Path(folder, name).relative_to(base).as_posix())
    return found


def _describe(entries: list[str]) -> str:
    shown = ", ".join(entries[:_SHOWN]) + (", ..." if len(entries) > _SHOWN else "")
    return f"{len(entries)} {'entry' if len(entries) == 1 else 'entries'} ({shown})"


class RunFolder:
    """An output folder and the files kerasdl wrote in it (its `manifest.json`).

    Args:
        path: The folder (it need not exist).
        kind: `"run"`, `"evaluation"` or `"explanation"`: what a new
            manifest says the folder holds. Defaults to `"run"`.

    Example:
    ```python
    folder = RunFolder("runs/flowers")
    folder.start()          # before writing: the manifest claims the run's names
    ...                     # write config.json, train, evaluate, export
    folder.record(complete=True)
    ```
    """

    def __init__(self, path: str | os.PathLike, *, kind: str = "run"):
        self.path = Path(path)
        manifest = _manifest(self.path)
        self.kind = manifest.get("kind", kind) if manifest else kind
        self.has_manifest = manifest is not None
        self._files: set[str] = set(manifest.get("files", [])) if manifest else set()
        self._folders: set[str] = set(manifest.get("folders", [])) if manifest else set()
        self._before: set[str] = set()

    # ----------------------------------------------------------- what it holds

    def entries(self) -> list[str]:
        """The folder's top-level entries, sorted (folders end in `/`)."""
        if not self.path.is_dir():
            return []
        return sorted(entry.name + ("/" if entry.is_dir(follow_symlinks=False) else "")
                      for entry in os.scandir(self.path))

    def holds_files(self) -> bool:
        """Whether any file (or link) lies in the folder; empty sub-folders do not count."""
        return self.path.is_dir() and bool(_walk_files(self.path, self.path))

    def holds_run(self) -> bool:
        """Whether the folder holds a kerasdl run (config.json or manifest says so)."""
        return is_run_config(self.path / CONFIG) or (self.has_manifest and self.kind == "run")

    def holds_evaluation(self) -> bool:
        """Whether the folder holds only what `kerasdl evaluate` writes."""
        if self.has_manifest:
            return self.kind == "evaluation"
        entries = self.entries()
        return bool(entries) and set(entries) <= set(EVALUATION_FILES)

    def owned_files(self) -> list[str]:
        """The files kerasdl wrote here that exist now, relative and sorted.

        From `manifest.json` (its files, and everything under the folders it
        claims); for an older run without one, the files under the
        run-folder names of DESIGN.md.
        """
        if not self.path.is_dir():
            return []
        if self.has_manifest:
            files, folders = self._files, self._folders
        elif self.holds_evaluation():
            files, folders = set(EVALUATION_FILES), set()
        elif self.holds_run():
            files, folders = set(RUN_FILES), set(RUN_FOLDERS)
        else:
            return []
        owned = {name for name in files if os.path.lexists(self.path / name)}
        for name in folders:
            if os.path.lexists(self.path / name):
                owned.update(_walk_files(self.path / name, self.path))
        if self.holds_run():
            owned.update(self._nested_outputs())
        return sorted(name for name in owned if self._inside(name))

    def _nested_outputs(self) -> set[str]:
        """The files of the evaluations and explanations kerasdl wrote inside this run.

        `kerasdl evaluate RUN` writes `RUN/evaluation/` after the run is
        complete, so the run's manifest does not list it; each such folder
        has a manifest of its own. They describe the run's model, so
        replacing the run replaces them too.
        """
        found = set()
        for folder, folders, _ in os.walk(self.path):
            folders[:] = [name for name in folders if not os.path.islink(os.path.join(folder, name))]
            if Path(folder) == self.path:
                continue
            nested = RunFolder(folder)
            if nested.has_manifest and nested.kind in NESTED_KINDS:
                base = Path(folder).relative_to(self.path)
                found.update((base / name).as_posix() for name in nested.owned_files())
        return found

    def foreign_entries(self) -> list[str]:
        """Top-level entries kerasdl did not write (in full), sorted."""
        owned = self.owned_files()
        # A claimed folder counts as kerasdl's even while empty (a cache a killed run never filled).
        tops = {name.split("/")[0] for name in owned} | (self._folders if self.has_manifest else set())
        foreign = []
        for entry in self.entries():
            name = entry.rstrip("/")
            if name not in tops:
                foreign.append(entry)
            elif entry.endswith("/"):
                inside = set(_walk_files(self.path / name, self.path))
                if not inside <= set(owned):
                    foreign.append(entry)
        return foreign

    def _inside(self, relative: str) -> bool:
        """Whether `relative` names something inside the folder, reached without links."""
        parts = Path(relative).parts
        if not parts or ".." in parts or Path(relative).is_absolute():
            return False
        parent = self.path
        for part in parts[:-1]:
            parent = parent / part
            if parent.is_symlink():
                return False
        return True

    # ---------------------------------------------------------------- checks

    def check_new_run(self, *, overwrite: bool = False) -> None:
        """Checks that a new run may go here, before any work.

        Args:
            overwrite: Whether an existing kerasdl run may be replaced.
                Defaults to `False`.

        Raises:
            RunFolderError: for a folder of the user's (not new, empty or a
                kerasdl run), a run without `overwrite`, or a run folder in
                which a file of the user's has a name the new run writes.
        """
        check_output_folder(self.path)
        entries = self.entries()
        if not self.holds_files():
            return
        if not self.holds_run():
            raise RunFolderError(
                f"Expected output_dir= to be a new or empty folder, or a kerasdl run folder. "
                f"Received: {self.path}, which holds {_describe(entries)} and no kerasdl run. "
                "kerasdl writes into and replaces only its own run folders: pick another output_dir.",
                argument="output_dir",
            )
        if not overwrite:
            raise RunFolderError(
                f"Expected output_dir= to be a new or empty folder. Received: {self.path}, which holds "
                "a run. Pass resume=True to continue it, overwrite=True to replace it, or pick another "
                "output_dir.",
                argument="output_dir",
            )
        clashing = [entry for entry in self.foreign_entries()
                    if entry.rstrip("/") in RUN_FILES + RUN_FOLDERS]
        if clashing:
            raise RunFolderError(
                f"Expected a run folder whose files are kerasdl's to replace. Received: {self.path}, "
                f"where {', '.join(clashing)} was not written by kerasdl but a new run writes that name. "
                "Move it out, or pick another output_dir.",
                argument="output_dir",
            )

    def check_evaluation(self) -> None:
        """Checks that `kerasdl evaluate` may write here, before any work.

        Raises:
            RunFolderError: unless the folder is new, empty, or an earlier
                evaluation.
        """
        self._check_reusable("evaluation", self.holds_evaluation(), folder="evaluation")

    def check_explanation(self) -> None:
        """Checks that `kerasdl explain` may write here, before any work.

        Raises:
            RunFolderError: unless the folder is new, empty, or an earlier
                explanation (whose manifest says `"explanation"`).
        """
        self._check_reusable("explanation", self.has_manifest and self.kind == "explanation", folder="explain")

    def _check_reusable(self, kind: str, earlier: bool, *, folder: str) -> None:
        check_output_folder(self.path)
        entries = self.entries()
        if not self.holds_files() or earlier:
            return
        what = "a kerasdl run" if self.holds_run() else f"{_describe(entries)} kerasdl did not write"
        raise RunFolderError(
            f"Expected output_dir= to be a new or empty folder, or an earlier {kind}. Received: "
            f"{self.path}, which holds {what}. Pick another output_dir, e.g. {self.path / folder}.",
            argument="output_dir",
        )

    # ------------------------------------------------------------- replacing

    def clear(self) -> list[str]:
        """Deletes the files kerasdl wrote here, then the folders left empty.

        `manifest.json` goes last, so an interrupted clear leaves a folder
        still known as a run. Links are removed, never followed.

        Returns:
            The top-level entries that stay (not written by kerasdl); the
            folder itself is removed when nothing stays.
        """
        owned = self.owned_files()
        last = {MANIFEST: 2, CONFIG: 1}
        folders = set()
        for name in sorted(owned, key=lambda n: last.get(n, 0)):
            path = self.path / name
            if path.is_symlink() or path.is_file():
                path.unlink()
            parent = Path(name).parent
            while parent != Path("."):
                folders.add(parent)
                parent = parent.parent
        folders.update(Path(name) for name in (self._folders if self.has_manifest else RUN_FOLDERS))
        for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):
            path = self.path / folder
            if self._inside(folder.as_posix()) and path.is_dir() and not path.is_symlink():
                try:
                    path.rmdir()
                except OSError:  # not empty: something of the user's is in it
                    pass
        self._files, self._folders, self.has_manifest = set(), set(), False
        remaining = self.entries()
        if not remaining:
            self.path.rmdir()
        return remaining

    # --------------------------------------------------------------- writing

    def start(self, *, claim: tuple[str, ...] | None = None) -> None:
        """Creates the folder and writes a manifest before anything else.

        Files already there that kerasdl did not write stay the user's.

        Args:
            claim: Names (files, or folders kerasdl owns whole) about to be
                written, claimed up front so that a run killed before it
                records them still owns them. Defaults to `None`: the
                run-folder names for a run, the evaluation files for an
                evaluation.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        owned = set(self.owned_files())
        self._files |= owned
        self._before = set(_walk_files(self.path, self.path)) - owned
        if claim is None:
            claim = RUN_FILES + RUN_FOLDERS if self.kind == "run" else EVALUATION_FILES
        taken = {name.split("/")[0] for name in self._before}
        for name in claim:
            if name in taken:
                continue  # the user's
            if name in RUN_FOLDERS:
                self._folders.add(name)
            else:
                self._files.add(name)
        self._files.add(MANIFEST)
        self._write()

    def record(self, *, complete: bool = False) -> None:
        """Adds every file written since `start` to the manifest.

        Args:
            complete: The folder is finished: list exactly its files and
                drop the up-front claims. Defaults to `False`.
        """
        if not self.path.is_dir():
            return
        present = set(_walk_files(self.path, self.path))
        written = present - self._before
        if complete:
            self._files, self._folders = written | {MANIFEST}, set()
        else:
            self._files |= written
        self._write()

    def _write(self) -> None:
        write_json({MANIFEST_KEY: RUN_FORMAT, "kind": self.kind,
                    "files": sorted(self._files), "folders": sorted(self._folders)},
                   self.path / MANIFEST)


# ------------------------------------------------------------ apart from the data


def _relation(output: Path, data: Path) -> str | None:
    if output == data:
        return "is the data folder"
    if output.is_relative_to(data):
        return f"is inside the data folder {data}"
    if data.is_relative_to(output):
        return f"holds the data folder {data}"
    return None


def check_apart_from_data(
    output_dir: str | os.PathLike, data_folders: list[Path], *, data_source: str,
    argument: str = "output_dir", given: str | None = None,
) -> None:
    """Checks that an output (folder or file) is not the data, inside it, or above it.

    Paths are compared resolved, symlinks followed. Every command that writes
    calls this before any work, so nothing it writes lands among the images
    it reads (where the next run would find another class).

    Args:
        output_dir: The output folder (or file).
        data_folders: The folders holding the data (for `csv:`, the label
            files' folders; for image files given one by one, their folders).
        data_source: The source as given, for the message.
        argument: The Python argument that names the output, for the
            message and the flag the CLI shows. Defaults to `"output_dir"`.
        given: How the message names what was read. Defaults to `None`
            (`data_source=<data_source>`).

    Raises:
        RunFolderError: if the output and a data folder overlap.
    """
    output = Path(output_dir).expanduser().resolve()
    for folder in data_folders:
        data = Path(folder).expanduser().resolve()
        relation = _relation(output, data)
        if relation:
            example = data.parent / ("runs" if argument == "output_dir" else Path(output_dir).name)
            raise RunFolderError(
                f"Expected {argument}= apart from the data. Received: {output_dir}, which {relation} "
                f"({given or f'data_source={data_source}'}). Pick {argument}= outside {data}, "
                f"e.g. {example}.",
                argument=argument,
            )


def check_files_outside(output_dir: str | os.PathLike, paths: list[str], *, data_source: str) -> None:
    """Checks that no data file lies in the output folder (links followed).

    Raises:
        RunFolderError: naming the first file inside it.
    """
    output = Path(output_dir).expanduser().resolve()
    for path in paths:
        if Path(path).resolve().is_relative_to(output):
            raise RunFolderError(
                f"Expected the images of {data_source} outside the output folder. Received: {path}, "
                f"which lies in output_dir={output_dir}. Pick an output_dir apart from the data.",
                argument="output_dir",
            )
