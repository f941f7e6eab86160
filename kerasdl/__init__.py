"""kerasdl: image classifiers by transfer learning, as plain Keras 3 models.

The top-level names below are the documented API. They load lazily
(PEP 562), so `import kerasdl` and the CLI start without TensorFlow; the
rest of the library lives in its subpackages, each with its own `__all__`:
`kerasdl.backbones`, `.data`, `.models`, `.training`, `.inference`,
`.evaluation`, `.export`, `.app`, `.course`.

Example:
```python
import kerasdl
data = kerasdl.load_data("my_images/", image_size=160)
model = kerasdl.build_classifier("mobilenetv2", len(data.class_names), image_size=160)
```
"""

import os

from kerasdl._util import console as _console  # noqa: F401 - gives the kerasdl logger its default handler
from kerasdl._util.lazy import lazy_api

# TensorFlow's C++ start-up chatter drowns kerasdl's own output; users can
# still set the variable themselves (the CLI keeps their value, and uses 3
# otherwise: see kerasdl.cli.console).
_USER_TF_CPP_MIN_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

# Public name -> the module that defines it.
_API = {
    "KerasdlError": "kerasdl.errors",
    "Recipe": "kerasdl.recipe",
    "Phase": "kerasdl.recipe",
    "get_recipe": "kerasdl.recipe",
    "list_recipes": "kerasdl.recipe",
    "apply_overrides": "kerasdl.recipe",
    "transfer_recipe": "kerasdl.recipe",
    "scratch_recipe": "kerasdl.recipe",
    "BackboneConfig": "kerasdl.recipe",
    "HeadConfig": "kerasdl.recipe",
    "DataConfig": "kerasdl.recipe",
    "load_data": "kerasdl.data.load",
    "ImageData": "kerasdl.data.types",
    "build_classifier": "kerasdl.models.classifier",
    "set_trainable": "kerasdl.models.classifier",
    "count_parameters": "kerasdl.models.classifier",
    "train": "kerasdl.training.engine",
    "TrainOptions": "kerasdl.training.engine",
    "TrainingResult": "kerasdl.training.engine",
    "compute_metrics": "kerasdl.evaluation.metrics",
    "write_evaluation": "kerasdl.evaluation.evaluate",
    "ExportOptions": "kerasdl.export.options",
    "ExportTarget": "kerasdl.export.options",
    "export_model": "kerasdl.export.exporter",
    "check_parity": "kerasdl.export.parity",
    "load_model_file": "kerasdl.inference.predict",
    "predict_files": "kerasdl.inference.predict",
    "run_recipe": "kerasdl.app.run",
    "RunOptions": "kerasdl.app.options",
    "RunResult": "kerasdl.app.run_parts",
    "fit_by_hand": "kerasdl.course.training_loop",
    "minibatches": "kerasdl.course.training_loop",
}
_SUBPACKAGES = ("app", "backbones", "cli", "course", "data", "errors", "evaluation", "export",
                "inference", "models", "recipe", "training")

__all__ = sorted(_API) + ["__version__"]


__getattr__, __dir__ = lazy_api(__name__, _API, globals(), _SUBPACKAGES)
