"""The `kerasdl` command: a thin Click layer over the Python API."""


from __future__ import annotations

import functools
import json
import re
import shlex
import typing
from pathlib import Path

import click

from kerasdl._util.console import plural
from kerasdl.cli.console import ConsoleOptions, format_size, quietly, setup_console
from kerasdl.errors import KerasdlError
from kerasdl.recipe import (
    AUGMENT_PRESETS,
    MONITORS,
    TRANSFER_AUGMENT,
    TRANSFER_HEAD_AUGMENT,
    TTA_MODES,
)


def _reports_errors(command):
    """Turns a KerasdlError into exit status 1 with its one-line message.

    An error about one argument of the Python API that a flag of this
    command sets (`threshold` -> `--threshold`) starts with that flag, so
    the user sees what to change on the command line.
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KerasdlError as error:
            message, field_flag = _fields_as_flags(in_flags(str(error)))
            flag = _flag_of(error.argument) or field_flag
            raise click.ClickException(f"{flag}: {message}" if flag else message) from None

    return wrapper


def _fields_as_flags(message: str) -> tuple[str, str | None]:
    """Says the recipe fields that this command's given flags set as those flags.

    `run --lr -1` sets `phases.head.learning_rate`, whose check says so; on
    the command line the error names `--lr` instead. The command lists its
    fields in `context.meta["kerasdl.fields"]` (`_flags_name_fields`).

    Returns:
        `(message, the first flag named, or None)`.
    """
    context = click.get_current_context(silent=True)
    fields = context.meta.get("kerasdl.fields", {}) if context else {}
    named = None
    for field, flag in fields.items():
        pattern = re.compile(rf"(?<![\w.]){re.escape(field)}(?![\w])")
        if pattern.search(message):
            message, named = pattern.sub(flag, message), named or flag
    return message, named


def _flags_name_fields(fields: dict[str, str]) -> None:
    """Errors about these recipe fields name the flags that set them (`{field: flag}`)."""
    click.get_current_context().meta["kerasdl.fields"] = fields


def _class_names_option(value: str | None) -> list[str] | None:
    """`--class-names real,ai` as a list (spaces around names dropped)."""
    return None if value is None else [name.strip() for name in value.split(",")]


_CLASS_NAMES_OPTION = click.option(
    "--class-names", default=None, metavar="NAME,NAME,...",
    help="Names for the data's classes in label order, e.g. real,ai for labels 0 and 1 of a label "
         "file: metrics, report, plots, labels.txt, metadata, the demo and predict show them "
         "(recipe field data.class_names).")


# `name=value` in a library message: a quoted value, or one up to a space, comma or bracket
# (a full stop ending the sentence is not part of it).
_ARGUMENT_VALUE = re.compile(r"(?<![\w.])([a-z_][a-z0-9_]*)=('[^']*'|\"[^\"]*\"|[^\s,;()]+?)(?=[\s,;()]|\.?$|\.\s)")

# Python arguments a command's option sets under another name: `run --lr auto` is `lr_auto=True`.
_OPTION_OF_ARGUMENT = {"lr_auto": "learning_rate"}


def in_flags(message: str) -> str:
    """Says a library message's `argument=value` as the current command's flag.

    Library errors name Python arguments (`Pass overwrite=True`, `Received:
    image_size=20`, `Pick another output_dir.`); on the command line the
    same words read `--overwrite`, `--image-size 20` and `--output`. Names
    that no option of the command sets stay.
    """
    context = click.get_current_context(silent=True)
    if context is None:
        return message

    def flag_text(match: re.Match) -> str:
        name, value = match.group(1), match.group(2).strip("'\"")
        option = _option_of(context, name)
        negated = _option_of(context, f"no_{name}")  # feature_cache=False is --no-feature-cache
        if option is None and negated is not None and negated.is_flag and value in ("True", "False"):
            return negated.opts[0] if value == "False" else f"without {negated.opts[0]}"
        if option is None:
            return match.group(0)
        flag = _flag_of(name)
        if value == "None":
            return f"without {flag}"
        if value == "True" and option.is_flag:
            return flag
        if value == "False" and option.is_flag and option.secondary_opts:
            return option.secondary_opts[0]
        if value == "True" and not option.is_flag and option.metavar:
            return f"{flag} {option.metavar}"
        if value in ("True", "False"):
            return match.group(0)
        return f"{flag} {shlex.quote(value)}"

    def bare_flag(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name in _recipe_keys():  # a `--set` key, as in `kerasdl show`'s list
            return match.group(0)
        flag = _flag_of(name)
        return flag if flag else match.group(0)

    return _BARE_ARGUMENT.sub(bare_flag, _ARGUMENT_VALUE.sub(flag_text, message))


@functools.cache
def _recipe_keys() -> frozenset[str]:
    """Every field name of a recipe, at any depth (`image_size`, `class_names`)."""
    import dataclasses

    from kerasdl.recipe import Recipe

    names, sections = set(), [Recipe]
    while sections:
        for name, hint in typing.get_type_hints(sections.pop()).items():
            names.add(name)
            sections += [kind for kind in typing.get_args(hint) or [hint] if dataclasses.is_dataclass(kind)]
    return frozenset(names)


# A Python argument named without a value: `Pick another output_dir.`, `Expected output_dir= to be
# ...`. Only snake_case names (`output_dir`, not `output`) or a name with `=` (`Expected output= ...`):
# plain words stay words.
_BARE_ARGUMENT = re.compile(
    r"(?<![\w.=/-])(?:([a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?:=(?=\s|$))?|([a-z][a-z0-9]*)=(?=\s|$))(?![\w=(/-]|\.\w)")


def _option_of(context: click.Context, argument: str) -> click.Option | None:
    """The command's option whose Python name is the argument's, else the one
    `_OPTION_OF_ARGUMENT` names."""
    options = {param.name: param for param in context.command.params if isinstance(param, click.Option)}
    return options.get(argument) or options.get(_OPTION_OF_ARGUMENT.get(argument, ""))


def _flag_of(argument: str | None) -> str | None:
    """The current command's flag for a Python argument name, if it has one.

    The flag of `_option_of` (`--output` is `output_dir`); a command may
    override it in `context.meta["kerasdl.flags"]` (`run --resume DIR`
    passes `output_dir=DIR`).
    """
    context = click.get_current_context(silent=True)
    if argument is None or context is None:
        return None
    override = context.meta.get("kerasdl.flags", {}).get(argument)
    if override:
        return override
    option = _option_of(context, argument)
    return option.opts[0] if option else None


def reproducing_command(context: click.Context) -> str:
    """The command line that repeats this invocation, defaults left out."""
    parts = ["kerasdl", context.info_name]
    for param in context.command.params:
        value = context.params.get(param.name)
        if isinstance(param, click.Argument):
            parts.append(str(value))
        elif value == param.default or value in (None, ()):
            continue
        elif getattr(param, "is_flag", False):  # a --flag, or a --x/--no-x pair
            if value or param.secondary_opts:
                parts.append(param.opts[0] if value else param.secondary_opts[0])
        else:
            for item in value if getattr(param, "multiple", False) else [value]:
                parts += [param.opts[0], str(item)]
    return shlex.join(parts)


def _training_options(command):
    """The `run` options of the training engine (resume, speed, determinism, distribution)."""
    options = [
        click.option("--resume", type=click.Path(file_okay=False), default=None, metavar="DIR",
                     help="Continue the interrupted run in DIR from its last checkpoint "
                          "(same recipe, data and options)."),
        click.option("--no-feature-cache", is_flag=True,
                     help="Always train through the backbone, also while it is frozen "
                          "(default: a frozen phase without augmentation trains on features "
                          "computed once)."),
        click.option("--deterministic", is_flag=True,
                     help="Deterministic ops: with the same --seed, two runs on this machine "
                          "give identical numbers (slower)."),
        click.option("--mixed-precision", is_flag=True,
                     help="Compute in float16 on GPU, bfloat16 on CPU; weights and the output "
                          "stay float32."),
        click.option("--jit-compile", is_flag=True, help="Compile the train step with XLA (for GPUs; off by default on CPU, where training was 17x slower here)."),
        click.option("--steps-per-execution", type=click.IntRange(min=1), default=1,
                     show_default=True, help="Batches run per compiled call (fewer Python round trips)."),
        click.option("--distribute", type=click.Choice(["mirrored", "multi-worker"]), default=None,
                     help="Data-parallel training: mirrored (all local GPUs; KERASDL_CPU_DEVICES=N "
                          "splits the CPU for testing) or multi-worker (TF_CONFIG). --batch-size "
                          "is the global batch."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kerasdl")
@click.option("-v", "--verbose", is_flag=True,
              help="Also show TensorFlow's, absl's and CUDA's own log lines and every Python "
                   "warning with its source.")
@click.option("-q", "--quiet", is_flag=True,
              help="Show only warnings, errors and each command's result (no progress or status lines).")
@click.option("--backend", default=None, metavar="tensorflow|jax|torch",
              help="Keras backend of the command (default: KERAS_BACKEND, else tensorflow). Export "
                   "runs on TensorFlow, in a subprocess of its own when the backend is another.")
@click.pass_context
def main(context, verbose, quiet, backend):
    """Train, evaluate and export image classifiers by transfer learning."""
    import kerasdl
    from kerasdl._util.backend import select_backend

    if verbose and quiet:
        raise click.BadParameter("--verbose shows more, --quiet less: pick one.", param_hint="--quiet")
    try:
        select_backend(backend)  # before Keras loads
    except KerasdlError as error:
        raise click.ClickException(in_flags(str(error))) from None
    context.obj = ConsoleOptions(verbose=verbose, quiet=quiet)
    setup_console(context.obj, user_tf_log_level=getattr(kerasdl, "_USER_TF_CPP_MIN_LOG_LEVEL", None),
                  in_flags=in_flags)


def _console() -> ConsoleOptions | None:
    context = click.get_current_context(silent=True)
    return context.find_object(ConsoleOptions) if context else None


@main.command("list")
@_reports_errors
def list_command():
    """List the installed recipes."""
    from kerasdl.backbones.registry import default_image_size
    from kerasdl.recipe import list_recipes

    for recipe in list_recipes():
        size = recipe.image_size or default_image_size(recipe.backbone.name, recipe.backbone.options)
        size = "auto" if size == "auto" else f"{size}px"
        click.echo(f"{recipe.name:<28} {recipe.backbone.name:<22} {size:>6}  {recipe.description}")


@main.command()
@click.argument("recipe")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe field, e.g. head.dropout=0.3 (repeatable).")
@click.option("--summary/--no-summary", default=None,
              help="Also print the network's layer table and parameter count "
                   "(default: on for recipes that train from scratch).")
@_reports_errors
def show(recipe, assignments, summary):
    """Show RECIPE (a name or a .py file) resolved, as JSON, and describe its network."""
    from kerasdl.app.describe import describe_recipe
    from kerasdl.recipe import apply_overrides, get_recipe

    resolved = apply_overrides(get_recipe(recipe), list(assignments))
    click.echo(json.dumps(resolved.to_dict(), indent=2))
    description = describe_recipe(resolved, layers=summary)
    if description:
        click.echo("\n" + description)


@main.command()
@_reports_errors
def backbones():
    """List the backbones with their default sizes and options."""
    from kerasdl.backbones.registry import BACKBONES

    click.echo(f"{'name':<18} {'size':>4}  {'preprocessing':<13} options")
    for spec in sorted(BACKBONES.values(), key=lambda s: s.name):
        click.echo(f"{spec.name:<18} {spec.default_size:>4}  {spec.preprocessing:<13} "
                   f"{', '.join(spec.options) or '-'}")


def _export_check_options(command):
    """The options that decide how int8 is calibrated and when a file is rejected."""
    command = click.option(
        "--max-accuracy-drop", type=click.FloatRange(0.0, 1.0), default=0.01, show_default=True,
        help="Reject an exported file whose validation accuracy drops more than this (0.01 = 1 point)."
    )(command)
    command = click.option(
        "--int8-io", type=click.Choice(["uint8", "float"]), default="uint8", show_default=True,
        help="int8 TFLite input/output tensors: uint8 pixels and probabilities, or float32."
    )(command)
    command = click.option(
        "--int8-bias-correction/--no-int8-bias-correction", default=True, show_default=True,
        help="Cancel the mean shift that rounding kernels to int8 causes (measured on the "
             "calibration images) before int8 conversion."
    )(command)
    return click.option(
        "--representative-size", type=click.IntRange(min=1), default=300, show_default=True,
        help="Training images sampled to calibrate int8 quantization."
    )(command)


@main.command()
@click.argument("recipe")
@click.option("--data", "data_source", default="sample", show_default=True,
              help="Image source: a class-folder tree, csv:LABELS.csv[,val=FILE][,test=FILE], "
                   "tfds:NAME[:SPLIT], or 'sample' (built-in faces).")
@click.option("--weights", default=None, help="imagenet, none, or a local weights file.")
@click.option("--epochs", type=int, default=None, help="Epochs of the head phase (0 skips it).")
@click.option("--fine-tune-epochs", type=int, default=None,
              help="Most epochs of the fine-tuning phase (0 skips it; default: the recipe's, "
                   "auto for the transfer recipes: about 300 steps, 3 to 5 epochs).")
@click.option("--image-size", default=None, metavar="PX|auto",
              help="Square input size in pixels, or auto: the images' typical size within the sizes "
                   "the backbone takes (half to 8/7 of its own), so they are not resampled "
                   "(default: the recipe's).")
@click.option("--batch-size", type=int, default=None, help="Mini-batch size.")
@click.option("--seed", type=int, default=None, help="Seed of split, shuffle and weights.")
@click.option("--augment", default=None,
              help=f"Augmentation preset of every phase: {', '.join(AUGMENT_PRESETS)} "
                   f"(default: the recipe's; transfer recipes: {TRANSFER_HEAD_AUGMENT} while the "
                   f"backbone is frozen, so its features are computed once, then {TRANSFER_AUGMENT}). "
                   "--set phases.head.augment=none gives one phase its own.")
@click.option("--class-weight", type=click.Choice(["auto", "none"]), default=None,
              help="auto: weight classes by inverse frequency of the training split.")
@click.option("--output", "output_dir", type=click.Path(), default=None,
              help="Run folder: new or empty (or a kerasdl run, with --resume or --overwrite). "
                   "Default: runs/<recipe>/<timestamp>/.")
@click.option("--export", "export_list", default=None,
              help="Comma list: saved_model, tflite, tflite:float16|dynamic|int8|int8-full, onnx, or none.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe field, e.g. backbone.alpha=0.35 (repeatable).")
@click.option("--overwrite", is_flag=True,
              help="Replace the kerasdl run in --output: deletes only the files that run wrote.")
@click.option("--quiet", is_flag=True,
              help="One line per epoch instead of a per-step progress bar "
                   "(`kerasdl --quiet run ...` shows only warnings and the summary).")
@click.option("--tensorboard/--no-tensorboard", default=True, show_default=True,
              help="Write TensorBoard logs (scalars per epoch and phase, learning rate, confusion "
                   "matrix and ROC) to RUN_DIR/logs/.")
@click.option("--monitor", type=click.Choice(MONITORS),
              default=None,
              help="Validation metric that picks the best model and stops early (default: the "
                   "recipe's; auto = val_auc for two classes, val_accuracy otherwise).")
@click.option("--tta", type=click.Choice(TTA_MODES), default="none", show_default=True,
              help="Test-time augmentation of the final evaluation: flip averages each image's "
                   "and its mirror image's probabilities (recorded in metrics.json).")
@click.option("--time-budget", default=None, metavar="DURATION",
              help="Wall time the whole run may take (90s, 10m, 1h30m): fine-tuning gets the most "
                   "epochs that fit, up to 3x the recipe's (epochs set by --epochs, --fine-tune-epochs "
                   "or --set stay a ceiling; early stopping still applies); too small "
                   "a budget is refused, naming the smallest that works. With --resume the run "
                   "keeps its epochs and the budget bounds this command.")
@click.option("--folds", type=int, default=None, metavar="K",
              help="k-fold cross-validation: K runs (folds/fold_1 ... fold_K), each validating on one "
                   "of K stratified folds of the images; metrics.json holds the out-of-fold metrics, "
                   "and the K models ship averaged in one (--set export.folds=best: the best fold).")
@click.option("--lr", "learning_rate", default=None, metavar="RATE|auto",
              help="Learning rate of the head phase; auto runs the range test of `kerasdl lr-find` "
                   "first and uses its suggestion (recorded in config.json; --resume reuses it).")
@_CLASS_NAMES_OPTION
@_export_check_options
@_training_options
@_reports_errors
def run(recipe, data_source, weights, epochs, fine_tune_epochs, image_size, batch_size, seed,
        augment, class_weight, output_dir, export_list, assignments, overwrite, quiet, tensorboard,
        monitor, tta, time_budget, folds, learning_rate, class_names, representative_size,
        int8_bias_correction, int8_io, max_accuracy_drop, resume, no_feature_cache, deterministic, mixed_precision,
        jit_compile, steps_per_execution, distribute):
    """Train RECIPE on --data, evaluate it, export it, and write a run folder."""
    from kerasdl.app.options import RunOptions
    from kerasdl.app.run import run_recipe
    from kerasdl.export.exporter import ExportOptions, parse_export_list
    from kerasdl.recipe import apply_overrides, get_recipe, validate_recipe, with_augmentation
    from kerasdl.training.engine import TrainOptions
    from kerasdl.training.runtime import RuntimeOptions

    if resume and output_dir and Path(output_dir).resolve() != Path(resume).resolve():
        raise click.BadParameter("give the run folder once, as --resume DIR.", param_hint="--output")
    if resume and overwrite:
        raise click.BadParameter("--resume continues a run; --overwrite replaces it: pick one.",
                                 param_hint="--overwrite")

    if resume:  # the run folder reaches run_recipe as output_dir
        click.get_current_context().meta["kerasdl.flags"] = {"output_dir": "--resume"}
    chosen = get_recipe(recipe)
    if augment is not None:  # every phase, before --set so phases.X.augment=... can still differ
        chosen = with_augmentation(chosen, augment)
    resolved = apply_overrides(chosen, list(assignments))
    _apply_run_options(resolved, weights=weights, epochs=epochs, fine_tune_epochs=fine_tune_epochs,
                       image_size=image_size, batch_size=batch_size, seed=seed, augment=augment)
    if class_weight is not None:
        resolved.data.class_weight = class_weight
    if monitor is not None:
        resolved.monitor = monitor
    if folds is not None:
        resolved.data.folds = folds
    lr_auto = _apply_flag_fields(resolved, learning_rate=learning_rate, class_names=class_names)
    if time_budget is not None:
        from kerasdl.app.budget import parse_duration

        parse_duration(time_budget)  # a bad form first; the text goes on, so messages quote it as typed
    formats = (parse_export_list(export_list, tflite_quantize=resolved.export.quantize)
               if export_list is not None else None)
    validate_recipe(resolved)  # a bad value is the only line, before any status line
    console = _console()
    with quietly(console):
        options = RunOptions(
            output_dir=resume or output_dir, export=formats, overwrite=overwrite, resume=bool(resume),
            command=reproducing_command(click.get_current_context()),
            verbose=0 if console and console.quiet else 2 if quiet else "auto",
            export_options=ExportOptions(representative_size=representative_size, int8_io=int8_io,
                                         max_accuracy_drop=max_accuracy_drop, seed=resolved.seed,
                                         int8_bias_correction=int8_bias_correction),
            training_options=TrainOptions(
                feature_cache=not no_feature_cache, jit_compile=True if jit_compile else "auto",
                steps_per_execution=steps_per_execution, tensorboard=tensorboard,
            ),
            runtime=RuntimeOptions(
                deterministic=deterministic, mixed_precision=mixed_precision, distribute=distribute,
            ),
            tta=tta, lr_auto=lr_auto, time_budget=time_budget,
            fixed_epochs=_epochs_set(resolved, assignments, epochs=epochs, fine_tune_epochs=fine_tune_epochs),
        )
        result = run_recipe(resolved, data_source, options)
    _echo_run_summary(result, tta=tta)


def _echo_run_summary(result, *, tta: str = "none") -> None:
    """The end of `kerasdl run`: the numbers, the best epoch, the report, the files to ship."""
    from kerasdl.app.summary import summarize_run

    metrics = result.metrics
    line = f"accuracy {metrics['accuracy']:.4f} on {plural(metrics['num_samples'], metrics['split'] + ' image')}"
    if metrics.get("auc") is not None:
        line += f", ROC-AUC {metrics['auc']:.4f}"
    summary = summarize_run(result.run_dir)
    if tta != "none":
        line += f" (test-time augmentation {tta})"
    if metrics.get("folds"):
        click.echo(f"Done: {line} of {metrics['folds']} folds. Run folder: {result.run_dir}")
        _echo_fold_lines(metrics, result.run_dir)
    else:
        click.echo(f"Done: {line}; best model by {metrics.get('monitor')}. Run folder: {result.run_dir}")
    if summary.best_metric is not None:
        click.echo(f"  best {summary.monitor}: {summary.best_metric:.4f} (epoch {summary.best_epoch})")
    if summary.report is not None:
        click.echo(f"  report:   {summary.report}")
    if summary.files:
        click.echo("  files:    " + ", ".join(
            f"{path}{'/' if is_dir else ''} ({format_size(size)})" for path, size, is_dir in summary.files))
    if summary.tensorboard is not None:
        click.echo(f"  logs:     tensorboard --logdir {summary.tensorboard}")


def _echo_fold_lines(metrics, run_dir: Path) -> None:
    """A k-fold run: each fold's score, the ensemble's on the test split, and what ships."""
    import json

    def scored(values):
        ci = values.get("auc_ci95") or values.get("accuracy_ci95")
        name, value = ("ROC-AUC", values["auc"]) if values.get("auc") is not None else ("accuracy", values["accuracy"])
        return f"{name} {value:.4f}" + (f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else "")

    for fold in metrics["fold_metrics"]:
        click.echo(f"  fold {fold['fold']}: val {scored(fold['val'])}"
                   + (f", test {scored(fold['test'])}" if fold.get("test") else ""))
    if metrics.get("ensemble_test"):
        click.echo(f"  ensemble of {metrics['ensemble_test']['num_models']} on the test split: "
                   f"{scored(metrics['ensemble_test'])}")
    recipe = json.loads((run_dir / "config.json").read_text()).get("recipe", {})
    if recipe.get("export", {}).get("folds", "all") == "all":
        click.echo(f"  model.keras averages the {metrics['folds']} fold models: {metrics['folds']} times "
                   "one model's size and work per image (--set export.folds=best ships the best fold)")


def _apply_run_options(recipe, *, weights, epochs, fine_tune_epochs, image_size, batch_size, seed,
                       augment):
    if weights is not None:
        recipe.backbone.weights = weights
    if epochs is not None:
        recipe.phases[0].epochs = epochs
    if fine_tune_epochs is not None:
        if len(recipe.phases) < 2:
            raise click.BadParameter(f"recipe {recipe.name} has no fine-tuning phase.",
                                     param_hint="--fine-tune-epochs")
        recipe.phases[1].epochs = fine_tune_epochs
    if image_size is not None:
        recipe.image_size = _image_size_option(image_size)
    if batch_size is not None:
        recipe.batch_size = batch_size
    if seed is not None:
        recipe.seed = seed
    if augment is not None:
        recipe.augment = augment


def _epochs_set(recipe, assignments, *, epochs, fine_tune_epochs) -> tuple[str, ...]:
    """The phases whose epochs this command sets to a number (--epochs, --fine-tune-epochs,
    --set phases.X.epochs=N): a time budget keeps them as ceilings."""
    named = {0} if epochs is not None else set()
    if fine_tune_epochs is not None:
        named.add(1)
    names = [phase.name for phase in recipe.phases]
    for assignment in assignments:
        parts = assignment.split("=", 1)[0].strip().split(".")
        if len(parts) == 3 and parts[0] == "phases" and parts[2] == "epochs":
            named.add(int(parts[1]) if parts[1].isdigit() else names.index(parts[1]) if parts[1] in names else -1)
    return tuple(names[index] for index in sorted(named)
                 if 0 <= index < len(names) and isinstance(recipe.phases[index].epochs, int))


def _image_size_option(value: str) -> int | str:
    """`--image-size`: a number of pixels, or auto."""
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"expected a number of pixels or auto, got {value!r}.",
                                 param_hint="--image-size") from None


def _apply_flag_fields(recipe, *, learning_rate, class_names) -> bool:
    """Sets the recipe fields of --lr and --class-names, whose errors then name those flags;
    returns whether the rate is `auto`."""
    fields = {}
    if learning_rate not in (None, "auto"):
        fields[f"phases.{recipe.phases[0].name}.learning_rate"] = "--lr"
    if class_names is not None:
        recipe.data.class_names = _class_names_option(class_names)
        fields["data.class_names"] = "--class-names"
    _flags_name_fields(fields)
    return _apply_learning_rate(recipe, learning_rate)


def _apply_learning_rate(recipe, value) -> bool:
    """Sets the first phase's rate from --lr; returns whether it is `auto`."""
    if value is None:
        return False
    if value == "auto":  # a resumed run keeps the rate its range test found (run_recipe)
        return True
    try:
        recipe.phases[0].learning_rate = float(value)
    except ValueError:
        raise click.BadParameter(f"expected a number or auto, got {value!r}.", param_hint="--lr") from None
    return False


