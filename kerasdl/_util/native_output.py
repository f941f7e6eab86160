"""Hold what native (C++) code writes to the standard error stream.

TensorFlow, absl and LiteRT write start-up notes straight to file
descriptor 2 (`WARNING: All log messages before absl::InitializeLog()...`,
`I0000 ... oneDNN custom operations are on`, `INFO: Created TensorFlow Lite
XNNPACK delegate for CPU.`), whatever `TF_CPP_MIN_LOG_LEVEL` says. Python
cannot filter those writes, so `held_stderr` points descriptor 2 at a
temporary file while such code runs, then writes back what is not such a
note and hands the notes to the `kerasdl.native` logger at DEBUG level
(the CLI shows them with `--verbose`).
"""


from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading

log = logging.getLogger("kerasdl.native")

# The notes native libraries print on their own, one pattern per kind of line.
_CHATTER = re.compile(
    r"^("
    r"[IWEF]\d{4} \d\d:\d\d:\d\d"  # absl / glog: I0000 00:00:1796... port.cc:153] ...
    r"|WARNING: All log messages before absl::InitializeLog\(\)"
    r"|INFO: Created TensorFlow Lite"
    r"|INFO: Initialized TensorFlow Lite"
    r"|To enable the following instructions:"  # the second line of cpu_feature_guard's note
    r"|fully_quantize: \d+, inference_type: "  # the TFLite quantizer, once per quantization
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] "  # TF 2.1x's own prefix
    r")"
)
_HOLD = threading.Lock()


def is_native_chatter(line: str) -> bool:
    """Whether `line` is a start-up or log note of TensorFlow, absl, CUDA or LiteRT."""
    return bool(_CHATTER.match(line))


@contextlib.contextmanager
def held_stderr(*, replay_all_on_error: bool = True):
    """Holds file descriptor 2 while native code that talks too much runs.

    On exit, lines that are not native chatter (see `is_native_chatter`) are
    written back to the real standard error, and the chatter goes to the
    `kerasdl.native` logger at DEBUG level. If the block raises, everything
    held is written back, since it may explain the error.

    Args:
        replay_all_on_error: Write every held line back when the block
            raises. Defaults to `True`.

    Yields:
        Nothing.

    Example:
    ```python
    with held_stderr():
        import tensorflow as tf
    ```
    """
    try:
        fd = sys.__stderr__.fileno() if sys.__stderr__ is not None else 2
        saved = os.dup(fd)
    except (OSError, ValueError, AttributeError):  # no real descriptor 2 (embedded, some IDEs)
        yield
        return
    with _HOLD, tempfile.TemporaryFile(mode="w+b") as held:
        failed = False
        _flush_python_streams()
        os.dup2(held.fileno(), fd)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            _flush_python_streams()
            os.dup2(saved, fd)
            os.close(saved)
            held.seek(0)
            _replay(held.read().decode("utf-8", "replace"), fd, everything=failed and replay_all_on_error)


def _flush_python_streams() -> None:
    for stream in (sys.stderr, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()


def _replay(text: str, fd: int, *, everything: bool) -> None:
    kept = []
    for line in text.splitlines(keepends=True):
        if not everything and is_native_chatter(line):
            log.debug(line.rstrip("\n"))
        else:
            kept.append(line)
    if kept:
        os.write(fd, "".join(kept).encode())
