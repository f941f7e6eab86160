"""The `kerasdl` command: a thin Click layer over the Python API."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import click

from kerasdl.errors import KerasdlError


def _reports_errors(command):
    """Turns a KerasdlError into exit status 1 with its one-line message."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KerasdlError as error:
            raise click.ClickException(str(error)) from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kerasdl")
def main():
    """Train, evaluate and export image classifiers by transfer learning."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@main.command("list")
@_reports_errors
def list_command():
    """List the installed recipes."""
    from kerasdl.backbones import get_backbone
    from kerasdl.recipe import list_recipes

    for recipe in list_recipes():
        size = recipe.image_size or get_backbone(recipe.backbone.name).default_size
        click.echo(f"{recipe.name:<28} {recipe.backbone.name:<18} {size:>4}px  {recipe.description}")


@main.command()
@click.argument("recipe")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe field, e.g. head.dropout=0.3 (repeatable).")
@_reports_errors
def show(recipe, assignments):
    """Show RECIPE (a name or a .py file) resolved, as JSON."""
    from kerasdl.recipe import apply_overrides, get_recipe

    resolved = apply_overrides(get_recipe(recipe), list(assignments))
    click.echo(json.dumps(resolved.to_dict(), indent=2))


@main.command()
@_reports_errors
def backbones():
    """List the backbones with their default sizes and options."""
    from kerasdl.backbones import BACKBONES

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
    return click.option(
        "--representative-size", type=click.IntRange(min=1), default=300, show_default=True,
        help="Training images sampled to calibrate int8 quantization."
    )(command)


@main.command()
@click.argument("recipe")
@click.option("--data", "data_source", default="sample", show_default=True,
              help="Image source: a class-folder tree, or 'sample' (built-in faces).")
@click.option("--weights", default=None, help="imagenet, none, or a local weights file.")
@click.option("--epochs", type=int, default=None, help="Epochs of the head phase (0 skips it).")
@click.option("--fine-tune-epochs", type=int, default=None,
              help="Epochs of the fine-tuning phase (0 skips it).")
@click.option("--image-size", type=int, default=None, help="Square input size in pixels.")
@click.option("--batch-size", type=int, default=None, help="Mini-batch size.")
@click.option("--seed", type=int, default=None, help="Seed of split, shuffle and weights.")
@click.option("--augment", default=None, help="Augmentation preset: none, light, strong.")
@click.option("--output", type=click.Path(), default=None,
              help="Run folder. Default: runs/<recipe>/<timestamp>/.")
@click.option("--export", "export_list", default=None,
              help="Comma list: saved_model, tflite, tflite:float16|dynamic|int8, onnx, or none.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe field, e.g. backbone.alpha=0.35 (repeatable).")
@click.option("--overwrite", is_flag=True, help="Replace a run already in --output.")
@click.option("--quiet", is_flag=True, help="No per-step progress bar (one line per epoch).")
@_export_check_options
@_reports_errors
def run(recipe, data_source, weights, epochs, fine_tune_epochs, image_size, batch_size, seed,
        augment, output, export_list, assignments, overwrite, quiet, representative_size, int8_io,
        max_accuracy_drop):
    """Train RECIPE on --data, evaluate it, export it, and write a run folder."""
    from kerasdl.export import ExportOptions, parse_export_list
    from kerasdl.recipe import apply_overrides, get_recipe
    from kerasdl.run import run_recipe

    resolved = apply_overrides(get_recipe(recipe), list(assignments))
    _apply_run_options(resolved, weights=weights, epochs=epochs, fine_tune_epochs=fine_tune_epochs,
                       image_size=image_size, batch_size=batch_size, seed=seed, augment=augment)
    formats = parse_export_list(export_list) if export_list is not None else None
    result = run_recipe(
        resolved, data_source, output_dir=output, export=formats, overwrite=overwrite,
        command="kerasdl " + " ".join(sys.argv[1:]), verbose=2 if quiet else "auto",
        export_options=ExportOptions(representative_size=representative_size, int8_io=int8_io,
                                     max_accuracy_drop=max_accuracy_drop, seed=resolved.seed),
    )
    metrics = result.metrics
    line = f"accuracy {metrics['accuracy']:.4f} on {metrics['num_samples']} {metrics['split']} images"
    if metrics.get("auc") is not None:
        line += f", ROC-AUC {metrics['auc']:.4f}"
    click.echo(f"Done: {line}. Run folder: {result.run_dir}")


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
        recipe.image_size = image_size
    if batch_size is not None:
        recipe.batch_size = batch_size
    if seed is not None:
        recipe.seed = seed
    if augment is not None:
        recipe.augment = augment


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.option("--data", "data_source", required=True, help="Labelled image source to evaluate on.")
@click.option("--output", type=click.Path(), default=None,
              help="Folder for metrics.json and pictures. Default: evaluation/ beside MODEL.")
@click.option("--batch-size", type=int, default=32, show_default=True, help="Images per batch.")
@_reports_errors
def evaluate(model_path, data_source, output, batch_size):
    """Evaluate a saved MODEL (.keras, SavedModel, .tflite) on labelled --data."""
    from kerasdl.data import list_class_folder, make_dataset, sample_data_dir, scan_images
    from kerasdl.errors import DataError, ModelFileError
    from kerasdl.evaluation import collect_predictions, write_evaluation
    from kerasdl.predict import load_model_file

    model = load_model_file(model_path)
    root = sample_data_dir() if data_source == "sample" else Path(data_source)
    class_names, listed = list_class_folder(root)
    if class_names != model.class_names:
        raise ModelFileError(
            f"Expected the data's classes to match the model's ({', '.join(model.class_names)}). "
            f"Received: {', '.join(class_names)}. Evaluate on data with the same class folders."
        )
    split = "test" if "test" in listed else ("val" if "val" in listed else "all")
    files, skipped = scan_images([(p, class_names.index(c)) for p, c in listed[split]])
    for item in skipped:
        click.echo(f"Skipping {item.path}: {item.reason}", err=True)
    if not len(files):
        raise DataError(f"Expected readable images in {root}. Received: none.")
    dataset = make_dataset(files, image_size=model.image_size, batch_size=batch_size, cache=False)
    labels, probabilities = collect_predictions(model.predict_batch, dataset)
    out = Path(output) if output else Path(model_path).resolve().parent / "evaluation"
    metrics = write_evaluation(labels, probabilities, class_names, out,
                               extra={"split": split, "skipped_files": len(skipped),
                                      "model": str(model_path)})
    click.echo(f"accuracy {metrics['accuracy']:.4f} on {metrics['num_samples']} images"
               + (f", ROC-AUC {metrics['auc']:.4f}" if metrics.get("auc") is not None else "")
               + f". Wrote {out / 'metrics.json'}")


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.argument("source", metavar="SRC")
@click.option("--output", type=click.Path(), default="predictions.csv", show_default=True,
              help="CSV file to write.")
@click.option("--batch-size", type=int, default=32, show_default=True, help="Images per batch.")
@_reports_errors
def predict(model_path, source, output, batch_size):
    """Predict every image in SRC (folder, file, or @list.txt) with MODEL."""
    from kerasdl.predict import load_model_file, predict_files

    model = load_model_file(model_path)
    counts = predict_files(model, source, output, batch_size=batch_size)
    click.echo(f"Predicted {counts['predicted']} images ({counts['skipped']} skipped). Wrote {output}")


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.option("--format", "export_format", type=click.Choice(["saved_model", "tflite", "onnx"]),
              default="tflite", show_default=True, help="What to write.")
@click.option("--quantize", type=click.Choice(["none", "float16", "dynamic", "int8"]),
              default="none", show_default=True, help="TFLite quantization.")
@click.option("--data", "data_source", default=None,
              help="Labelled images the model was trained on: int8 calibration (training split) and "
                   "the parity check (validation split). Default: the source of MODEL's run.")
@click.option("--output", type=click.Path(), required=True,
              help="File (.tflite, .onnx) or folder (saved_model) to write; its folder must exist.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --output.")
@_export_check_options
@_reports_errors
def export(model_path, export_format, quantize, data_source, output, overwrite, representative_size,
           int8_io, max_accuracy_drop):
    """Export a saved .keras MODEL and check it against the Keras model.

    Writes --output with labels.txt, metadata.json and parity.json beside it.
    Exits 1, keeping the file as *.rejected.*, when its validation accuracy
    drops more than --max-accuracy-drop.
    """
    from kerasdl.export import ExportOptions, export_to_path

    if quantize != "none" and export_format != "tflite":
        raise click.BadParameter(f"quantization applies to --format tflite, not {export_format}.",
                                 param_hint="--quantize")
    options = ExportOptions(representative_size=representative_size, int8_io=int8_io,
                            max_accuracy_drop=max_accuracy_drop)
    parity = export_to_path(model_path, output, export_format=export_format, quantize=quantize,
                            data_source=data_source, overwrite=overwrite, options=options)
    check = parity[Path(output).name]
    size = "" if export_format == "saved_model" else f" ({Path(output).stat().st_size / 1e6:.2f} MB)"
    click.echo(f"Wrote {output}{size}; on {check['num_samples']} validation images: top-1 agreement "
               f"{check['top1_agreement']:.4f}, accuracy {check['accuracy']:.4f} (Keras "
               f"{check['keras_accuracy']:.4f}), max |dp| {check['max_abs_probability_difference']:.4f}.")


if __name__ == "__main__":
    main()