@main.command("lr-find")
@click.argument("recipe")
@click.option("--data", "data_source", default="sample", show_default=True,
              help="Image source, as for `kerasdl run`.")
@click.option("--weights", default=None, help="imagenet, none, or a local weights file.")
@click.option("--image-size", default=None, metavar="PX|auto",
              help="Square input size in pixels, or auto (the images' typical size; see run --help).")
@click.option("--batch-size", type=int, default=None, help="Mini-batch size.")
@click.option("--steps", type=click.IntRange(min=5), default=300, show_default=True,
              help="Optimizer steps, the learning rate growing from 1e-7 to 10.")
@click.option("--output", "output_dir", type=click.Path(), default=None,
              help="Folder for lr_find.png and lr_find.json. Default: runs/<recipe>/lr_find/.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe field (repeatable).")
@_reports_errors
def lr_find_command(recipe, data_source, weights, image_size, batch_size, steps, output_dir, assignments):
    """Learning-rate range test of RECIPE's head on --data (features computed once)."""
    from kerasdl.app.lr_find import lr_find
    from kerasdl.recipe import apply_overrides, get_recipe

    resolved = apply_overrides(get_recipe(recipe), list(assignments))
    _apply_run_options(resolved, weights=weights, epochs=None, fine_tune_epochs=None,
                       image_size=image_size, batch_size=batch_size, seed=None, augment=None)
    out = Path(output_dir) if output_dir else Path("runs") / resolved.name / "lr_find"
    found = lr_find(resolved, data_source, output_dir=out, steps=steps)
    click.echo(f"Suggested learning rate for phase {found['phase']}: {found['suggestion']:.3g} "
               f"(lowest loss at {found['min_loss_learning_rate']:.3g}). Plot: {out / 'lr_find.png'}; "
               f"use it with: kerasdl run {recipe} --lr {found['suggestion']:.3g} (or --lr auto)")


