"""The recipe's schema: `Recipe` and its parts, typed dataclasses with defaults.

A `Recipe` says which backbone to start from (`BackboneConfig`), how big the
images are, what the new head looks like (`HeadConfig`), how the data is split
and read (`DataConfig`), the `Phase`s of training and what the run exports
(`ExportConfig`). The tuples here are the values some fields take; the CLI's
help lists them without importing Keras.
"""

from __future__ import annotations

import dataclasses
from typing import Any

# The largest square input size accepted: 1024 px is 4x the pixels of the
# largest size any backbone here was trained at (EfficientNet-B7, 600 px).
MAX_IMAGE_SIZE = 1024

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "step")
MONITORS = ("auto", "val_auc", "val_accuracy", "val_loss")
# The augmentation presets of `kerasdl.data.augment` (a test keeps the two equal; the CLI's
# help lists these without importing Keras), and what `transfer_recipe` augments with: nothing
# while the backbone is frozen (its features are computed once), then flip.
AUGMENT_PRESETS = ("none", "flip", "light", "strong", "mixup", "cutmix")
TRANSFER_HEAD_AUGMENT = "none"
TRANSFER_AUGMENT = "flip"
# Test-time augmentation of an evaluation or a prediction (`kerasdl.inference.with_tta`).
TTA_MODES = ("none", "flip")


@dataclasses.dataclass
class BackboneConfig:
    """Which pretrained network to start from.

    Attributes:
        name: A registered backbone name (see `kerasdl backbones`).
        weights: `"imagenet"`, `"none"`, or a local weights file.
        options: Backbone options such as `{"alpha": 0.35}`; the override
            `backbone.alpha=0.35` (`apply_overrides`) writes here.
    """

    name: str = "mobilenetv2"
    weights: str | None = "imagenet"
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class HeadConfig:
    """The new classifier head on top of the backbone.

    Attributes:
        dropout: Dropout rate before the output layer.
        hidden_units: Width of an optional hidden dense layer; 0 for none.
        activation: Activation of the hidden layer (see `kerasdl.models.activations`).
        pooling: What the head sees: `"top"`, the backbone's last feature map
            averaged; `"blocks"`, the averaged outputs of every block at
            the backbone's two coarsest resolutions side by side (mid-level
            texture features besides the top's; see
            `kerasdl.models.classifier.coarse_block_outputs`); or `"auto"`,
            the one whose head does better on the validation split
            (`kerasdl.app.head_choice`).
    """

    dropout: float = 0.2
    hidden_units: int = 0
    activation: str = "relu"
    pooling: str = "top"


@dataclasses.dataclass
class DataConfig:
    """How the image source is split and read.

    Attributes:
        val_split: Fraction held out for validation when the source has no
            validation split of its own.
        test_split: Fraction held out for testing when the source has no test
            split; 0 evaluates on the validation split.
        path_column: Image-path column of a `csv:` label file; detected when
            `None`.
        label_column: Label column of a `csv:` label file; detected when `None`.
        class_weight: `None`, or `"auto"` for weights balancing the classes.
        encoding: Text encoding of a `csv:` label file that is not UTF-8
            (e.g. `"latin-1"`, `"cp1252"`); UTF-8, with or without a BOM, is
            always tried first. `None` accepts UTF-8 only.
        max_image_pixels: Images of more pixels (width x height) are skipped
            as "too large" during the scan, without decoding them.
        folds: k-fold cross-validation: `K` of 2 or more trains K runs, the
            k-th validating on the k-th of K stratified folds of the
            labelled images (train and val pooled; a test split stays out of
            every fold) and training on the rest; 0 for one run on
            `val_split`. See `kerasdl.app.kfold`.
        class_names: Names for the source's classes in label order (class
            folders by name; a label file's labels sorted, numbers
            numerically), e.g. `["real", "ai"]` for labels 0 and 1: every
            artefact then names them. `None` keeps the labels.
    """

    val_split: float = 0.2
    test_split: float = 0.0
    path_column: str | None = None
    label_column: str | None = None
    class_weight: str | None = None
    encoding: str | None = None
    max_image_pixels: int = 40_000_000  # kerasdl.data.scan.MAX_IMAGE_PIXELS
    folds: int = 0
    class_names: list[str] | None = None


# What a k-fold run ships (`ExportConfig.folds`).
EXPORT_FOLDS = ("all", "best")


@dataclasses.dataclass
class ExportConfig:
    """What a run exports.

    Attributes:
        formats: Formats written to the run's `export/` folder, e.g.
            `["saved_model", "tflite", "tflite:int8", "onnx"]`; `[]` for none.
            `export=tflite,onnx` in an override sets this field.
        folds: What a k-fold run (`DataConfig.folds`) ships: `"all"`, its K
            fold models averaged in one Keras model (K times one model's
            size), or `"best"`, the fold with the best validation metric.
        quantize: The quantization of a plain `"tflite"` in `formats`:
            `"none"` (float32), `"float16"`, `"dynamic"`, `"int8"` (every
            op int8, else the fewest ops kept in float that pass the parity
            check) or `"int8-full"` (every op int8 or refused). A
            `"tflite:<quantization>"` entry keeps its own.
    """

    formats: list[str] = dataclasses.field(default_factory=lambda: ["saved_model", "tflite"])
    folds: str = "all"
    quantize: str = "none"


