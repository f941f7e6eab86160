"""kerasdl's progress messages: one `logging` logger, shown on stdout by default.

Library code never prints; it logs to `kerasdl` (`logger.info`), which the
default handler writes to the current `sys.stdout`, message only. Silence or
redirect it like any logger, e.g.
`logging.getLogger("kerasdl").setLevel(logging.WARNING)`; the CLI's
`--quiet` and `--verbose` call `set_verbosity`.
"""

from __future__ import annotations

import logging
import sys

LOGGER_NAME = "kerasdl"
VERBOSITY = {"quiet": logging.WARNING, "normal": logging.INFO, "verbose": logging.DEBUG}


class _CurrentStdoutHandler(logging.StreamHandler):
    """A StreamHandler bound to whatever `sys.stdout` is when it writes.

    Click's runner and pytest swap `sys.stdout`; a handler that kept the
    stream it was made with would write past them.
    """

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns one; stdout is looked up instead
        pass


def _make_logger() -> logging.Logger:
    made = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(h, _CurrentStdoutHandler) for h in made.handlers):
        handler = _CurrentStdoutHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        made.addHandler(handler)
    made.setLevel(logging.INFO)
    made.propagate = False  # the handler above already shows it; the root logger would repeat it
    return made


logger = _make_logger()


def set_verbosity(verbosity: str) -> None:
    """Sets how much of kerasdl's progress is shown.

    Args:
        verbosity: `"quiet"` (warnings only), `"normal"` or `"verbose"`.

    Raises:
        ValueError: for another value.
    """
    if verbosity not in VERBOSITY:
        raise ValueError(f"Expected verbosity in {sorted(VERBOSITY)}. Received: verbosity={verbosity!r}.")
    logger.setLevel(VERBOSITY[verbosity])
