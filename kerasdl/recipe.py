"""Recipes: named, complete descriptions of a transfer-learning job.

A `Recipe` says which backbone to start from, how big the images are, what
the new head looks like, how to augment, and the `Phase`s of training (the
standard two: train the head on a frozen backbone, then fine-tune the top of
the backbone at a much lower learning rate).

Built-in recipes live in the top-level `recipes/` folder, installed as
`kerasdl.recipes`, and are found through the `kerasdl.recipes` entry-point
group, so other packages can add their own. A recipe file a user wrote
(`kerasdl run ./my_recipe.py`) defines `recipe()` returning a `Recipe`.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import types
import typing
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from kerasdl.errors import RecipeError

ENTRY_POINT_GROUP = "kerasdl.recipes"
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
# `epochs="auto"`: about this many optimizer steps, within these epochs. Like Big
# Transfer's schedule rule, a small data set gets more epochs and a large one fewer;
# the ceiling keeps a few hundred images within the keras.io guide's wall time
# (bench/BENCHMARKS.md, "Defaults that win").
AUTO_EPOCH_STEPS = 300
AUTO_EPOCHS = (3, 5)
# A frozen-backbone phase (a head on cached features, a fraction of a second an
# epoch): enough steps for the head to converge. Five epochs of a few hundred images
# are 40 steps, and left hymenoptera's head 2.4 points of accuracy short.
HEAD_AUTO_EPOCH_STEPS = 100
HEAD_AUTO_EPOCHS = (5, 15)


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
        fold: With `folds`, the one fold (1 to K) a run validates on; 0 runs
            all K (what `kerasdl run --folds K` does).
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
    fold: int = 0
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


def transfer_recipe(
    name: str,
    backbone: str,
    *,
    description: str,
    image_size: int | str | None = "auto",
    head_epochs: int | str = "auto",
    fine_tune_epochs: int | str = "auto",
    head_learning_rate: float = 1e-3,
    fine_tune_trainable: str = "all",
    fine_tune_learning_rate: float | None = None,
    layer_decay: float = 0.85,
    fine_tune_schedule: str = "cosine",
    warmup_epochs: int = 1,
    early_stopping: int = 2,
    **fields: Any,
) -> Recipe:
    """Returns the standard two-phase transfer recipe for a backbone.

    fastai's `fine_tune` in Keras, at the images' own size (`image_size="auto"`):
    the head sees the pooled block features or the top feature map, whichever
    does better on the validation split (`head.pooling="auto"`); phase `head`
    trains it on the frozen backbone without augmentation (`augment="none"`),
    so the backbone's features are computed once per image and the head
    trains on them (`kerasdl.training.feature_cache`). Phase `fine_tune` then
    unfreezes the whole backbone (BatchNormalization stays frozen) with
    layer-wise learning rates (`layer_decay` per block toward the input), one
    warmup epoch then cosine decay, the recipe's augmentation (`augment`,
    default `"flip"`: no pixel is resampled, so fine detail survives), and
    early stopping on the recipe's monitor (`fine_tune_epochs` is the
    ceiling). The best epoch of either phase is kept, so a fine-tuning that
    does not help costs time, not accuracy. `kerasdl run --augment X`
    augments both phases with X (see `with_augmentation`). These defaults
    were measured against the keras.io guide on data far from ImageNet and
    near it (bench/BENCHMARKS.md, "The course's own task").

    Args:
        name: The recipe's name.
        backbone: A registered backbone name.
        description: One line for `kerasdl list`.
        image_size: Input size. Defaults to `"auto"` (the images' typical
            size within the sizes the backbone takes).
        head_epochs: Epochs of the head phase. Defaults to `"auto"`: about
            100 steps, 5 to 15 epochs (`auto_epochs(..., frozen=True)`).
        fine_tune_epochs: Most epochs of the fine-tuning phase. Defaults to
            `"auto"`: about 300 steps, 3 to 5 epochs (`auto_epochs`).
        head_learning_rate: Learning rate of the head phase. Defaults to `1e-3`.
        fine_tune_trainable: What the fine-tuning phase unfreezes.
            Defaults to `"all"`.
        fine_tune_learning_rate: Peak learning rate of the fine-tuning phase
            (the head's; the backbone's blocks get less). Defaults to `None`
            (`0.3 * head_learning_rate`).
        layer_decay: Learning-rate multiplier per backbone block toward the
            input (see `Phase.layer_decay`). Defaults to `0.85`.
        fine_tune_schedule: Schedule of the fine-tuning phase. Defaults to
            `"cosine"`.
        warmup_epochs: Warmup epochs of the fine-tuning phase. Defaults to `1`.
        early_stopping: Patience of the fine-tuning phase in epochs (0: none).
            Defaults to `2`.
        **fields: Any other `Recipe` field.

    Returns:
        The `Recipe`.

    Example:
    ```python
    def recipe():
        return transfer_recipe("my-recipe", "resnet50", description="...")
    ```
    """
    backbone_config = fields.pop("backbone_config", None) or BackboneConfig(name=backbone)
    phases = [
        Phase(name="head", epochs=head_epochs, learning_rate=head_learning_rate, trainable="head",
              augment=TRANSFER_HEAD_AUGMENT),
        Phase(
            name="fine_tune",
            epochs=fine_tune_epochs,
            learning_rate=(0.3 * head_learning_rate if fine_tune_learning_rate is None
                           else fine_tune_learning_rate),
            trainable=fine_tune_trainable,
            layer_decay=layer_decay,
            schedule=fine_tune_schedule,
            warmup_epochs=warmup_epochs,
            early_stopping=early_stopping,
        ),
    ]
    fields.setdefault("augment", TRANSFER_AUGMENT)
    fields.setdefault("head", HeadConfig(pooling="auto"))
    return Recipe(
        name=name, description=description, backbone=backbone_config,
        image_size=image_size, phases=phases, **fields,
    )


def scratch_recipe(
    name: str,
    backbone: str,
    *,
    description: str,
    epochs: int = 30,
    learning_rate: float = 1e-3,
    optimizer: str = "adam",
    backbone_options: dict[str, Any] | None = None,
    **fields: Any,
) -> Recipe:
    """Returns a one-phase recipe that trains a network from random weights.

    The single phase, `scratch`, trains every layer; the backbone runs in
    training mode, so its BatchNormalization layers learn their statistics
    and its dropout is active (see `kerasdl.models`).

    Args:
        name: The recipe's name.
        backbone: A registered backbone name.
        description: One line for `kerasdl list`.
        epochs: Epochs of the phase. Defaults to `30`.
        learning_rate: Peak learning rate (cosine decay). Defaults to `1e-3`.
        optimizer: Optimizer name. Defaults to `"adam"`.
        backbone_options: Backbone options. Defaults to `None`.
        **fields: Any other `Recipe` field.

    Returns:
        The `Recipe`.

    Example:
    ```python
    def recipe():
        return scratch_recipe("resnet18-scratch", "resnet18", description="...")
    ```
    """
    backbone_config = BackboneConfig(name=backbone, weights="none", options=dict(backbone_options or {}))
    phase = Phase(
        name="scratch", epochs=epochs, learning_rate=learning_rate, optimizer=optimizer,
        trainable="scratch", schedule="cosine",
    )
    return Recipe(name=name, description=description, backbone=backbone_config, phases=[phase], **fields)


def phase_augmentation(recipe: Recipe, phase: Phase) -> str:
    """The augmentation preset a phase trains with: its own, else the recipe's."""
    return recipe.augment if phase.augment is None else phase.augment


