"""`kerasdl export`: one model to one file, checked against the Keras model.

`kerasdl.app` modules are imported inside the command, so `kerasdl --help`
loads no Keras.
"""


from __future__ import annotations

import click

from kerasdl.cli.console import quietly
from kerasdl.cli.flags import reports_errors
from kerasdl.cli.group import console, main
from kerasdl.cli.options import export_check_options


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
@export_check_options
@reports_errors
def export(model_path, export_format, quantize, data_source, output, overwrite, representative_size,
           int8_bias_correction, int8_io, max_accuracy_drop):
    """Export MODEL (a .keras file or a run folder) and check it against the Keras model.

    Writes --output with labels.txt, metadata.json and parity.json beside it.
    Exits 1, keeping the file as *.rejected.*, when its validation accuracy
    drops more than --max-accuracy-drop.
    """
    from kerasdl.app.export_file import export_model_file

    if quantize != "none" and export_format != "tflite":
        raise click.BadParameter(f"quantization applies to --format tflite, not {export_format}.",
                                 param_hint="--quantize")
    with quietly(console()):
        exported = export_model_file(
            model_path, output, export_format=export_format, quantize=quantize, data_source=data_source,
            overwrite=overwrite, representative_size=representative_size,
            int8_bias_correction=int8_bias_correction, int8_io=int8_io, max_accuracy_drop=max_accuracy_drop)
    check = exported.check
    size = "" if exported.megabytes is None else f" ({exported.megabytes:.2f} MB)"
    if exported.int8_search is not None:
        size = f" ({exported.megabytes:.2f} MB; {exported.int8_search})"
    click.echo(f"Wrote {output}{size}; on {check['num_samples']} validation images: top-1 agreement "
               f"{check['top1_agreement']:.4f}, accuracy {check['accuracy']:.4f} (Keras "
               f"{check['keras_accuracy']:.4f}), max |dp| {check['max_abs_probability_difference']:.4f}.")
