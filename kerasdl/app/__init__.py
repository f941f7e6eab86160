"""The application layer: a whole run (data, model, training, evaluation, export) as steps."""

from kerasdl.app.describe import describe_recipe
from kerasdl.app.run import RunResult, run_recipe

__all__ = [
    "RunResult",
    "describe_recipe",
    "run_recipe",
]
