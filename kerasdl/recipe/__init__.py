"""Recipes: named, complete descriptions of a transfer-learning job.

A `Recipe` says which backbone to start from, how big the images are, what
the new head looks like, how to augment, and the `Phase`s of training (the
standard two: train the head on a frozen backbone, then fine-tune the top of
the backbone at a much lower learning rate).

One module a concern:
`schema` the dataclasses (`Recipe`, `Phase`, `BackboneConfig`, ...) and the
values their fields take; `factories` the standard recipes (`transfer_recipe`,
`scratch_recipe`) and augmentation; `registry` the built-in recipes (the
modules of `kerasdl.recipes`), plugins' (the `kerasdl.recipes` entry-point
group) and recipe files; `overrides` the `--set KEY=VALUE` parser; `checks`
`validate_recipe`; `resolve` the `auto` values once the data is known. No
module here loads TensorFlow at import, so the CLI's help reads from them.

Example:
```python
from kerasdl.recipe import apply_overrides, get_recipe
recipe = apply_overrides(get_recipe("mobilenetv2-transfer"), ["head.dropout=0.3"])
```
"""

from kerasdl.recipe.checks import validate_recipe
from kerasdl.recipe.factories import (
    phase_augmentation,
    scratch_recipe,
    transfer_recipe,
    with_augmentation,
)
from kerasdl.recipe.overrides import apply_overrides, parse_value
from kerasdl.recipe.registry import (
    BUILTIN_PACKAGE,
    ENTRY_POINT_GROUP,
    RecipeSource,
    builtin_recipes,
    get_recipe,
    list_recipes,
    load_recipe_file,
    recipe_sources,
)
from kerasdl.recipe.resolve import (
    AUTO_EPOCH_STEPS,
    AUTO_EPOCHS,
    HEAD_AUTO_EPOCH_STEPS,
    HEAD_AUTO_EPOCHS,
    auto_epochs,
    data_arguments,
    image_size_arguments,
    resolve_epochs,
    resolve_monitor,
    source_arguments,
    with_recorded_schedule,
)
from kerasdl.recipe.schema import (
    AUGMENT_PRESETS,
    EXPORT_FOLDS,
    MAX_IMAGE_SIZE,
    MONITORS,
    OPTIMIZERS,
    SCHEDULES,
    TRANSFER_AUGMENT,
    TRANSFER_HEAD_AUGMENT,
    TTA_MODES,
    BackboneConfig,
    DataConfig,
    ExportConfig,
    HeadConfig,
    Phase,
    Recipe,
)

__all__ = [
    "AUGMENT_PRESETS",
    "AUTO_EPOCHS",
    "AUTO_EPOCH_STEPS",
    "BUILTIN_PACKAGE",
    "ENTRY_POINT_GROUP",
    "EXPORT_FOLDS",
    "HEAD_AUTO_EPOCHS",
    "HEAD_AUTO_EPOCH_STEPS",
    "MAX_IMAGE_SIZE",
    "MONITORS",
    "OPTIMIZERS",
    "SCHEDULES",
    "TRANSFER_AUGMENT",
    "TRANSFER_HEAD_AUGMENT",
    "TTA_MODES",
    "BackboneConfig",
    "DataConfig",
    "ExportConfig",
    "HeadConfig",
    "Phase",
    "Recipe",
    "RecipeSource",
    "apply_overrides",
    "auto_epochs",
    "builtin_recipes",
    "data_arguments",
    "get_recipe",
    "image_size_arguments",
    "list_recipes",
    "load_recipe_file",
    "parse_value",
    "phase_augmentation",
    "recipe_sources",
    "resolve_epochs",
    "resolve_monitor",
    "scratch_recipe",
    "source_arguments",
    "transfer_recipe",
    "validate_recipe",
    "with_augmentation",
    "with_recorded_schedule",
]
