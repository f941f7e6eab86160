"""`kerasdl plot` and `kerasdl experiment`: the course's ideas as pictures and experiments.

`kerasdl.course` modules are imported inside the commands, so `kerasdl
--help` loads no Keras.
"""


from __future__ import annotations

from pathlib import Path

import click

from kerasdl.cli.flags import reports_errors
from kerasdl.cli.group import main
from kerasdl.cli.options import backbone_options


@main.group()
def plot():
    """Draw the course's ideas as pictures."""


@plot.command("activations")
@click.option("--output", type=click.Path(dir_okay=False), default="activations.png", show_default=True,
              help="PNG file to write.")
@reports_errors
def plot_activations_command(output):
    """Plot every activation function with its derivative, in one PNG."""
    from kerasdl.course.pictures import draw_activations

    click.echo(f"Wrote {draw_activations(output)}")


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
@reports_errors
def transfer_vs_scratch_command(data_source, backbone, fractions, weights, options, image_size, epochs,
                                batch_size, seed, output_dir):
    """Train one network from pretrained and from random weights on growing data."""
    from kerasdl.course.experiment import parse_fractions, transfer_vs_scratch

    options = backbone_options(options, param_hint="--option")
    results = transfer_vs_scratch(
        data_source, backbone=backbone, output_dir=output_dir, fractions=parse_fractions(fractions),
        weights=weights, backbone_options=options, image_size=image_size, epochs=epochs,
        batch_size=batch_size, seed=seed,
    )
    click.echo(Path(output_dir, "transfer_vs_scratch.md").read_text())
    click.echo(f"Trained {len(results)} networks. Wrote {output_dir}/transfer_vs_scratch.csv, .md, .png")
