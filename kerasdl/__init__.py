"""kerasdl: image classifiers by transfer learning, as plain Keras 3 models.

The public API is declared here and only here.
"""

import os

# TensorFlow's C++ start-up chatter drowns kerasdl's own output; users can
# still set the variable themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


from kerasdl.activations import (
    ACTIVATIONS,
    BinaryStep,
    binary_step,
    get_activation,
    plot_activations,
    register_activation,
)
from kerasdl.architectures import (
    CompoundScaling,
    alexnet,
    compound_scaling,
    describe_recipe,
    efficientnet_compound,
    resnet18,
    resnet34,
)
from kerasdl.augment import LabelMixingAugmentation, check_augmentation_name, get_augmentation
from kerasdl.backbones import (
    BACKBONES,
    BackboneSpec,
    default_image_size,
    get_backbone,
    register_backbone,
)
from kerasdl.checkpoints import TrainingState
from kerasdl.data import (
    ImageData,
    ImageFiles,
    SkippedFile,
    TrainParts,
    augment_batches,
    balanced_class_weights,
    load_data,
    load_labelled_files,
    make_dataset,
)
from kerasdl.distribute import distribution_scope
from kerasdl.efficientnet_lite import EfficientNetLite0
from kerasdl.errors import (
    CheckpointError,
    DataError,
    ExportError,
    ExportRejectedError,
    KerasdlError,
    ModelFileError,
    RecipeError,
    RunFolderError,
    TrainingError,
    WeightsError,
)
from kerasdl.evaluation import collect_predictions, compute_metrics, write_evaluation
from kerasdl.experiment import ArmResult, transfer_vs_scratch
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
from kerasdl.multi_worker import fit_distributed, local_tf_configs, weights_fingerprint
from kerasdl.predict import LoadedModel, load_model_file, predict_files, with_tta
from kerasdl.recipe import (
    BackboneConfig,
    DataConfig,
    HeadConfig,
    Phase,
    Recipe,
    apply_overrides,
    get_recipe,
    list_recipes,
    phase_augmentation,
    scratch_recipe,
    transfer_recipe,
    with_augmentation,
)
from kerasdl.report import compare_runs, format_comparison, write_report
from kerasdl.run import RunResult, run_recipe
from kerasdl.runtime import RuntimeOptions, seed_everything
from kerasdl.training import TrainingResult, TrainOptions, train
from kerasdl.training_loop import fit_by_hand, minibatches, train_step
from kerasdl.weights import (
    WeightFile,
    build_backbone,
    fetch_weights,
    import_weights,
    keras_cache_dir,
    verify_cache,
    weight_file,
    weight_files,
)

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "ArmResult",
    "BACKBONES",
    "BackboneConfig",
    "BackboneSpec",
    "BinaryStep",
    "CompoundScaling",
    "CheckpointError",
    "DataConfig",
    "DataError",
    "EfficientNetLite0",
    "ExportError",
    "ExportOptions",
    "ExportRejectedError",
    "HeadConfig",
    "ImageData",
    "ImageFiles",
    "KerasdlError",
    "LabelMixingAugmentation",
    "LoadedModel",
    "ModelFileError",
    "OnnxModel",
    "Phase",
    "Recipe",
    "RecipeError",
    "RunFolderError",
    "RunResult",
    "RuntimeOptions",
    "SkippedFile",
    "TFLiteModel",
    "TrainOptions",
    "TrainParts",
    "TrainingError",
    "TrainingResult",
    "WeightFile",
    "TrainingState",
    "WeightsError",
    "__version__",
    "alexnet",
    "apply_overrides",
    "augment_batches",
    "binary_step",
    "balanced_class_weights",
    "build_backbone",
    "build_classifier",
    "check_augmentation_name",
    "check_parity",
    "collect_predictions",
    "compare_runs",
    "compound_scaling",
    "compute_metrics",
    "count_parameters",
    "default_image_size",
    "describe_recipe",
    "efficientnet_compound",
    "distribution_scope",
    "export_model",
    "export_onnx",
    "export_saved_model",
    "export_tflite",
    "format_comparison",
    "fit_by_hand",
    "fit_distributed",
    "local_tf_configs",
    "weights_fingerprint",
    "get_activation",
    "fetch_weights",
    "export_to_path",
    "get_augmentation",
    "get_backbone",
    "get_recipe",
    "import_weights",
    "keras_cache_dir",
    "list_recipes",
    "load_data",
    "load_labelled_files",
    "load_model_file",
    "make_dataset",
    "minibatches",
    "plot_activations",
    "phase_augmentation",
    "predict_files",
    "register_activation",
    "register_backbone",
    "resnet18",
    "resnet34",
    "run_recipe",
    "scratch_recipe",
    "seed_everything",
    "set_trainable",
    "train",
    "train_step",
    "transfer_recipe",
    "with_augmentation",
    "with_tta",
    "transfer_vs_scratch",
    "verify_cache",
    "weight_file",
    "weight_files",
    "write_evaluation",
    "write_report",
]
