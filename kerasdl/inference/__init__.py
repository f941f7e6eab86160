"""Run a trained model: Keras, SavedModel, TFLite and ONNX behind one `predict_batch`."""

from kerasdl.inference.batches import collect_predictions
from kerasdl.inference.predict import (
    LoadedModel,
    load_model_file,
    predict_files,
    with_tta,
)
from kerasdl.inference.runners import OnnxModel, SavedModelRunner, TFLiteModel

__all__ = [
    "LoadedModel",
    "OnnxModel",
    "SavedModelRunner",
    "TFLiteModel",
    "collect_predictions",
    "load_model_file",
    "predict_files",
    "with_tta",
]
