"""Images in, `tf.data` out: sources, scanning, the pipeline and augmentation."""

from kerasdl.data.augment import LabelMixingAugmentation, check_augmentation_name, get_augmentation
from kerasdl.data.load import load_data, load_labelled_files
from kerasdl.data.naming import check_source, name_classes
from kerasdl.data.pipeline import augment_batches, make_dataset
from kerasdl.data.splits import balanced_class_weights
from kerasdl.data.types import (
    ImageData,
    ImageFiles,
    SkippedFile,
    TrainParts,
)

__all__ = [
    "ImageData",
    "ImageFiles",
    "LabelMixingAugmentation",
    "SkippedFile",
    "TrainParts",
    "augment_batches",
    "balanced_class_weights",
    "check_augmentation_name",
    "check_source",
    "get_augmentation",
    "load_data",
    "load_labelled_files",
    "make_dataset",
    "name_classes",
]
