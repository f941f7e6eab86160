"""kerasdl's progress messages: the `kerasdl` logger, shown on stdout by default.

Library code never prints; each module logs to `logging.getLogger(__name__)`
(`kerasdl.training.engine`, ...), whose records reach the `kerasdl` logger.
Importing kerasdl gives that logger one default handler, which writes the
message to the current `sys.stdout`, so a Python user sees progress without
configuring logging. Silence or redirect it like any logger, e.g.
`logging.getLogger("kerasdl").setLevel(logging.WARNING)`, or call
`set_verbosity`; the CLI replaces the handler with its own console.
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


def install_default_handler() -> logging.Logger:
    """Gives the `kerasdl` logger its default handler (message only, to stdout) at INFO.

    Safe to call again; it adds the handler only where it is missing.

    Returns:
        The `kerasdl` logger.
    """
    made = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(h, _CurrentStdoutHandler) for h in made.handlers):
        handler = _CurrentStdoutHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        made.addHandler(handler)
    made.setLevel(logging.INFO)
    made.propagate = False  # the handler above already shows it; the root logger would repeat it
    return made


logger = install_default_handler()


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