_TTA_OPTION = click.option(
    "--tta", type=click.Choice(TTA_MODES), default="none", show_default=True,
    help="Test-time augmentation: flip averages each image's and its mirror image's probabilities.")


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.option("--data", "data_source", required=True, help="Labelled image source to evaluate on.")
@click.option("--output", "output_dir", type=click.Path(), default=None,
              help="Folder for metrics.json and pictures: new or empty (or an earlier evaluation, "
                   "with --overwrite). Default: evaluation/ in MODEL's run folder (else beside "
                   "MODEL), or evaluation_2/, ... when that is taken.")
@click.option("--overwrite", is_flag=True,
              help="Replace the earlier evaluation in --output (default: in evaluation/): deletes "
                   "only the files that evaluation wrote.")
@click.option("--batch-size", type=int, default=32, show_default=True, help="Images per batch.")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help="Two classes: decision threshold on the positive class's probability to report "
                   "metrics at. Default: the one maximising balanced accuracy.")
@_TTA_OPTION
@_CLASS_NAMES_OPTION
@_reports_errors
def evaluate(model_path, data_source, output_dir, overwrite, batch_size, threshold, tta, class_names):
    """Evaluate a saved MODEL (.keras, SavedModel, .tflite, .onnx) on labelled --data."""
    from kerasdl.evaluation.evaluate import evaluate_model_file

    _flags_name_fields({"data.class_names": "--class-names"})
    result = evaluate_model_file(model_path, data_source, output_dir=output_dir, batch_size=batch_size,
                                 threshold=threshold, tta=tta, class_names=_class_names_option(class_names),
                                 overwrite=overwrite)
    metrics, out = result.metrics, result.output_dir  # the data's skipped files: warned as it loads
    click.echo(f"accuracy {metrics['accuracy']:.4f} on {plural(metrics['num_samples'], 'image')}"
               + (f", ROC-AUC {metrics['auc']:.4f}" if metrics.get("auc") is not None else "")
               + (f", equal-error rate {metrics['equal_error_rate']:.4f}"
                  if metrics.get("equal_error_rate") is not None else "")
               + f". Wrote {out / 'metrics.json'}")


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.argument("source", metavar="SRC")
@click.option("--output", type=click.Path(), default="predictions.csv", show_default=True,
              help="CSV file to write.")