@dataclasses.dataclass
class Phase:
    """One stretch of `model.fit` with fixed trainable layers and optimizer.

    Attributes:
        name: Shown in logs and in history.csv's `phase` column.
        epochs: Number of epochs; 0 skips the phase. `"auto"`: the epochs
            that make about `AUTO_EPOCH_STEPS` optimizer steps, within
            `AUTO_EPOCHS` (a frozen phase: `HEAD_AUTO_EPOCH_STEPS`, within
            `HEAD_AUTO_EPOCHS`; see `resolve_epochs`).
        learning_rate: Peak learning rate.
        optimizer: `"adam"`, `"adamw"`, `"sgd"` or `"rmsprop"`.
        trainable: `"head"`, `"all"`, `"top:N"` or `"blocks:K"`; the
            backbone's BatchNormalization layers stay frozen in every case.
        schedule: `"constant"`, `"cosine"` or `"step"`.
        warmup_epochs: Epochs of linear warmup before the schedule.
        label_smoothing: Label smoothing of the cross-entropy loss.
        weight_decay: Decoupled weight decay (used with `"adamw"`).
        clipnorm: Clip each gradient to this norm; `None` for no clipping.
        early_stopping: Stop after this many epochs without improvement of
            the recipe's monitored validation metric; 0 never stops early.
            A phase after another must first beat the earlier phases' best
            by more than `min_delta` within this many epochs, or it stops (a
            fine-tuning that cannot beat the head phase); once it has, it
            runs to its last epoch, where its schedule's rates are smallest.
            `epochs` is then the ceiling, and the best epoch's weights are
            kept either way.
        min_delta: How much the phase must beat the earlier phases by for
            `early_stopping`: `"auto"` is what the validation split can
            resolve, one image's worth (`1 / validation images`) of accuracy
            or ROC-AUC, 0 for the loss; or a number.
        layer_decay: Layer-wise learning rates: the head trains at
            `learning_rate`, the backbone's top trainable block at
            `learning_rate * layer_decay`, the block below it at
            `learning_rate * layer_decay**2`, and so on toward the input
            (blocks as `kerasdl.models.block_name` finds them). `1.0` gives
            every layer the same rate. In (0, 1].
        ema: Exponential moving average of the weights (Keras optimizers'
            `use_ema`): 0 for none, else its momentum, e.g. 0.9; the average
            replaces the weights at the end of each epoch, so validation and
            the kept model see it.
        augment: This phase's augmentation preset (see `kerasdl.data.augment`);
            `None` uses the recipe's `augment`. The transfer recipes set
            `"none"` on their frozen `head` phase, so it trains on backbone
            features computed once (`kerasdl.training.feature_cache`).
    """

    name: str = "head"
    epochs: int | str = 5
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    trainable: str = "head"
    schedule: str = "constant"
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    weight_decay: float = 0.0
    clipnorm: float | None = None
    early_stopping: int = 0
    min_delta: float | str = "auto"
    layer_decay: float = 1.0
    ema: float = 0.0
    augment: str | None = None


@dataclasses.dataclass
class Recipe:
    """A complete transfer-learning job.

    Attributes:
        name: The name users type, e.g. `"resnet50-transfer"`.
        description: One line for `kerasdl list`.
        backbone: The pretrained network (`BackboneConfig`).
        image_size: Square input size in pixels; `"auto"`, the training
            images' typical size within the sizes the backbone takes
            (`kerasdl.backbones.registry.image_size_range`), so images of a
            size the network takes are not resampled; `None` uses the
            backbone's default.
        batch_size: Mini-batch size.
        augment: Augmentation preset of the training split (see
            `kerasdl.data.augment`), used by every phase whose own `augment` is
            `None`. `kerasdl run --augment X` sets it and clears the
            phases' own values (`with_augmentation`), so every phase
            augments with X; `--set phases.head.augment=none` then gives
            one phase its own again.
        head: The new head (`HeadConfig`).
        phases: The training phases, run in order.
        data: Splitting and reading options (`DataConfig`).
        seed: Seed of the split, the shuffling and the initial weights.
        export: What the run exports (`ExportConfig`); a list of formats
            is taken as its `formats`.
        monitor: The validation metric that picks the best model and drives
            early stopping: `"val_auc"` (ROC-AUC, two classes only),
            `"val_accuracy"`, `"val_loss"`, or `"auto"`: `val_auc` for two
            classes, `val_accuracy` otherwise (see `resolve_monitor`).
    """

    name: str
    description: str = ""
    backbone: BackboneConfig = dataclasses.field(default_factory=BackboneConfig)
    image_size: int | str | None = None
    batch_size: int = 32
    augment: str = "light"
    head: HeadConfig = dataclasses.field(default_factory=HeadConfig)
    phases: list[Phase] = dataclasses.field(default_factory=list)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    seed: int = 0
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)
    monitor: str = "auto"

    def __post_init__(self):
        if isinstance(self.export, (list, tuple)):  # Recipe(export=["tflite"]), as before ExportConfig
            self.export = ExportConfig(formats=list(self.export))

    def to_dict(self) -> dict[str, Any]:
        """Returns the recipe as plain JSON-ready data."""
        return dataclasses.asdict(self)