def with_augmentation(recipe: Recipe, name: str) -> Recipe:
    """Returns a copy of `recipe` whose every phase augments with `name`.

    This is what `kerasdl run --augment NAME` does: it sets the recipe's
    `augment` and clears each phase's own `augment`, so the head phase of a
    transfer recipe is augmented too (and then trains end to end, without
    the feature cache). `--set phases.<phase>.augment=...` is applied after
    it, to give a phase its own preset again.

    Args:
        recipe: The recipe to start from (not modified).
        name: An augmentation preset (see `kerasdl.data.augment`).

    Returns:
        The modified copy.

    Raises:
        RecipeError: for an unknown preset name.

    Example:
    ```python
    recipe = with_augmentation(get_recipe("mobilenetv2-transfer"), "strong")
    ```
    """
    from kerasdl.data.augment import check_augmentation_name

    check_augmentation_name(name)
    recipe = copy.deepcopy(recipe)
    recipe.augment = name
    for phase in recipe.phases:
        phase.augment = None
    return recipe


# ---------------------------------------------------------------- registry


def _recipe_entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def list_recipes() -> list[Recipe]:
    """Returns every installed recipe, sorted by name."""
    return [get_recipe(name) for name in sorted(_recipe_entry_points())]


def get_recipe(name_or_path: str) -> Recipe:
    """Returns a recipe by registered name or from a `.py` file.

    Args:
        name_or_path: A name from `kerasdl list`, or a path to a Python file
            that defines `recipe()` returning a `Recipe`.

    Returns:
        A fresh `Recipe` (safe to modify).

    Raises:
        RecipeError: for an unknown name (listing the valid ones) or a file
            that defines no recipe.
    """
    if name_or_path.endswith(".py"):
        return _load_recipe_file(Path(name_or_path))
    found = _recipe_entry_points()
    if name_or_path not in found:
        raise RecipeError(
            f"Expected a recipe name from: {', '.join(sorted(found)) or '(none installed)'}. "
            f"Received: {name_or_path!r}. Run `kerasdl list`, or pass a recipe file ./my_recipe.py."
        )
    return _call_recipe(found[name_or_path].load(), name_or_path)