@click.option("--format", "csv_format", type=click.Choice(["table", "submission"]), default="table",
              show_default=True,
              help="table: path, predicted class, one probability per class. submission (two "
                   "classes): img_name,y_pred with the probability of the second class.")
@click.option("--batch-size", type=int, default=32, show_default=True, help="Images per batch.")
@_TTA_OPTION
@_reports_errors
def predict(model_path, source, output, csv_format, batch_size, tta):
    """Predict every image in SRC with MODEL.

    SRC is a folder (searched recursively), an image file, or @list.txt: a
    file listing images one a line, relative to the list file's folder.
    --output must lie outside the folders of the images.
    """
    from kerasdl.inference.predict import (
        check_output_file,
        list_image_files,
        load_model_file,
        predict_files,
    )

    files = list_image_files(source)  # cheap checks before loading the model
    check_output_file(output, images=[source])
    model = load_model_file(model_path)
    with quietly(_console()):
        counts = predict_files(model, files, output, batch_size=batch_size, csv_format=csv_format, tta=tta)
    click.echo(f"Predicted {plural(counts['predicted'], 'image')} ({counts['skipped']} skipped). Wrote {output}")


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.argument("images", metavar="IMAGE...", nargs=-1, required=True)
@click.option("--output", "output_dir", type=click.Path(), default=None,
              help="Folder for the pictures: new, empty or an earlier explain's. Default: explain/ "
                   "beside MODEL.")
