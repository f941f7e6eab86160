"""kerasdl: image classifiers by transfer learning, as plain Keras 3 models.

The public API is declared here and only here.
"""

import os

# TensorFlow's C++ start-up chatter drowns kerasdl's own output; users can
# still set the variable themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


from kerasdl.augment import get_augmentation
from kerasdl.backbones import BACKBONES, BackboneSpec, get_backbone, register_backbone
from kerasdl.data import ImageData, ImageFiles, SkippedFile, load_data, make_dataset
from kerasdl.errors import (
    DataError,
    ExportError,
    ExportRejectedError,
    KerasdlError,
    ModelFileError,
    RecipeError,
    RunFolderError,
    WeightsError,
)
from kerasdl.evaluation import compute_metrics, write_evaluation
from kerasdl.export import (
    ExportOptions,
    OnnxModel,
    TFLiteModel,
    check_parity,
    export_model,
    export_onnx,
    export_saved_model,
    export_tflite,
    export_to_path,
)
from kerasdl.models import build_classifier, count_parameters, set_trainable
from kerasdl.predict import LoadedModel, load_model_file, predict_files
from kerasdl.recipe import (
    BackboneConfig,
    DataConfig,
    HeadConfig,
    Phase,
    Recipe,
    apply_overrides,
    get_recipe,
    list_recipes,
    transfer_recipe,
)
from kerasdl.run import RunResult, run_recipe
from kerasdl.training import TrainingResult, train
from kerasdl.weights import build_backbone

__version__ = "0.1.0"

__all__ = [
    "BACKBONES",
    "BackboneConfig",
    "BackboneSpec",
    "DataConfig",
    "DataError",
    "ExportError",
    "ExportOptions",
    "ExportRejectedError",
    "HeadConfig",
    "ImageData",
    "ImageFiles",
    "KerasdlError",
    "LoadedModel",
    "ModelFileError",
    "OnnxModel",
    "Phase",
    "Recipe",
    "RecipeError",
    "RunFolderError",
    "RunResult",
    "SkippedFile",
    "TFLiteModel",
    "TrainingResult",
    "WeightsError",
    "__version__",
    "apply_overrides",
    "build_backbone",
    "build_classifier",
    "check_parity",
    "compute_metrics",
    "count_parameters",
    "export_model",
    "export_onnx",
    "export_saved_model",
    "export_tflite",
    "export_to_path",
    "get_augmentation",
    "get_backbone",
    "get_recipe",
    "list_recipes",
    "load_data",
    "load_model_file",
    "make_dataset",
    "predict_files",
    "register_backbone",
    "run_recipe",
    "set_trainable",
    "train",
    "transfer_recipe",
    "write_evaluation",
]
