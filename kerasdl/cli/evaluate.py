"""`kerasdl evaluate`, `explain`, `report` and `compare`: how good a model is, and why.

`kerasdl.app` modules are imported inside the commands, so `kerasdl --help`
loads no Keras.
"""


from __future__ import annotations

import click

from kerasdl._util.console import plural
from kerasdl.cli.console import quietly
from kerasdl.cli.flags import reports_errors
from kerasdl.cli.group import console, main
from kerasdl.cli.options import CLASS_NAMES_OPTION, TTA_OPTION, class_names_option


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
@TTA_OPTION
@CLASS_NAMES_OPTION
@reports_errors
def evaluate(model_path, data_source, output_dir, overwrite, batch_size, threshold, tta, class_names):
    """Evaluate a saved MODEL (.keras, SavedModel, .tflite, .onnx) on labelled --data."""
    from kerasdl.app.model_files import evaluate_model

    result = evaluate_model(model_path, data_source, output_dir=output_dir, batch_size=batch_size,
                            threshold=threshold, tta=tta, class_names=class_names_option(class_names),
                            overwrite=overwrite)
    metrics, out = result.metrics, result.output_dir  # the data's skipped files: warned as it loads
    click.echo(f"accuracy {metrics['accuracy']:.4f} on {plural(metrics['num_samples'], 'image')}"
               + (f", ROC-AUC {metrics['auc']:.4f}" if metrics.get("auc") is not None else "")
               + (f", equal-error rate {metrics['equal_error_rate']:.4f}"
                  if metrics.get("equal_error_rate") is not None else "")
               + f". Wrote {out / 'metrics.json'}")


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
@reports_errors
def explain(model_path, images, output_dir, class_name, batch_size):
    """Show where MODEL looks in each IMAGE (Grad-CAM): one PNG per image.

    MODEL is a .keras file or a run folder; IMAGE a file, a folder or
    @list.txt (a file listing images one a line, relative to the list
    file's folder). Each <image>_gradcam.png shows the image, its heatmap,
    and the predicted class with its probability. --output must lie
    outside the folders of the images.
    """
    from kerasdl.app.model_files import explain_model

    with quietly(console()):
        result = explain_model(model_path, list(images), output_dir=output_dir, class_name=class_name,
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
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path())
@reports_errors
def report(run_dir):
    """Rebuild RUN_DIR/report.md from the run's files."""
    from kerasdl.app.run_reports import rebuild_report

    click.echo(f"Wrote {rebuild_report(run_dir)}")


@main.command()
@click.argument("run_dirs", metavar="RUN_DIR...", nargs=-1, required=True, type=click.Path())
@reports_errors
def compare(run_dirs):
    """Print the settings and metrics of several runs side by side."""
    from kerasdl.app.run_reports import runs_side_by_side

    click.echo(runs_side_by_side(list(run_dirs)))
