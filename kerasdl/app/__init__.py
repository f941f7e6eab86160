"""The application layer: a whole run (data, model, training, evaluation, export) as steps,
its summary, and the local demo page of a finished run."""

from kerasdl.app.demo import DemoApp, DemoOptions, make_demo_server
from kerasdl.app.describe import describe_recipe
from kerasdl.app.options import RunOptions
from kerasdl.app.run import run_recipe
from kerasdl.app.run_parts import RunResult
from kerasdl.app.summary import RunSummary, summarize_run

__all__ = [
    "DemoApp",
    "DemoOptions",
    "RunOptions",
    "RunResult",
    "RunSummary",
    "describe_recipe",
    "make_demo_server",
    "run_recipe",
    "summarize_run",
]
