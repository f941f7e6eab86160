"""The command line: Click commands that parse flags and print; the work is in `kerasdl.app`.

`group` holds the `kerasdl` group and its global options; each other module
registers one group of commands on it (importing them here makes the whole
command line); `flags` says library messages in flags, `options` holds the
options several commands share.
"""

from kerasdl.cli import catalog, commands, course, evaluate, export, predict, weights  # noqa: F401 - register
from kerasdl.cli.group import main

__all__ = ["main"]