@click.option("--class", "class_name", default=None, metavar="NAME",
              help="Explain this class instead of each image's predicted class.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Images per batch.")
@_reports_errors
def explain(model_path, images, output_dir, class_name, batch_size):
    """Show where MODEL looks in each IMAGE (Grad-CAM): one PNG per image.

    MODEL is a .keras file or a run folder; IMAGE a file, a folder or
    @list.txt (a file listing images one a line, relative to the list
    file's folder). Each <image>_gradcam.png shows the image, its heatmap,
    and the predicted class with its probability. --output must lie
    outside the folders of the images.
    """
    from kerasdl.evaluation.explain import explain_images

    with quietly(_console()):
        result = explain_images(model_path, list(images), output_dir=output_dir, class_name=class_name,
                                batch_size=batch_size)
    for item in result.skipped:
        click.echo(f"Skipping {item.path}: {item.reason}", err=True)
    for item in result.explanations:
        heatmap = "" if item.heatmap_class == item.class_name else f", heatmap of {item.heatmap_class}"
        click.echo(f"{item.image}: {item.class_name} {item.probability:.4f}{heatmap} -> {item.picture}")
    count = len(result.written)
    click.echo(f"Wrote {plural(count, 'Grad-CAM picture')} (feature map "
               f"{result.layer}) to {result.output_dir} in {result.seconds:.1f} s "
               f"({result.seconds / max(count, 1):.2f} s an image).")


