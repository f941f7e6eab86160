"""`kerasdl weights list|fetch|import|verify`: the pretrained backbone files in Keras's cache.

`kerasdl.app` modules are imported inside the commands, so `kerasdl --help`
loads no Keras.
"""


from __future__ import annotations

import click

from kerasdl._util.paths import keras_cache_dir
from kerasdl.cli.flags import reports_errors
from kerasdl.cli.group import main
from kerasdl.cli.options import backbone_options
from kerasdl.errors import WeightsError


@main.group()
def weights():
    """Pretrained weights: list, fetch, import and verify Keras's cache."""


_WEIGHT_SET_OPTION = click.option(
    "--set", "assignments", multiple=True, metavar="KEY=VALUE",
    help="Backbone option, e.g. alpha=0.25 (repeatable).")
_WEIGHT_SIZE_OPTION = click.option(
    "--image-size", type=int, default=None,
    help="Input size; MobileNet and MobileNetV2 have one file per resolution.")


@weights.command("list")
@click.argument("backbone_names", metavar="[BACKBONE]...", nargs=-1)
@click.option("--all-sizes", is_flag=True, help="Also list MobileNet files for smaller resolutions.")
@reports_errors
def weights_list(backbone_names, all_sizes):
    """List each backbone's ImageNet file: cached or not, size, hash, origin."""
    from kerasdl.app.weights_cache import list_weights

    click.echo(f"Keras cache: {keras_cache_dir()}")
    click.echo(f"{'backbone':<46} {'cached':<6} {'MB':>6}  file")
    for listed in list_weights(list(backbone_names) or None, all_sizes=all_sizes):
        entry, cached = listed.entry, listed.megabytes is not None
        size = f"{listed.megabytes:.1f}" if cached else "-"
        click.echo(f"{entry.describe():<46} {'yes' if cached else 'no':<6} {size:>6}  {entry.file_name}")
        hashed = f"  {entry.hash_algorithm} {entry.file_hash}" if entry.file_hash else ""
        click.echo(f"{'':<4}from {entry.origin}{hashed}")
        if cached:
            click.echo(f"{'':<4}cached file sha256 {listed.sha256}")


@weights.command("fetch")
@click.argument("backbone_names", metavar="BACKBONE...", nargs=-1, required=True)
@_WEIGHT_SET_OPTION
@_WEIGHT_SIZE_OPTION
@reports_errors
def weights_fetch(backbone_names, assignments, image_size):
    """Download BACKBONE's ImageNet file into Keras's cache (needs internet)."""
    from kerasdl.app.weights_cache import fetch_backbone_weights

    for name in backbone_names:
        path = fetch_backbone_weights(name, options=backbone_options(assignments), image_size=image_size)
        click.echo(f"{name}: {path}")


@weights.command("import")
@click.argument("backbone")
@click.argument("file", type=click.Path())
@_WEIGHT_SET_OPTION
@_WEIGHT_SIZE_OPTION
@reports_errors
def weights_import(backbone, file, assignments, image_size):
    """Check that FILE loads into BACKBONE, then put it in Keras's cache."""
    from kerasdl.app.weights_cache import import_backbone_weights

    path = import_backbone_weights(backbone, file, options=backbone_options(assignments), image_size=image_size)
    click.echo(f"Imported {file} as {path}")


@weights.command("verify")
@reports_errors
def weights_verify():
    """Check that every cached backbone file loads (and matches its hash)."""
    from kerasdl.app.weights_cache import verify_weights_cache

    checks = verify_weights_cache()
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
