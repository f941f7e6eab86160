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
        click.option("--jit-compile", is_flag=True, help="Compile the train step with XLA."),
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
              help="Comma list: saved_model, tflite, tflite:float16|dynamic|int8, or none.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe field, e.g. backbone.alpha=0.35 (repeatable).")
@click.option("--overwrite", is_flag=True, help="Replace a run already in --output.")
@click.option("--quiet", is_flag=True, help="No per-step progress bar (one line per epoch).")
@_training_options
@_reports_errors
def run(recipe, data_source, weights, epochs, fine_tune_epochs, image_size, batch_size, seed,
        augment, output, export_list, assignments, overwrite, quiet, resume, no_feature_cache,
        deterministic, mixed_precision, jit_compile, steps_per_execution, distribute):
    """Train RECIPE on --data, evaluate it, export it, and write a run folder."""
    from kerasdl.export import parse_export_list
    from kerasdl.recipe import apply_overrides, get_recipe
    from kerasdl.run import run_recipe
    from kerasdl.runtime import RuntimeOptions
    from kerasdl.training import TrainOptions

    if resume and output and Path(output).resolve() != Path(resume).resolve():
        raise click.BadParameter("give the run folder once, as --resume DIR.", param_hint="--output")
    if resume and overwrite:
        raise click.BadParameter("--resume continues a run; --overwrite replaces it: pick one.",
                                 param_hint="--overwrite")

    resolved = apply_overrides(get_recipe(recipe), list(assignments))
    _apply_run_options(resolved, weights=weights, epochs=epochs, fine_tune_epochs=fine_tune_epochs,
                       image_size=image_size, batch_size=batch_size, seed=seed, augment=augment)
    formats = parse_export_list(export_list) if export_list is not None else None
    result = run_recipe(
        resolved, data_source, output_dir=resume or output, export=formats, overwrite=overwrite,
        command="kerasdl " + " ".join(sys.argv[1:]), verbose=2 if quiet else "auto",
        resume=bool(resume),
        training_options=TrainOptions(
            feature_cache=not no_feature_cache, jit_compile=True if jit_compile else "auto",
            steps_per_execution=steps_per_execution,
        ),
        runtime=RuntimeOptions(
            deterministic=deterministic, mixed_precision=mixed_precision, distribute=distribute,
        ),
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
@click.option("--format", "export_format", type=click.Choice(["saved_model", "tflite"]),
              default="tflite", show_default=True, help="What to write.")
@click.option("--quantize", type=click.Choice(["none", "float16", "dynamic", "int8"]),
              default="none", show_default=True, help="TFLite quantization.")
@click.option("--data", "data_source", default=None,
              help="Labelled images for int8 calibration and the parity check.")
@click.option("--output", type=click.Path(), required=True, help="File or folder to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --output.")
@_reports_errors
def export(model_path, export_format, quantize, data_source, output, overwrite):
    """Export a saved .keras MODEL as a SavedModel or a TFLite file."""
    from kerasdl.data import list_class_folder, make_dataset, sample_data_dir, scan_images
    from kerasdl.errors import ExportError, ModelFileError
    from kerasdl.evaluation import write_json
    from kerasdl.export import TFLiteModel, check_parity, export_saved_model, export_tflite
    from kerasdl.predict import load_model_file

    output = Path(output)
    if output.exists() and not overwrite:
        raise ExportError(f"Expected a new output path. Received: {output}, which exists. "
                          "Pass --overwrite to replace it.")
    if not output.parent.is_dir():
        raise ExportError(f"Expected an existing folder for --output. Received: {output.parent}, "
                          "which does not exist. Create it first.")
    model = load_model_file(model_path)
    if model.keras_model is None:
        raise ModelFileError(f"Expected a .keras model to export. Received: {model_path} ({model.kind}).")
    if export_format == "saved_model":
        export_saved_model(model.keras_model, output)
        click.echo(f"Wrote {output}")
        return
    dataset = None
    if data_source:
        root = sample_data_dir() if data_source == "sample" else Path(data_source)
        class_names, listed = list_class_folder(root)
        entries = [(p, class_names.index(c)) for split in listed.values() for p, c in split]
        files, _ = scan_images(entries)
        if not len(files):
            raise ExportError(f"Expected readable images in {root} for --data. Received: none.")
        dataset = list(make_dataset(files.subset(range(min(len(files), 300))),
                                    image_size=model.image_size, batch_size=32, cache=False))
    elif quantize == "int8":
        raise ExportError("Expected --data with training images for int8 calibration. Received: none.")
    export_tflite(model.keras_model, output, quantize=quantize,
                  representative_images=[x for x, _ in dataset] if dataset else None)
    message = f"Wrote {output} ({output.stat().st_size / 1e6:.2f} MB)"
    if dataset:
        parity = check_parity(model.predict_batch, TFLiteModel(output).predict_batch, dataset)
        write_json(parity, output.with_suffix(".parity.json"))
        message += (f"; top-1 agreement with Keras {parity['top1_agreement']:.4f}, accuracy change "
                    f"{parity['accuracy_change']:+.4f}")
    click.echo(message)


if __name__ == "__main__":
    main()