@main.command()
@click.argument("source", metavar="RUN_DIR|MODEL", type=click.Path())
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="TCP port (0: any free one).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The default is reachable from this machine only.")
@click.option("--max-upload-mb", type=click.FloatRange(min=0.01), default=10.0, show_default=True,
              help="Largest image accepted, in MB.")
@_reports_errors
def demo(source, port, host, max_upload_mb):
    """Serve a web page that classifies the images you drop on it.

    With a run folder it runs export/model.tflite (what ships) when there is
    one, else model.keras; a model file (.keras, .tflite, .onnx, SavedModel)
    runs as it is. Probabilities are those `kerasdl predict` gives. Ctrl-C stops.
    """
    from kerasdl.app.demo import LOOPBACK_HOSTS, DemoOptions, make_demo_server

    options = DemoOptions(host=host, port=port, max_upload_bytes=int(max_upload_mb * 1e6),
                          limit_setting="--max-upload-mb")
    if host not in LOOPBACK_HOSTS:
        click.echo(f"Warning: listening on {host}: other machines that reach it can use the demo.", err=True)
    server = make_demo_server(source, options)
    info = server.app.info()
    click.echo(f"Demo of {info['model']} ({info['kind']}, {len(info['class_names'])} classes: "
               f"{', '.join(info['class_names'])})")
    click.echo(f"Open {server.url} in a browser; Ctrl-C stops.", nl=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("Stopped.")
    finally:
        server.server_close()


@main.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path())
@_reports_errors
def report(run_dir):
    """Rebuild RUN_DIR/report.md from the run's files."""
    from kerasdl.evaluation.report import write_report

    click.echo(f"Wrote {write_report(run_dir)}")


