"""What the terminal shows: kerasdl's own lines, readable warnings, no TensorFlow chatter.

`setup_console` runs once per command, before TensorFlow loads:

- `TF_CPP_MIN_LOG_LEVEL=3` (unless the user set it), and TensorFlow's, absl's
  and JAX's Python loggers at ERROR;
- the first `import tensorflow` runs with file descriptor 2 held
  (`kerasdl._util.native_output.held_stderr`), since absl and oneDNN write
  their start-up notes there before any log level applies;
- Python warnings print as one `Warning: ...` line without a source path,
  and the deprecation and framework-internal warnings that mean nothing to
  a user are dropped;
- the `kerasdl` loggers print their status lines (INFO) to stdout.

With `--verbose` all of that is shown as TensorFlow writes it; with
`--quiet` only warnings, errors and each command's result remain.
"""


from __future__ import annotations

import contextlib
import dataclasses
import importlib.abc
import importlib.util
import io
import logging
import os
import sys
import warnings
from collections.abc import Callable

import click

# Where the warnings that mean nothing to a kerasdl user come from.
_FRAMEWORK_MODULES = r"(keras|tensorflow|tf_keras|absl|tensorflow_datasets|google|jax|jaxlib|h5py|ml_dtypes|ai_edge_litert|onnx|onnxruntime|tf2onnx|matplotlib|PIL)(\.|$)"
_FRAMEWORK_LOGGERS = ("tensorflow", "absl", "jax", "jax._src.xla_bridge", "h5py", "tf2onnx", "matplotlib")


@dataclasses.dataclass
class ConsoleOptions:
    """How much the terminal shows.

    Attributes:
        verbose: Show TensorFlow's, absl's and CUDA's own log lines, every
            Python warning with its source, and debug lines.
        quiet: Show only warnings, errors and each command's result (no
            progress bars or status lines).
    """

    verbose: bool = False
    quiet: bool = False


def setup_console(options: ConsoleOptions, *, user_tf_log_level: str | None = None,
                  in_flags: Callable[[str], str] | None = None) -> None:
    """Sets log levels, the warning format and the stderr hold for this process.

    Call it before TensorFlow is imported; calling it again (tests run many
    commands in one process) replaces what the last call set.

    Args:
        options: The `ConsoleOptions`.
        user_tf_log_level: `TF_CPP_MIN_LOG_LEVEL` as the user set it before
            kerasdl started, kept as it is. Defaults to `None` (not set).
        in_flags: Says a library line's Python words as the command's flags
            (`feature_cache=False` -> `--no-feature-cache`;
            `kerasdl.cli.flags.in_flags`), for kerasdl's log lines.
            Defaults to `None` (lines as the library wrote them).
    """
    if user_tf_log_level is None:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if options.verbose else "3"
    _setup_logging(options, in_flags)
    _setup_warnings(options)
    _remove_import_hold()
    if not options.verbose and "tensorflow" not in sys.modules:
        sys.meta_path.insert(0, _HeldImport("tensorflow"))


def _setup_logging(options: ConsoleOptions, in_flags: Callable[[str], str] | None = None) -> None:
    logger = logging.getLogger("kerasdl")
    for handler in list(logger.handlers):  # the library's default handler, or an earlier command's
        logger.removeHandler(handler)
    handler = _EchoHandler(in_flags)
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG if options.verbose else logging.WARNING if options.quiet else logging.INFO)
    for name in _FRAMEWORK_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if options.verbose else logging.ERROR)


class _EchoHandler(logging.Handler):
    """INFO lines to stdout; warnings and errors to stderr, prefixed; the library's Python
    words for arguments said as the command's flags (the library never names a flag)."""

    def __init__(self, in_flags: Callable[[str], str] | None = None):
        super().__init__()
        self.in_flags = in_flags

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if self.in_flags is not None and record.name != "kerasdl.native":
                message = self.in_flags(message)
            if record.name == "kerasdl.native":
                click.echo(message, err=True)
            elif record.levelno >= logging.WARNING:
                click.echo(f"{record.levelname.capitalize()}: {message}", err=True)
            else:
                click.echo(message)
        except Exception:  # noqa: BLE001 - logging must never break the command
            self.handleError(record)


def _setup_warnings(options: ConsoleOptions) -> None:
    if options.verbose:
        warnings.showwarning = getattr(warnings, "_showwarning_orig", _ORIGINAL_SHOWWARNING)
        warnings.simplefilter("default")
        return
    warnings.showwarning = show_warning
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning, ImportWarning,
                     ResourceWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", module=_FRAMEWORK_MODULES)


_ORIGINAL_SHOWWARNING = warnings.showwarning


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """`warnings.showwarning` for users: `Warning: <message>`, no source path or code line."""
    text = str(message).strip()
    prefix = "Warning" if category in (UserWarning, RuntimeWarning) else category.__name__
    click.echo(f"{prefix}: {text}", err=True)


def format_size(num_bytes: int) -> str:
    """`1.2 MB`, `340 KB`, `12 B`."""
    if num_bytes >= 1e6:
        return f"{num_bytes / 1e6:.1f} MB"
    if num_bytes >= 1e3:
        return f"{num_bytes / 1e3:.0f} KB"
    return f"{num_bytes} B"


@contextlib.contextmanager
def quietly(options: ConsoleOptions | None):
    """Swallows stdout (progress bars, status lines) in `--quiet` mode."""
    if options is None or not options.quiet:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


# --- the held `import tensorflow` ---------------------------------------------------------

class _HeldImport(importlib.abc.MetaPathFinder):
    """Finds `name` as usual, but runs its module code with stderr held.

    It stays on `sys.meta_path` until the module's code runs (a mere
    `importlib.util.find_spec(name)`, as libraries do to see what is
    installed, leaves it there).
    """

    def __init__(self, name: str):
        self.name = name
        self._finding = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name or self._finding:
            return None
        self._finding = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._finding = False
        if spec is not None and spec.loader is not None:
            spec.loader = _HeldLoader(spec.loader)
        return spec


class _HeldLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        from kerasdl._util.native_output import held_stderr

        _remove_import_hold()  # the module runs once
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        with held_stderr():
            self._loader.exec_module(module)

    def __getattr__(self, name):  # resource readers and the like
        return getattr(self._loader, name)


def _remove_import_hold() -> None:
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _HeldImport)]