def _load_recipe_file(path: Path) -> Recipe:
    if not path.is_file():
        raise RecipeError(
            f"Expected a recipe file. Received: {path} (no such file). Check the path."
        )
    module_spec = importlib.util.spec_from_file_location(f"kerasdl_user_recipe_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:  # noqa: BLE001 - report any failure of user code in one line.
        raise RecipeError(
            f"Expected {path} to run as a recipe file. Received: {type(error).__name__}: {error}."
        ) from None
    factory = getattr(module, "recipe", None) or getattr(module, "RECIPE", None)
    if factory is None:
        raise RecipeError(
            f"Expected {path} to define recipe() returning a kerasdl.Recipe. "
            "Received: a file without one. Add `def recipe(): return transfer_recipe(...)`."
        )
    return _call_recipe(factory, str(path))


def _call_recipe(factory: Any, where: str) -> Recipe:
    recipe = factory() if callable(factory) else copy.deepcopy(factory)
    if not isinstance(recipe, Recipe):
        raise RecipeError(
            f"Expected {where} to give a kerasdl.Recipe. Received: {type(recipe).__name__}."
        )
    recipe.__post_init__()  # a recipe file may have set `export` to a list after building
    return recipe


# --------------------------------------------------------------- overrides


def parse_value(text: str) -> Any:
    """Parses the value of an override (`apply_overrides`): JSON where it parses (numbers, lists, true,
    null), `none` as `None`, otherwise the text itself."""
    if text.lower() in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(recipe: Recipe, assignments: list[str]) -> Recipe:
    """Returns a copy of `recipe` with `KEY=VALUE` assignments applied.

    Keys are dotted paths: `head.dropout=0.3`, `batch_size=16`,
    `phases.fine_tune.learning_rate=1e-5` (a phase by name or index), and
    `backbone.<option>=...` for backbone options such as `backbone.alpha`.
    `augment=none` and `phases.head.augment=none` name the augmentation
    preset `none`; `phases.head.augment=null` makes a phase use the recipe's
    `augment` again.

    Args:
        recipe: The recipe to start from (not modified).
        assignments: Strings of the form `KEY=VALUE`.

    Returns:
        The modified copy.

    Raises:
        RecipeError: for a malformed assignment or an unknown key.

    Example:
    ```python
    recipe = apply_overrides(recipe, ["backbone.alpha=0.35", "head.dropout=0.3"])
    ```
    """
    recipe = copy.deepcopy(recipe)
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep or not key.strip():
            raise RecipeError(
                f"Expected assignments of the form KEY=VALUE, e.g. head.dropout=0.3. Received: {assignment!r}.",
                argument="assignments",
            )
        path, value = key.strip().split("."), parse_value(text.strip())
        if path[-1] == "augment" and text.strip().lower() == "none":
            value = "none"  # the preset named none, not null (null: the recipe's own)
        _assign(recipe, path, value, key.strip())
    return recipe


def _assign(target: Any, path: list[str], value: Any, full_key: str) -> None:
    head, rest = path[0], path[1:]
    if isinstance(target, list) and not all(isinstance(item, Phase) for item in target):
        whole = full_key[: len(full_key) - len(".".join(path)) - 1]  # a list of values, e.g. export
        raise RecipeError(f"Expected the whole list, e.g. {whole}={','.join(map(str, target)) or 'a,b'}. "
                          f"Received: {full_key!r}. Set {whole} to the comma list you want.")
    if isinstance(target, list):
        target = _find_phase(target, head, full_key)
        if not rest:
            raise RecipeError(f"Expected a field after {full_key!r}, e.g. {full_key}.epochs=3.")
        _assign(target, rest, value, full_key)
        return
    if isinstance(target, dict):
        if rest:
            raise RecipeError(f"Expected {full_key!r} to end at {head!r}.")
        target[head] = value
        return
    fields = {field.name: field for field in dataclasses.fields(target)}
    if head not in fields:
        if isinstance(target, BackboneConfig) and not rest:
            target.options[head] = value  # validated against the backbone when it is built
            return
        # the keys as the user types them (`data.class_names`), never the Python class (DataConfig)
        prefix = full_key[: len(full_key) - len(".".join(path))]
        raise RecipeError(
            f"Expected a recipe key from: {', '.join(prefix + name for name in fields)}. "
            f"Received: {full_key!r}. Run `kerasdl show RECIPE` to see every key."
        )
    if rest:
        _assign(getattr(target, head), rest, value, full_key)
        return
    section = getattr(target, head)
    if dataclasses.is_dataclass(section) and not isinstance(value, dict):
        # a section given a plain value sets its first field: export=tflite,onnx -> export.formats
        _assign(section, [dataclasses.fields(section)[0].name], value, full_key)
        return
    hint = typing.get_type_hints(type(target))[head]
    setattr(target, head, _coerce(value, hint, full_key))


def _find_phase(phases: list[Phase], key: str, full_key: str) -> Phase:
    if key.isdigit() and int(key) < len(phases):
        return phases[int(key)]
    for phase in phases:
        if phase.name == key:
            return phase
    names = ", ".join(phase.name for phase in phases)
    raise RecipeError(
        f"Expected a phase name or index from: {names}. Received: {key!r} in {full_key!r}."
    )


def _coerce(value: Any, hint: Any, full_key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (list, dict):
        allowed: tuple = (origin,)
    elif origin in (typing.Union, types.UnionType):
        allowed = tuple(typing.get_origin(arg) or arg for arg in typing.get_args(hint))  # list[str] -> list
    else:
        allowed = (hint,)
    if value is None and type(None) in allowed:
        return None
    for kind in (bool, int, float, str, list, dict):
        if kind not in allowed:
            continue
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind is str and isinstance(value, (int, float)):
            return str(value)
        if kind is list and isinstance(value, str):
            return [item for item in value.split(",") if item]
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            return value
    raise RecipeError(f"Expected {full_key} to be of type {hint}. Received: {value!r}.")


def _validate_reading(data: DataConfig) -> None:
    import codecs

    from kerasdl.data.naming import check_class_names

    if data.encoding is not None:
        try:
            codecs.lookup(data.encoding)
        except LookupError:
            raise RecipeError(
                "Expected data.encoding to be a text encoding Python knows, e.g. latin-1, cp1252 or "
                f"utf-16. Received: {data.encoding!r}. Fix data.encoding."
            ) from None
    if isinstance(data.max_image_pixels, bool) or not isinstance(data.max_image_pixels, int) \
            or data.max_image_pixels <= 0:
        raise RecipeError(
            "Expected data.max_image_pixels to be a positive number of pixels, e.g. 40000000. "
            f"Received: {data.max_image_pixels!r}."
        )
    check_class_names(data.class_names)


def _check_folds(recipe: Recipe) -> None:
    """`data.folds`, `data.fold` and `export.folds` (the data decides later whether K fits it)."""
    folds, fold = recipe.data.folds, recipe.data.fold
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 0 or folds == 1:
        raise RecipeError(
            f"Expected folds of 2 or more for k-fold cross-validation, or 0 for one run. Received: "
            f"folds={folds!r}. Use 5, say.", argument="folds")
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold <= folds:
        raise RecipeError(
            f"Expected data.fold from 1 to data.folds ({folds}), or 0 for all folds. Received: {fold!r}.")
    if recipe.export.folds not in EXPORT_FOLDS:
        raise RecipeError(
            f"Expected export.folds from: {', '.join(EXPORT_FOLDS)}. Received: {recipe.export.folds!r}. "
            "all ships the fold models averaged in one model; best ships the best fold alone.")


def resolve_monitor(monitor: str, num_classes: int) -> str:
    """The validation metric a run monitors: `auto` becomes `val_auc` for two
    classes and `val_accuracy` otherwise.

    Args:
        monitor: `"auto"`, `"val_auc"`, `"val_accuracy"` or `"val_loss"`.
        num_classes: Classes of the data.

    Returns:
        The metric's name as it appears in the training logs.

    Raises:
        RecipeError: for an unknown name, or `val_auc` with more than two classes.

    Example:
    ```python
    resolve_monitor("auto", 2)  # "val_auc"
    ```
    """
    if monitor not in MONITORS:
        raise RecipeError(
            f"Expected monitor from: {', '.join(MONITORS)}. Received: {monitor!r}.", argument="monitor"
        )
    if monitor == "auto":
        return "val_auc" if num_classes == 2 else "val_accuracy"
    if monitor == "val_auc" and num_classes != 2:
        raise RecipeError(
            f"Expected two classes for monitor='val_auc' (ROC-AUC). Received: {num_classes} classes. "
            "Pass monitor='val_accuracy' or monitor='val_loss'.",
            argument="monitor",
        )
    return monitor


def _check_phase(phase: Phase) -> None:
    from kerasdl.models.classifier import parse_trainable

    where = f"phases.{phase.name}"

    def fail(field: str, expected: str, value: Any) -> None:
        raise RecipeError(f"Expected {where}.{field} {expected}. Received: {value!r}.")

    if phase.epochs != "auto" and (not isinstance(phase.epochs, int) or phase.epochs < 0):
        raise RecipeError(
            f"Expected a non-negative epoch count or auto. Received: {phase.epochs!r} for phase "
            f"{phase.name}. Use 0 to skip a phase."
        )
    parse_trainable(phase.trainable)
    if phase.optimizer not in OPTIMIZERS:
        fail("optimizer", f"from: {', '.join(OPTIMIZERS)}", phase.optimizer)
    if phase.schedule not in SCHEDULES:
        fail("schedule", f"from: {', '.join(SCHEDULES)}", phase.schedule)
    if not (isinstance(phase.learning_rate, (int, float)) and 0 < phase.learning_rate < 10):
        fail("learning_rate", "in (0, 10), e.g. 1e-3", phase.learning_rate)
    if phase.warmup_epochs < 0:
        fail("warmup_epochs", "to be 0 or more", phase.warmup_epochs)
    _check_phase_regularization(phase, fail)


def _check_phase_regularization(phase: Phase, fail) -> None:
    """Label smoothing, weight decay, clipping, early stopping and layer decay of a phase."""
    if not 0.0 <= phase.label_smoothing < 1.0:
        fail("label_smoothing", "in [0, 1)", phase.label_smoothing)
    if phase.weight_decay < 0:
        fail("weight_decay", "to be 0 or more", phase.weight_decay)
    if phase.clipnorm is not None and phase.clipnorm <= 0:
        fail("clipnorm", "above 0, or null for no clipping", phase.clipnorm)
    if phase.early_stopping < 0:
        fail("early_stopping", "to be 0 (never) or a patience in epochs", phase.early_stopping)
    if phase.min_delta != "auto" and (isinstance(phase.min_delta, bool)
                                      or not isinstance(phase.min_delta, (int, float)) or phase.min_delta < 0):
        fail("min_delta", "to be auto (one validation image's worth) or a number of 0 or more", phase.min_delta)
    if not 0.0 < phase.layer_decay <= 1.0:
        fail("layer_decay", "in (0, 1] (1: the same learning rate everywhere)", phase.layer_decay)
    if not 0.0 <= phase.ema < 1.0:
        fail("ema", "in [0, 1) (0: no moving average; 0.9, say, for one)", phase.ema)


def auto_epochs(steps_per_epoch: int, *, frozen: bool = False) -> int:
    """The epochs of `epochs="auto"`: about `AUTO_EPOCH_STEPS` steps, within `AUTO_EPOCHS`.

    A `frozen` phase (a head on the frozen backbone) makes about
    `HEAD_AUTO_EPOCH_STEPS` steps within `HEAD_AUTO_EPOCHS` instead.

    Example:
    ```python
    auto_epochs(20)   # 640 images in batches of 32: 5 epochs (15 would make 300 steps)
    auto_epochs(108)  # 3,440 images: 3 epochs
    auto_epochs(8, frozen=True)  # 244 images: the head trains 13 epochs (100 steps)
    ```
    """
    target, (fewest, most) = ((HEAD_AUTO_EPOCH_STEPS, HEAD_AUTO_EPOCHS) if frozen
                              else (AUTO_EPOCH_STEPS, AUTO_EPOCHS))
    return max(fewest, min(most, -(-target // max(1, steps_per_epoch))))


def resolve_epochs(recipe: Recipe, steps_per_epoch: int) -> Recipe:
    """Returns the recipe with each `epochs="auto"` replaced by `auto_epochs`.

    The recipe is returned as it is when no phase says `"auto"`, so the
    call is cheap and can be repeated.

    Args:
        recipe: The recipe.
        steps_per_epoch: Training batches per epoch on the data at hand.
    """
    if all(phase.epochs != "auto" for phase in recipe.phases):
        return recipe
    recipe = copy.deepcopy(recipe)
    for phase in recipe.phases:
        if phase.epochs == "auto":
            phase.epochs = auto_epochs(steps_per_epoch, frozen=phase.trainable in ("head", "none"))
    return recipe


def with_recorded_schedule(recipe: Recipe, recorded: dict[str, Any]) -> Recipe:
    """Returns the recipe with each phase's epochs and learning rate as a run recorded them.

    A run resolves these when it starts (`epochs="auto"`, a time budget's
    plan, `run --lr auto`, `head.pooling="auto"`) and records the result in config.json's
    `recipe`; a resumed run must train with the same numbers, not resolve
    them again.

    Args:
        recipe: The recipe the run was started with, as given.
        recorded: config.json's `recipe`: the same recipe, resolved.
    """
    recipe = copy.deepcopy(recipe)
    for phase, then in zip(recipe.phases, recorded["phases"], strict=True):
        phase.epochs, phase.learning_rate = then["epochs"], then["learning_rate"]
    recipe.head.pooling = recorded.get("head", {}).get("pooling", recipe.head.pooling)
    return recipe


def image_size_arguments(recipe: Recipe) -> dict[str, Any]:
    """`load_data`'s `image_size` (and `size_range` for `"auto"`) for a recipe.

    Example:
    ```python
    data = load_data("faces/", **image_size_arguments(recipe))  # data.image_size: the size chosen
    ```
    """
    from kerasdl.backbones.registry import default_image_size, image_size_range

    backbone = recipe.backbone
    if recipe.image_size == "auto":
        return {"image_size": "auto", "size_range": image_size_range(backbone.name, backbone.options)}
    return {"image_size": recipe.image_size or default_image_size(backbone.name, backbone.options)}


def _check_sizes(recipe: Recipe) -> None:
    """The image and batch sizes: positive, and images no larger than `MAX_IMAGE_SIZE`."""
    if recipe.image_size == "auto":
        pass
    elif recipe.image_size is not None and (isinstance(recipe.image_size, (str, bool))
                                            or not 0 < recipe.image_size <= MAX_IMAGE_SIZE):
        raise RecipeError(
            f"Expected an image size from 1 to {MAX_IMAGE_SIZE} px. Received: image_size="
            f"{recipe.image_size}. Use 224, say, auto for the images' own size, or leave it out for the "
            "backbone's own.",
            argument="image_size",
        )
    if recipe.batch_size <= 0:
        raise RecipeError(f"Expected a positive batch size. Received: batch_size={recipe.batch_size}.",
                          argument="batch_size")


def validate_recipe(recipe: Recipe) -> None:
    """Checks a recipe's values before any costly work.

    Raises:
        RecipeError: for a negative epoch count, all phases at 0 epochs, a
            non-positive image or batch size, an image size above
            `MAX_IMAGE_SIZE`, a malformed trainable spec, an unknown
            optimizer, schedule or monitor, a learning rate, warmup, label
            smoothing, weight decay, clipnorm, patience or layer decay out of
            range, bad head options, an unknown augmentation preset (of the
            recipe or a phase), or an unknown `data.encoding`.
        WeightsError: for `imagenet` weights on a backbone that has none.
    """
    from kerasdl.backbones.registry import default_image_size, get_backbone
    from kerasdl.backbones.weights import check_weights_available
    from kerasdl.data.augment import check_augmentation_name

    check_weights_available(get_backbone(recipe.backbone.name), recipe.backbone.weights)
    default_image_size(recipe.backbone.name, recipe.backbone.options)  # checks options such as phi
    _check_sizes(recipe)
    if recipe.monitor not in MONITORS:
        raise RecipeError(
            f"Expected monitor from: {', '.join(MONITORS)}. Received: monitor={recipe.monitor!r}.",
            argument="monitor",
        )
    if not 0.0 <= recipe.head.dropout < 1.0:
        raise RecipeError(f"Expected head.dropout in [0, 1). Received: {recipe.head.dropout}.")
    if recipe.head.pooling not in ("top", "blocks", "auto"):
        raise RecipeError(f"Expected head.pooling top, blocks or auto. Received: {recipe.head.pooling!r}.")
    if recipe.head.hidden_units < 0:
        raise RecipeError(
            f"Expected head.hidden_units 0 (none) or more. Received: {recipe.head.hidden_units}."
        )
    if not recipe.phases:
        raise RecipeError(f"Expected recipe {recipe.name} to have phases. Received: none.")
    for phase in recipe.phases:
        _check_phase(phase)
        if phase.augment is not None:
            check_augmentation_name(phase.augment, key=f"phases.{phase.name}.augment")
    check_augmentation_name(recipe.augment)
    if all(phase.epochs == 0 for phase in recipe.phases):
        raise RecipeError(
            "Expected at least one phase with epochs. Received: 0 epochs in every phase "
            f"({', '.join(p.name for p in recipe.phases)}). "
            f"Set {' or '.join(f'phases.{p.name}.epochs' for p in recipe.phases)} above 0."
        )
    _check_folds(recipe)
    if recipe.data.class_weight not in (None, "none", "auto"):
        raise RecipeError(
            f"Expected data.class_weight auto or none. Received: {recipe.data.class_weight!r}."
        )
    _validate_reading(recipe.data)
    if not 0.0 <= recipe.data.val_split < 1.0 or not 0.0 <= recipe.data.test_split < 1.0:
        raise RecipeError(
            "Expected data.val_split and data.test_split in [0, 1). "
            f"Received: {recipe.data.val_split} and {recipe.data.test_split}."
        )