@main.command()
@click.argument("run_dirs", metavar="RUN_DIR...", nargs=-1, required=True, type=click.Path())
@_reports_errors
def compare(run_dirs):
    """Print the settings and metrics of several runs side by side."""
    from kerasdl.evaluation.report import format_comparison

    click.echo(format_comparison(list(run_dirs)))


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.option("--format", "export_format", type=click.Choice(["saved_model", "tflite", "onnx"]),
              default="tflite", show_default=True, help="What to write.")
@click.option("--quantize", default="none", show_default=True,
              help="TFLite quantization: none, float16, dynamic, int8 (every op int8, else the fewest "
                   "ops kept in float that pass the parity check) or int8-full (every op int8 or refuse).")
@click.option("--data", "data_source", default=None,
              help="Labelled images the model was trained on: int8 calibration (training split) and "
                   "the parity check (validation split). Default: the source of MODEL's run.")
@click.option("--output", type=click.Path(), required=True,
              help="File (.tflite, .onnx) or folder (saved_model) to write; its folder must exist, "
                   "outside the data's folders.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --output.")
@_export_check_options
@_reports_errors
def export(model_path, export_format, quantize, data_source, output, overwrite, representative_size,
           int8_bias_correction, int8_io, max_accuracy_drop):
    """Export MODEL (a .keras file or a run folder) and check it against the Keras model.

    Writes --output with labels.txt, metadata.json and parity.json beside it.
    Exits 1, keeping the file as *.rejected.*, when its validation accuracy
    drops more than --max-accuracy-drop.
    """
    from kerasdl.export.exporter import ExportOptions, export_to_path

    if quantize != "none" and export_format != "tflite":
        raise click.BadParameter(f"quantization applies to --format tflite, not {export_format}.",
                                 param_hint="--quantize")
    options = ExportOptions(representative_size=representative_size, int8_io=int8_io,
                            max_accuracy_drop=max_accuracy_drop,
                            int8_bias_correction=int8_bias_correction)
    with quietly(_console()):
        parity = export_to_path(model_path, output, export_format=export_format, quantize=quantize,
                                data_source=data_source, overwrite=overwrite, options=options)
    check = parity[Path(output).name]
    size = "" if export_format == "saved_model" else f" ({Path(output).stat().st_size / 1e6:.2f} MB)"
    if "int8_search" in check:
        from kerasdl.export.int8_search import int8_summary

        size = f" ({Path(output).stat().st_size / 1e6:.2f} MB; {int8_summary(check['int8_search'], check['accuracy_change'])})"
    click.echo(f"Wrote {output}{size}; on {check['num_samples']} validation images: top-1 agreement "
               f"{check['top1_agreement']:.4f}, accuracy {check['accuracy']:.4f} (Keras "
               f"{check['keras_accuracy']:.4f}), max |dp| {check['max_abs_probability_difference']:.4f}.")


@main.group()
def plot():
    """Draw the course's ideas as pictures."""


@plot.command("activations")
@click.option("--output", type=click.Path(dir_okay=False), default="activations.png", show_default=True,
              help="PNG file to write.")
@_reports_errors
def plot_activations_command(output):
    """Plot every activation function with its derivative, in one PNG."""
    from kerasdl.models.activations import plot_activations

    click.echo(f"Wrote {plot_activations(output)}")


@main.group()
def experiment():
    """Run the course's experiments on your own data."""


@experiment.command("transfer-vs-scratch")
@click.option("--data", "data_source", required=True, help="Class-folder tree (optionally train/ val/).")
@click.option("--backbone", required=True, help="Backbone name (see `kerasdl backbones`).")
@click.option("--fractions", default="0.1,0.25,0.5,1.0", show_default=True,
              help="Comma list of fractions of the training images.")
