"""The `--set KEY=VALUE` parser: dotted assignments applied to a copy of a recipe."""

from __future__ import annotations

import copy
import dataclasses
import json
import types
import typing
from typing import Any

from kerasdl.errors import RecipeError
from kerasdl.recipe.schema import BackboneConfig, Phase, Recipe


def parse_value(text: str) -> Any:
    """Parses the value of an override (`apply_overrides`): JSON where it parses (numbers, lists, true,
    null), `none` as `None`, otherwise the text itself."""
    if text.lower() in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(recipe: Recipe, assignments: list[str]) -> Recipe:
    """Returns a copy of `recipe` with `KEY=VALUE` assignments applied.

    Keys are dotted paths: `head.dropout=0.3`, `batch_size=16`,
    `phases.fine_tune.learning_rate=1e-5` (a phase by name or index), and
    `backbone.<option>=...` for backbone options such as `backbone.alpha`.
    `augment=none` and `phases.head.augment=none` name the augmentation
    preset `none`; `phases.head.augment=null` makes a phase use the recipe's
    `augment` again.

    Args:
        recipe: The recipe to start from (not modified).
        assignments: Strings of the form `KEY=VALUE`.

    Returns:
        The modified copy.

    Raises:
        RecipeError: for a malformed assignment or an unknown key.

    Example:
    ```python
    recipe = apply_overrides(recipe, ["backbone.alpha=0.35", "head.dropout=0.3"])
    ```
    """
    recipe = copy.deepcopy(recipe)
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep or not key.strip():
            raise RecipeError(
                f"Expected assignments of the form KEY=VALUE, e.g. head.dropout=0.3. Received: {assignment!r}.",
                argument="assignments",
            )
        path, value = key.strip().split("."), parse_value(text.strip())
        if path[-1] == "augment" and text.strip().lower() == "none":
            value = "none"  # the preset named none, not null (null: the recipe's own)
        _assign(recipe, path, value, key.strip())
    return recipe


def _assign(target: Any, path: list[str], value: Any, full_key: str) -> None:
    head, rest = path[0], path[1:]
    if isinstance(target, list) and not all(isinstance(item, Phase) for item in target):
        whole = full_key[: len(full_key) - len(".".join(path)) - 1]  # a list of values, e.g. export
        raise RecipeError(f"Expected the whole list, e.g. {whole}={','.join(map(str, target)) or 'a,b'}. "
                          f"Received: {full_key!r}. Set {whole} to the comma list you want.")
    if isinstance(target, list):
        target = _find_phase(target, head, full_key)
        if not rest:
            raise RecipeError(f"Expected a field after {full_key!r}, e.g. {full_key}.epochs=3.")
        _assign(target, rest, value, full_key)
        return
    if isinstance(target, dict):
        if rest:
            raise RecipeError(f"Expected {full_key!r} to end at {head!r}.")
        target[head] = value
        return
    fields = {field.name: field for field in dataclasses.fields(target)}
    if head not in fields:
        if isinstance(target, BackboneConfig) and not rest:
            target.options[head] = value  # validated against the backbone when it is built
            return
        # the keys as the user types them (`data.class_names`), never the Python class (DataConfig)
        prefix = full_key[: len(full_key) - len(".".join(path))]
        raise RecipeError(
            f"Expected a recipe key from: {', '.join(prefix + name for name in fields)}. "
            f"Received: {full_key!r}. Run `kerasdl show RECIPE` to see every key."
        )
    if rest:
        _assign(getattr(target, head), rest, value, full_key)
        return
    section = getattr(target, head)
    if dataclasses.is_dataclass(section) and not isinstance(value, dict):
        # a section given a plain value sets its first field: export=tflite,onnx -> export.formats
        _assign(section, [dataclasses.fields(section)[0].name], value, full_key)
        return
    hint = typing.get_type_hints(type(target))[head]
    setattr(target, head, _coerce(value, hint, full_key))


def _find_phase(phases: list[Phase], key: str, full_key: str) -> Phase:
    if key.isdigit() and int(key) < len(phases):
        return phases[int(key)]
    for phase in phases:
        if phase.name == key:
            return phase
    names = ", ".join(phase.name for phase in phases)
    raise RecipeError(
        f"Expected a phase name or index from: {names}. Received: {key!r} in {full_key!r}."
    )


def _coerce(value: Any, hint: Any, full_key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (list, dict):
        allowed: tuple = (origin,)
    elif origin in (typing.Union, types.UnionType):
        allowed = tuple(typing.get_origin(arg) or arg for arg in typing.get_args(hint))  # list[str] -> list
    else:
        allowed = (hint,)
    if value is None and type(None) in allowed:
        return None
    for kind in (bool, int, float, str, list, dict):
        if kind not in allowed:
            continue
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind is str and isinstance(value, (int, float)):
            return str(value)
        if kind is list and isinstance(value, str):
            return [item for item in value.split(",") if item]
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            return value
    raise RecipeError(f"Expected {full_key} to be of type {hint}. Received: {value!r}.")

