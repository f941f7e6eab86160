"""Keras's downloads, made to fail in seconds offline instead of hanging.

`weights.fetch_weights` downloads a file with `keras.utils.get_file`, and
`build.build_backbone` lets a Keras Applications constructor download its
own; both run under `download_timeout` and tell a failed fetch apart from
other errors with `is_fetch_failure`. Nothing here imports Keras.
"""


from __future__ import annotations

import contextlib
import socket
import urllib.error
from collections.abc import Iterator

# Seconds without progress before a download gives up; offline, a blocked
# connection then fails in seconds instead of hanging.
DOWNLOAD_SOCKET_TIMEOUT = 30


@contextlib.contextmanager
def download_timeout() -> Iterator[None]:
    """Sets `DOWNLOAD_SOCKET_TIMEOUT` as the socket timeout, unless one is set already."""
    previous = socket.getdefaulttimeout()
    if previous is None:
        socket.setdefaulttimeout(DOWNLOAD_SOCKET_TIMEOUT)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def is_fetch_failure(error: Exception) -> bool:
    """Whether `error` says a download could not be made (offline, refused, timed out)."""
    # Keras raises a bare Exception("URL fetch failure on ...") when offline.
    return "URL fetch failure" in str(error) or isinstance(
        error, (urllib.error.URLError, ConnectionError, socket.timeout)
    )
