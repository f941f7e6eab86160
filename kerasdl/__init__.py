"""kerasdl: image classifiers by transfer learning, as plain Keras 3 models.

The public API is declared here and only here.
"""

import os

# TensorFlow's C++ start-up chatter drowns kerasdl's own output; users can
# still set the variable themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


from kerasdl.augment import get_augmentation
from kerasdl.backbones import BACKBONES, BackboneSpec, get_backbone, register_backbone
from kerasdl.checkpoints import TrainingState
from kerasdl.data import ImageData, ImageFiles, SkippedFile, load_data, make_dataset
from kerasdl.distribute import distribution_scope
from kerasdl.errors import (
    CheckpointError,
    DataError,
    ExportError,
    KerasdlError,
    ModelFileError,
    RecipeError,
    RunFolderError,
    TrainingError,
    WeightsError,
)
from kerasdl.evaluation import compute_metrics, write_evaluation
from kerasdl.export import TFLiteModel, check_parity, export_model, export_saved_model, export_tflite
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
from kerasdl.runtime import RuntimeOptions, seed_everything
from kerasdl.training import TrainingResult, TrainOptions, train
from kerasdl.weights import build_backbone

__version__ = "0.1.0"

__all__ = [
    "BACKBONES",
    "BackboneConfig",
    "BackboneSpec",
    "CheckpointError",
    "DataConfig",
    "DataError",
    "ExportError",
    "HeadConfig",
    "ImageData",
    "ImageFiles",
    "KerasdlError",
    "LoadedModel",
    "ModelFileError",
    "Phase",
    "Recipe",
    "RecipeError",
    "RunFolderError",
    "RunResult",
    "RuntimeOptions",
    "SkippedFile",
    "TFLiteModel",
    "TrainOptions",
    "TrainingError",
    "TrainingResult",
    "TrainingState",
    "WeightsError",
    "__version__",
    "apply_overrides",
    "build_backbone",
    "build_classifier",
    "check_parity",
    "compute_metrics",
    "count_parameters",
    "distribution_scope",
    "export_model",
    "export_saved_model",
    "export_tflite",
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
    "seed_everything",
    "set_trainable",
    "train",
    "transfer_recipe",
    "write_evaluation",
]
