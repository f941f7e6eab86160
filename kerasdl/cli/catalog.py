"""`kerasdl list`, `show` and `backbones`: what recipes and backbones there are.

`kerasdl.app` modules are imported inside the commands, so `kerasdl --help`
loads no Keras.
"""


from __future__ import annotations

import json

import click

from kerasdl.cli.flags import reports_errors
from kerasdl.cli.group import main
from kerasdl.recipe import apply_overrides, get_recipe, list_recipes


@main.command("list")
@reports_errors
def list_command():
    """List the installed recipes."""
    from kerasdl.app.catalog import recipe_image_size

    for recipe in list_recipes():
        size = recipe_image_size(recipe)
        size = "auto" if size == "auto" else f"{size}px"
        click.echo(f"{recipe.name:<28} {recipe.backbone.name:<22} {size:>6}  {recipe.description}")


@main.command()
@click.argument("recipe")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe field, e.g. head.dropout=0.3 (repeatable).")
@click.option("--summary/--no-summary", default=None,
              help="Also print the network's layer table and parameter count "
                   "(default: on for recipes that train from scratch).")
@reports_errors
def show(recipe, assignments, summary):
    """Show RECIPE (a name or a .py file) resolved, as JSON, and describe its network."""
    from kerasdl.app.describe import describe_recipe

    resolved = apply_overrides(get_recipe(recipe), list(assignments))
    click.echo(json.dumps(resolved.to_dict(), indent=2))
    description = describe_recipe(resolved, layers=summary)
    if description:
        click.echo("\n" + description)


@main.command()
@reports_errors
def backbones():
    """List the backbones with their default sizes and options."""
    from kerasdl.app.catalog import backbone_specs

    click.echo(f"{'name':<18} {'size':>4}  {'preprocessing':<13} options")
    for spec in backbone_specs():
        click.echo(f"{spec.name:<18} {spec.default_size:>4}  {spec.preprocessing:<13} "
                   f"{', '.join(spec.options) or '-'}")
