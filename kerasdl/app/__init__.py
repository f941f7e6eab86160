"""The application layer: a whole run (data, model, training, evaluation, export) as steps,
its summary, and the local demo page of a finished run.

Names load their module on first use (`kerasdl._util.lazy`), so the CLI can
reach `kerasdl.app.catalog` without loading Keras.
"""

from kerasdl._util.lazy import lazy_api

# Public name -> the module that defines it.
_API = {
    "DemoApp": "kerasdl.app.demo",
    "DemoOptions": "kerasdl.app.demo",
    "RunOptions": "kerasdl.app.options",
    "RunResult": "kerasdl.app.run_parts",
    "RunSummary": "kerasdl.app.summary",
    "describe_recipe": "kerasdl.app.describe",
    "make_demo_server": "kerasdl.app.demo",
    "run_recipe": "kerasdl.app.run",
    "summarize_run": "kerasdl.app.summary",
}

__all__ = sorted(_API)

__getattr__, __dir__ = lazy_api(__name__, _API, globals())
