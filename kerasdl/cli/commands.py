"""`kerasdl run` and `kerasdl lr-find`: train a recipe, or find its learning rate.

The other commands live in a module per group (catalog, evaluate, predict,
export, weights, course), all registered on `kerasdl.cli.group.main`.
"""


from __future__ import annotations

from pathlib import Path

import click

from kerasdl._util.console import plural
from kerasdl.cli.console import format_size, quietly
from kerasdl.cli.flags import name_fields_as_flags, reports_errors, reproducing_command
from kerasdl.cli.group import console, main
from kerasdl.cli.options import CLASS_NAMES_OPTION, class_names_option, export_check_options
from kerasdl.recipe import (
    AUGMENT_PRESETS,
    MONITORS,
    TRANSFER_AUGMENT,
    TRANSFER_HEAD_AUGMENT,
    TTA_MODES,
)


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
@CLASS_NAMES_OPTION
@export_check_options
@_training_options
@reports_errors
def run(recipe, data_source, weights, epochs, fine_tune_epochs, image_size, batch_size, seed,
        augment, class_weight, output_dir, export_list, assignments, overwrite, quiet, tensorboard,
        monitor, tta, time_budget, folds, learning_rate, class_names, representative_size,
        int8_bias_correction, int8_io, max_accuracy_drop, resume, no_feature_cache, deterministic, mixed_precision,
        jit_compile, steps_per_execution, distribute):
    """Train RECIPE on --data, evaluate it, export it, and write a run folder."""
    from kerasdl.app.options import run_options_from_flags
    from kerasdl.app.run import run_recipe
    from kerasdl.recipe import apply_overrides, get_recipe, validate_recipe, with_augmentation

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
    console_options = console()
    # the export list is parsed here, so a bad one is refused before a bad recipe value
    options = run_options_from_flags(
        seed=resolved.seed, export=export_list, tflite_quantize=resolved.export.quantize,
        representative_size=representative_size, int8_io=int8_io, max_accuracy_drop=max_accuracy_drop,
        int8_bias_correction=int8_bias_correction, feature_cache=not no_feature_cache,
        jit_compile=jit_compile, steps_per_execution=steps_per_execution, tensorboard=tensorboard,
        deterministic=deterministic, mixed_precision=mixed_precision, distribute=distribute,
        output_dir=resume or output_dir, overwrite=overwrite, resume=bool(resume),
        command=reproducing_command(click.get_current_context()),
        verbose=0 if console_options and console_options.quiet else 2 if quiet else "auto",
        tta=tta, lr_auto=lr_auto, time_budget=time_budget,
        fixed_epochs=_epochs_set(resolved, assignments, epochs=epochs, fine_tune_epochs=fine_tune_epochs),
    )
    validate_recipe(resolved)  # a bad value is the only line, before any status line
    with quietly(console_options):
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
        recipe.data.class_names = class_names_option(class_names)
        fields["data.class_names"] = "--class-names"
    name_fields_as_flags(fields)
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
@reports_errors
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


if __name__ == "__main__":
    main()
