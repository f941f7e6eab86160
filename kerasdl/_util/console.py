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


def stdout_is_interactive() -> bool:
    """Whether `sys.stdout` redraws in place: a terminal, or a Jupyter notebook (ipykernel);
    not a file, a pipe or a test's capture."""
    if "ipykernel" in sys.modules:
        return True
    try:
        return bool(sys.stdout.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(total: int, *, unit_name: str = "step", done: str | None = None):
    """A `keras.utils.Progbar` fit for where stdout goes.

    On a terminal or in a notebook it is Keras's live bar; anywhere else (a
    log file, a pipe) it writes one plain line when done, without the escape codes and
    carriage returns of the live bar (Keras's own bar always draws live on
    POSIX).

    Args:
        total: Steps to count to.
        unit_name: What a step is (`"file"`, `"image"`). Defaults to `"step"`.
        done: Off a terminal, the plain line says what was counted in
            words, as a `kerasdl` log line: `"Checked"` gives `Checked 3,264
            files in 3.1 s.` rather than Keras's bare `3264/3264 - 3s -
            885us/file`. Defaults to `None` (Keras's line).
    """
    interactive = stdout_is_interactive()
    if done is not None and not interactive:
        return _DoneLine(total, unit_name, done)
    import keras

    return keras.utils.Progbar(total, unit_name=unit_name, verbose=1 if interactive else 2)


class _DoneLine:
    """`progress_bar(..., done=...)` off a terminal: one log line when the count is reached."""

    def __init__(self, total: int, unit_name: str, done: str):
        import time

        self.total, self.unit_name, self.done = total, unit_name, done
        self._started, self._clock, self._said = time.perf_counter(), time.perf_counter, False

    def update(self, current: int, *args, **kwargs) -> None:
        if current >= self.total and not self._said:
            self._said = True
            seconds = self._clock() - self._started
            logger.info("%s %s in %.1f s.", self.done, plural(self.total, self.unit_name), seconds)


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """`"1 epoch"`, `"3 epochs"`, `"0 files"`; `plural_noun` for an irregular plural (`"entries"`)."""
    return f"{count:,} {noun if count == 1 else plural_noun or noun + 's'}"


def format_duration(seconds: float) -> str:
    """A duration as people read it: `"45 s"`, `"10 min"`, `"1.5 h"`, `"99,999 h"`.

    Seconds up to two minutes, minutes up to two hours, hours beyond; whole
    numbers from 10 up, with thousands separators.
    """
    value, unit = (seconds, "s") if seconds < 120 else (seconds / 60, "min") if seconds < 7200 \
        else (seconds / 3600, "h")
    if value < 1:
        text = f"{value:.2g}"
    elif value < 10:
        text = f"{value:.1f}".removesuffix(".0")
    else:
        text = f"{value:,.0f}"
    return f"{text} {unit}"