@click.option("--weights", default="imagenet", show_default=True,
              help="Pretrained weights of the transfer arm: imagenet or a local file.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Backbone option, e.g. alpha=0.25 (repeatable).")
@click.option("--image-size", type=int, default=None, help="Square image size. Default: the backbone's.")
@click.option("--epochs", type=click.IntRange(min=1), default=5, show_default=True,
              help="Epochs of each training.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Mini-batch size.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of subsets and weights.")
@click.option("--output", "output_dir", type=click.Path(file_okay=False), required=True,
              help="Folder for transfer_vs_scratch.csv, .md and .png.")
@_reports_errors
def transfer_vs_scratch_command(data_source, backbone, fractions, weights, options, image_size, epochs,
                                batch_size, seed, output_dir):
    """Train one network from pretrained and from random weights on growing data."""
    from kerasdl.course.experiment import parse_fractions, transfer_vs_scratch

    backbone_options = _backbone_options(options, param_hint="--option")
    results = transfer_vs_scratch(
        data_source, backbone=backbone, output_dir=output_dir, fractions=parse_fractions(fractions),
        weights=weights, backbone_options=backbone_options, image_size=image_size, epochs=epochs,
        batch_size=batch_size, seed=seed,
    )
    click.echo(Path(output_dir, "transfer_vs_scratch.md").read_text())
    click.echo(f"Trained {len(results)} networks. Wrote {output_dir}/transfer_vs_scratch.csv, .md, .png")


@main.group()
def weights():
    """Pretrained weights: list, fetch, import and verify Keras's cache."""


def _backbone_options(assignments, *, param_hint: str = "--set") -> dict:
    """Parses repeated KEY=VALUE backbone options (`alpha=0.35`)."""
    from kerasdl.recipe import parse_value

    options = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {assignment!r}.", param_hint=param_hint)
        options[key.strip().removeprefix("backbone.")] = parse_value(value.strip())
    return options


_WEIGHT_SET_OPTION = click.option(
    "--set", "assignments", multiple=True, metavar="KEY=VALUE",
    help="Backbone option, e.g. alpha=0.25 (repeatable).")
_WEIGHT_SIZE_OPTION = click.option(
    "--image-size", type=int, default=None,
    help="Input size; MobileNet and MobileNetV2 have one file per resolution.")


@weights.command("list")
@click.argument("backbone_names", metavar="[BACKBONE]...", nargs=-1)
@click.option("--all-sizes", is_flag=True, help="Also list MobileNet files for smaller resolutions.")
@_reports_errors
def weights_list(backbone_names, all_sizes):
    """List each backbone's ImageNet file: cached or not, size, hash, origin."""
    from kerasdl._util.paths import file_hash, keras_cache_dir
    from kerasdl.backbones.weights import weight_files

    click.echo(f"Keras cache: {keras_cache_dir()}")
    click.echo(f"{'backbone':<46} {'cached':<6} {'MB':>6}  file")
    for entry in weight_files(list(backbone_names) or None, all_sizes=all_sizes):
        cached = entry.path.is_file()
        size = f"{entry.path.stat().st_size / 1e6:.1f}" if cached else "-"
        click.echo(f"{entry.describe():<46} {'yes' if cached else 'no':<6} {size:>6}  {entry.file_name}")
        hashed = f"  {entry.hash_algorithm} {entry.file_hash}" if entry.file_hash else ""
        click.echo(f"{'':<4}from {entry.origin}{hashed}")
        if cached:
            click.echo(f"{'':<4}cached file sha256 {file_hash(entry.path)}")


@weights.command("fetch")
@click.argument("backbone_names", metavar="BACKBONE...", nargs=-1, required=True)
@_WEIGHT_SET_OPTION
@_WEIGHT_SIZE_OPTION
@_reports_errors
def weights_fetch(backbone_names, assignments, image_size):
    """Download BACKBONE's ImageNet file into Keras's cache (needs internet)."""
    from kerasdl.backbones.weights import fetch_weights

    for name in backbone_names:
        path = fetch_weights(name, options=_backbone_options(assignments), image_size=image_size)
        click.echo(f"{name}: {path}")


@weights.command("import")
@click.argument("backbone")
@click.argument("file", type=click.Path())
@_WEIGHT_SET_OPTION
@_WEIGHT_SIZE_OPTION
@_reports_errors
def weights_import(backbone, file, assignments, image_size):
    """Check that FILE loads into BACKBONE, then put it in Keras's cache."""
    from kerasdl.backbones.weights import import_weights

    path = import_weights(backbone, file, options=_backbone_options(assignments), image_size=image_size)
    click.echo(f"Imported {file} as {path}")


@weights.command("verify")
@_reports_errors
def weights_verify():
    """Check that every cached backbone file loads (and matches its hash)."""
    from kerasdl._util.paths import keras_cache_dir
    from kerasdl.backbones.weights import verify_cache
    from kerasdl.errors import WeightsError

    checks = verify_cache()
    for check in checks:
        status = {True: "ok", False: "FAILED", None: "skipped"}[check.ok]
        click.echo(f"{status:<7} {check.path.name}: {check.message}")
    failed = sum(check.ok is False for check in checks)
    if failed:
        raise WeightsError(
            f"Expected every cached weights file to load. Received: {failed} that do not (above). "
            "Fetch or import them again."
        )
    click.echo(f"{sum(check.ok is True for check in checks)} files verified in {keras_cache_dir()}.")


if __name__ == "__main__":
    main()

