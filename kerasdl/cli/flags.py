"""Library messages in the command line's words: Python arguments and recipe fields as flags.

Library errors name what a Python caller passes (`Pass overwrite=True`,
`Pick another output_dir.`, `phases.head.learning_rate must be > 0`); on the
command line the same words read `--overwrite`, `--output` and `--lr`. The
mapping is data: a command's options (their Python names and flags), the
table of arguments an option sets under another name (`OPTION_OF_ARGUMENT`),
and the table of recipe fields each command's flags set (`FIELD_FLAGS`).
Every command reports its errors through `reports_errors`, so this module is
the one place that rewrites a message.
"""


from __future__ import annotations

import dataclasses
import functools
import re
import shlex
import typing

import click

from kerasdl.errors import KerasdlError
from kerasdl.recipe import Recipe

# Python arguments a command's option sets under another name: `run --lr auto` is `lr_auto=True`.
OPTION_OF_ARGUMENT = {"lr_auto": "learning_rate"}

# Recipe fields a command's flags set, by command: an error about the field names the flag
# (`evaluate --class-names a` sets `data.class_names`). A command whose fields depend on its
# arguments adds them while it runs (`name_fields_as_flags`).
FIELD_FLAGS: dict[str, dict[str, str]] = {
    "evaluate": {"data.class_names": "--class-names"},
}

# `name=value` in a library message: a quoted value, or one up to a space, comma or bracket
# (a full stop ending the sentence is not part of it).
_ARGUMENT_VALUE = re.compile(r"(?<![\w.])([a-z_][a-z0-9_]*)=('[^']*'|\"[^\"]*\"|[^\s,;()]+?)(?=[\s,;()]|\.?$|\.\s)")

# A Python argument named without a value: `Pick another output_dir.`, `Expected output_dir= to be
# ...`. Only snake_case names (`output_dir`, not `output`) or a name with `=` (`Expected output= ...`):
# plain words stay words.
_BARE_ARGUMENT = re.compile(
    r"(?<![\w.=/-])(?:([a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?:=(?=\s|$))?|([a-z][a-z0-9]*)=(?=\s|$))(?![\w=(/-]|\.\w)")


def reports_errors(command):
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
            flag = flag_of(error.argument) or field_flag
            raise click.ClickException(f"{flag}: {message}" if flag else message) from None

    return wrapper


def name_fields_as_flags(fields: dict[str, str]) -> None:
    """Errors about these recipe fields name the flags that set them (`{field: flag}`).

    For fields that depend on the command's arguments (`run --lr` sets the
    first phase's rate); fixed ones belong in `FIELD_FLAGS`.
    """
    click.get_current_context().meta["kerasdl.fields"] = fields


def _fields_as_flags(message: str) -> tuple[str, str | None]:
    """Says the recipe fields that this command's given flags set as those flags.

    `run --lr -1` sets `phases.head.learning_rate`, whose check says so; on
    the command line the error names `--lr` instead. The fields are the
    command's `FIELD_FLAGS` and those it named while running.

    Returns:
        `(message, the first flag named, or None)`.
    """
    context = click.get_current_context(silent=True)
    fields = ({**FIELD_FLAGS.get(context.command.name, {}), **context.meta.get("kerasdl.fields", {})}
              if context else {})
    named = None
    for field, flag in fields.items():
        pattern = re.compile(rf"(?<![\w.]){re.escape(field)}(?![\w])")
        if pattern.search(message):
            message, named = pattern.sub(flag, message), named or flag
    return message, named


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
    flag_text = functools.partial(_flag_text, context)
    return _BARE_ARGUMENT.sub(_bare_flag, _ARGUMENT_VALUE.sub(flag_text, message))


def _flag_text(context: click.Context, match: re.Match) -> str:
    """`name=value` as the flag that passes it (`overwrite=True` -> `--overwrite`)."""
    name, value = match.group(1), match.group(2).strip("'\"")
    option = _option_of(context, name)
    negated = _option_of(context, f"no_{name}")  # feature_cache=False is --no-feature-cache
    if option is None and negated is not None and negated.is_flag and value in ("True", "False"):
        return negated.opts[0] if value == "False" else f"without {negated.opts[0]}"
    if option is None:
        return match.group(0)
    flag = flag_of(name)
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


def _bare_flag(match: re.Match) -> str:
    """A bare argument name as its flag (`output_dir` -> `--output`); a `--set` key stays."""
    name = match.group(1) or match.group(2)
    if name in recipe_keys():  # a `--set` key, as in `kerasdl show`'s list
        return match.group(0)
    flag = flag_of(name)
    return flag if flag else match.group(0)


@functools.cache
def recipe_keys() -> frozenset[str]:
    """Every field name of a recipe, at any depth (`image_size`, `class_names`)."""
    names, sections = set(), [Recipe]
    while sections:
        for name, hint in typing.get_type_hints(sections.pop()).items():
            names.add(name)
            sections += [kind for kind in typing.get_args(hint) or [hint] if dataclasses.is_dataclass(kind)]
    return frozenset(names)


def _option_of(context: click.Context, argument: str) -> click.Option | None:
    """The command's option whose Python name is the argument's, else the one
    `OPTION_OF_ARGUMENT` names."""
    options = {param.name: param for param in context.command.params if isinstance(param, click.Option)}
    return options.get(argument) or options.get(OPTION_OF_ARGUMENT.get(argument, ""))


def flag_of(argument: str | None) -> str | None:
    """The current command's flag for a Python argument name, if it has one.

    The flag of the option that sets it (`--output` is `output_dir`); a
    command may override it in `context.meta["kerasdl.flags"]` (`run
    --resume DIR` passes `output_dir=DIR`).
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
