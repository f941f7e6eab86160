"""How a run is carried out, apart from what it trains: `RunOptions`, made once by the CLI or a
script, and the checks every run (one run or k folds) makes of them before any work."""


from __future__ import annotations

import dataclasses
import os

from kerasdl.data.naming import check_source
from kerasdl.errors import RecipeError
from kerasdl.export.options import ExportOptions, check_export_requirements, parse_export_list
from kerasdl.inference.predict import TTA_MODES
from kerasdl.recipe import validate_recipe
from kerasdl.training.distribute import check_batch_splits, fit_replicas
from kerasdl.training.engine import TrainOptions
from kerasdl.training.runtime import RuntimeOptions


@dataclasses.dataclass
class RunOptions:
    """How `run_recipe` runs a recipe: where it writes, what it exports, how it trains and reports.

    What is trained (backbone, data settings, phases, k folds) is the
    recipe's; these are the rest, the same for one run and a k-fold run.

    Attributes:
        output_dir: The run folder. `None`: `runs/<recipe>/<timestamp>/`.
        export: `(format, quantize)` pairs to export; `None`: the recipe's
            `export` list.
        overwrite: Replace the kerasdl run in `output_dir`: once every input
            is checked, the files that run wrote (its manifest.json) are
            deleted and anything else there stays.
        resume: Continue the interrupted run in `output_dir` from its last
            checkpoint (same recipe and data).
        command: The command line, recorded for reproduction (`""`: the
            process's own arguments).
        verbose: Training progress: `"auto"` (Keras's live bar on a
            terminal, else one plain line per epoch), `1`, `2` (one line per
            epoch) or `0`.
        export_options: An `ExportOptions` (int8 calibration size, rejection
            threshold). `None`: `ExportOptions(seed=recipe.seed)`.
        training_options: A `kerasdl.TrainOptions` (feature cache, XLA,
            steps per execution). `None`: its defaults.
        runtime: A `kerasdl.training.runtime.RuntimeOptions` (determinism,
            mixed precision, distribution). `None`: none of them.
        tta: Test-time augmentation of the final evaluation: `"none"`, or
            `"flip"` to average each image's and its mirror's probabilities.
        lr_auto: Set the first (head) phase's learning rate by the range test
            of `kerasdl.app.lr_find` before training.
        time_budget: Seconds the whole run may take, or a duration such as
            `"10m"` or `"1h30m"` (`kerasdl.app.budget`); `None` for none.
        fixed_epochs: Names of the phases whose epochs the user set: a time
            budget may cut them but never adds any.

    Example:
    ```python
    options = RunOptions(output_dir="runs/faces", export=[("tflite", "int8")], tta="flip")
    result = run_recipe(get_recipe("efficientnet-lite0-transfer"), "faces/", options)
    ```
    """

    output_dir: str | os.PathLike | None = None
    export: list[tuple[str, str]] | None = None
    overwrite: bool = False
    resume: bool = False
    command: str = ""
    verbose: int | str = "auto"
    export_options: ExportOptions | None = None
    training_options: TrainOptions | None = None
    runtime: RuntimeOptions | None = None
    tta: str = "none"
    lr_auto: bool = False
    time_budget: float | str | None = None
    fixed_epochs: tuple[str, ...] = ()


def run_options_from_flags(
    *,
    seed: int,
    export: str | None = None,
    tflite_quantize: str = "none",
    representative_size: int = 300,
    int8_io: str = "uint8",
    max_accuracy_drop: float = 0.01,
    int8_bias_correction: bool = True,
    feature_cache: bool = True,
    jit_compile: bool = False,
    steps_per_execution: int = 1,
    tensorboard: bool = True,
    deterministic: bool = False,
    mixed_precision: bool = False,
    distribute: str | None = None,
    **fields,
) -> RunOptions:
    """A `RunOptions` from plain flag values, as `kerasdl run` takes them.

    The CLI passes values only, so it needs neither the exporter's nor the
    engine's option classes (the layers stay one-way: cli -> app).

    Args:
        seed: Seed of the int8 representative sample (the recipe's seed).
        export: The `--export` text (`"tflite,onnx"`, `"none"`); `None`: the
            recipe's `export` list.
        tflite_quantize: The quantization of a plain `tflite` in `export`
            (the recipe's `export.quantize`).
        representative_size, int8_io, max_accuracy_drop, int8_bias_correction:
            The `ExportOptions` fields of the same names.
        feature_cache: Train a frozen phase without augmentation on features
            computed once.
        jit_compile: `True`: compile the train step with XLA; `False`: the
            engine's `"auto"`.
        steps_per_execution, tensorboard: The `TrainOptions` fields.
        deterministic, mixed_precision, distribute: The `RuntimeOptions` fields.
        **fields: The other `RunOptions` fields (`output_dir`, `tta`, ...).

    Returns:
        The `RunOptions`.

    Raises:
        ExportError: for an unknown export format or quantization.

    Example:
    ```python
    options = run_options_from_flags(seed=0, export="tflite:int8", tta="flip")
    ```
    """
    formats = parse_export_list(export, tflite_quantize=tflite_quantize) if export is not None else None
    return RunOptions(
        export=formats,
        export_options=ExportOptions(representative_size=representative_size, int8_io=int8_io,
                                     max_accuracy_drop=max_accuracy_drop, seed=seed,
                                     int8_bias_correction=int8_bias_correction),
        training_options=TrainOptions(feature_cache=feature_cache, jit_compile=True if jit_compile else "auto",
                                      steps_per_execution=steps_per_execution, tensorboard=tensorboard),
        runtime=RuntimeOptions(deterministic=deterministic, mixed_precision=mixed_precision,
                               distribute=distribute),
        **fields,
    )


def check_run_options(recipe, data_source: str, options: RunOptions):
    """The checks of any run that need no data: recipe, source names, TTA, batch split, exports.

    Returns:
        `(formats, export_options)`: the `(format, quantize)` pairs to
        export and the `ExportOptions` to export them with.

    Raises:
        KerasdlError: for a bad recipe, source, `tta` or export list.
    """
    validate_recipe(recipe)
    check_source(data_source, class_names=recipe.data.class_names)  # paths and names, before weights
    if options.tta not in TTA_MODES:
        raise RecipeError(f"Expected tta from: {', '.join(TTA_MODES)}. Received: tta={options.tta!r}.",
                          argument="tta")
    check_batch_splits(recipe.batch_size, fit_replicas())
    formats = options.export if options.export is not None else parse_export_list(
        recipe.export.formats, tflite_quantize=recipe.export.quantize)
    check_export_requirements(formats)
    return formats, options.export_options or ExportOptions(seed=recipe.seed)


__all__ = ["RunOptions", "check_run_options", "run_options_from_flags"]
