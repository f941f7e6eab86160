"""The command line: Click commands that parse flags and print; the work is in the library."""

from kerasdl.cli.commands import main

__all__ = ["main"]
