"""Options that several commands share: class names, test-time augmentation, export checks,
backbone options."""


from __future__ import annotations

import click

from kerasdl.recipe import TTA_MODES, parse_value


def class_names_option(value: str | None) -> list[str] | None:
    """`--class-names real,ai` as a list (spaces around names dropped)."""
    return None if value is None else [name.strip() for name in value.split(",")]


CLASS_NAMES_OPTION = click.option(
    "--class-names", default=None, metavar="NAME,NAME,...",
    help="Names for the data's classes in label order, e.g. real,ai for labels 0 and 1 of a label "
         "file: metrics, report, plots, labels.txt, metadata, the demo and predict show them "
         "(recipe field data.class_names).")

TTA_OPTION = click.option(
    "--tta", type=click.Choice(TTA_MODES), default="none", show_default=True,
    help="Test-time augmentation: flip averages each image's and its mirror image's probabilities.")


def export_check_options(command):
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


def backbone_options(assignments, *, param_hint: str = "--set") -> dict:
    """Parses repeated KEY=VALUE backbone options (`alpha=0.35`)."""
    options = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {assignment!r}.", param_hint=param_hint)
        options[key.strip().removeprefix("backbone.")] = parse_value(value.strip())
    return options
