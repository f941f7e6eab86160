"""How training shows its progress: Keras's live bar on a terminal, one plain line per epoch elsewhere.

Keras's progress bar always draws live on POSIX (carriage returns,
backspaces and colour codes), so a run logged to a file fills it with
escape codes, and even `verbose=2` writes two lines an epoch ("Epoch 3/5",
then the numbers). Off a terminal `model.fit` therefore runs silent and
`EpochLines` logs one line per epoch to the `kerasdl` logger instead, the
line that the multi-worker loop writes too.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import keras

from kerasdl._util.console import stdout_is_interactive

logger = logging.getLogger(__name__)


def epoch_line(epoch: int, epochs: int, seconds: float, logs: dict[str, Any]) -> str:
    """`Epoch 3/5 - 1.2s - loss: 0.6799 - accuracy: 0.5833 - ...` (epochs counted from 1)."""
    values = []
    for key, value in (logs or {}).items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        values.append(f"{key}: {number:.4f}" if abs(number) >= 1e-3 or number == 0 else f"{key}: {number:.4e}")
    return " - ".join([f"Epoch {epoch + 1}/{epochs}", f"{seconds:.1f}s", *values])


class EpochLines(keras.callbacks.Callback):
    """Logs one plain line per epoch (`epoch_line`) to the `kerasdl` logger."""

    def __init__(self):
        super().__init__()
        self._started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logger.info(epoch_line(epoch, self.params.get("epochs", epoch + 1),
                               time.perf_counter() - self._started, logs or {}))


def fit_progress(verbose: int | str) -> tuple[int, list[keras.callbacks.Callback]]:
    """`model.fit`'s `verbose` and the callbacks that show a run's progress.

    Args:
        verbose: `"auto"` (the live bar on a terminal or in a notebook,
            else one line per epoch), `1` (the live bar), `2` (one line per epoch) or `0`
            (nothing).

    Returns:
        `(verbose for model.fit, callbacks to add)`.

    Example:
    ```python
    verbose, callbacks = fit_progress("auto")
    model.fit(data.train, epochs=5, verbose=verbose, callbacks=callbacks)
    ```
    """
    if verbose == "auto":
        verbose = 1 if stdout_is_interactive() else 2
    if verbose == 2:
        return 0, [EpochLines()]
    return (1 if verbose else 0), []
