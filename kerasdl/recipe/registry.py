"""The recipe registry: built-in recipes, plugins' recipes, and recipe files.

Built-in recipes are the modules of the package `kerasdl.recipes` (the
top-level `recipes/` folder): a module `resnet50_transfer.py` that defines
`recipe()` returning a `Recipe` named `"resnet50-transfer"` is that recipe,
with nothing else to register. Other packages add theirs through the
`kerasdl.recipes` entry-point group (`my-recipe = my_package.recipes:recipe`
in their setup.cfg); where a plugin names a recipe that is built in, the
built-in one wins and a warning says so. A recipe file a user wrote
(`kerasdl run ./my_recipe.py`) defines `recipe()` returning a `Recipe`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib
import importlib.util
import logging
import pkgutil
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from kerasdl.errors import RecipeError
from kerasdl.recipe.schema import Recipe

# Third-party recipes: `name = package.module:recipe` in this entry-point group.
ENTRY_POINT_GROUP = "kerasdl.recipes"
# The built-in recipes, one module each (setup.cfg installs `recipes/` under this name).
BUILTIN_PACKAGE = "kerasdl.recipes"

logger = logging.getLogger(__name__)


def recipe_name(module_name: str) -> str:
    """The name users type for a built-in recipe's module: `resnet50_transfer` -> `resnet50-transfer`."""
    return module_name.rpartition(".")[2].replace("_", "-")


def builtin_recipes() -> dict[str, str]:
    """Returns `{name: module}` for every module of `kerasdl.recipes` (those not starting with `_`).

    The modules are listed, not imported, so listing the names is cheap.
    """
    package = importlib.import_module(BUILTIN_PACKAGE)
    return {recipe_name(info.name): f"{BUILTIN_PACKAGE}.{info.name}"
            for info in pkgutil.iter_modules(package.__path__) if not info.name.startswith("_")}


def plugin_entry_points() -> dict[str, EntryPoint]:
    """Returns `{name: entry point}` of the `kerasdl.recipes` group, built-in modules left out.

    An install made when the built-in recipes were entry points still lists
    them there; they are found as modules, so those entries are skipped.
    """
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)
            if point.module != BUILTIN_PACKAGE and not point.module.startswith(BUILTIN_PACKAGE + ".")}


@dataclasses.dataclass(frozen=True)
class RecipeSource:
    """Where a registered recipe comes from.

    Attributes:
        name: The name users type.
        origin: The built-in module (`kerasdl.recipes.resnet50_transfer`), or
            the plugin's entry point (`my_package.recipes:recipe`).
        builtin: Whether it is a module of `kerasdl.recipes`, whose recipe
            must carry the module's name.
        load: Imports the module and returns its `recipe` factory.
    """

    name: str
    origin: str
    builtin: bool
    load: Callable[[], Any]

    def recipe(self) -> Recipe:
        """Returns a fresh `Recipe` from the source's factory."""
        recipe = call_recipe(self.load(), self.name)
        if self.builtin and recipe.name != self.name:
            raise RecipeError(
                f"Expected {self.origin} to give the recipe named {self.name!r} after its module. "
                f"Received: {recipe.name!r}. Rename the module or the recipe so the two agree.")
        return recipe


def recipe_sources() -> dict[str, RecipeSource]:
    """Returns `{name: source}` for every recipe: the built-in ones, then plugins'.

    A plugin's recipe named like a built-in one is left out with a warning:
    the built-in recipe wins.
    """
    found = {name: RecipeSource(name, module, True, functools.partial(_builtin_factory, module))
             for name, module in builtin_recipes().items()}
    for name, point in plugin_entry_points().items():
        if name in found:
            logger.warning(
                "Expected plugin recipes to have names of their own. Received: %s from %s, the name of a "
                "built-in recipe, which wins. Rename the plugin's entry point.", name, point.value)
            continue
        found[name] = RecipeSource(name, point.value, False, point.load)
    return found


def list_recipes() -> list[Recipe]:
    """Returns every installed recipe, built-in and plugins', sorted by name."""
    found = recipe_sources()
    return [found[name].recipe() for name in sorted(found)]


def get_recipe(name_or_path: str) -> Recipe:
    """Returns a recipe by registered name or from a `.py` file.

    Args:
        name_or_path: A name from `kerasdl list`, or a path to a Python file
            that defines `recipe()` returning a `Recipe`.

    Returns:
        A fresh `Recipe` (safe to modify).

    Raises:
        RecipeError: for an unknown name (listing the valid ones) or a file
            that defines no recipe.

    Example:
    ```python
    recipe = get_recipe("mobilenetv2-transfer")
    ```
    """
    if name_or_path.endswith(".py"):
        return load_recipe_file(Path(name_or_path))
    found = recipe_sources()
    if name_or_path not in found:
        raise RecipeError(
            f"Expected a recipe name from: {', '.join(sorted(found)) or '(none installed)'}. "
            f"Received: {name_or_path!r}. Run `kerasdl list`, or pass a recipe file ./my_recipe.py."
        )
    return found[name_or_path].recipe()


def _builtin_factory(module_name: str) -> Any:
    factory = getattr(importlib.import_module(module_name), "recipe", None)
    if factory is None:
        raise RecipeError(
            f"Expected the built-in recipe module {module_name} to define recipe() returning a "
            "kerasdl.Recipe. Received: a module without one. Add `def recipe(): return transfer_recipe(...)`.")
    return factory


def load_recipe_file(path: Path) -> Recipe:
    """Returns the recipe of a Python file that defines `recipe()` (or a `RECIPE` value).

    Raises:
        RecipeError: for a missing file, one that fails to run, or one without a recipe.
    """
    if not path.is_file():
        raise RecipeError(
            f"Expected a recipe file. Received: {path} (no such file). Check the path."
        )
    module_spec = importlib.util.spec_from_file_location(f"kerasdl_user_recipe_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:  # noqa: BLE001 - report any failure of user code in one line.
        raise RecipeError(
            f"Expected {path} to run as a recipe file. Received: {type(error).__name__}: {error}."
        ) from None
    factory = getattr(module, "recipe", None) or getattr(module, "RECIPE", None)
    if factory is None:
        raise RecipeError(
            f"Expected {path} to define recipe() returning a kerasdl.Recipe. "
            "Received: a file without one. Add `def recipe(): return transfer_recipe(...)`."
        )
    return call_recipe(factory, str(path))


def call_recipe(factory: Any, where: str) -> Recipe:
    """Returns the `Recipe` a factory (or a `Recipe` value, copied) gives; `where` names it in errors."""
    recipe = factory() if callable(factory) else copy.deepcopy(factory)
    if not isinstance(recipe, Recipe):
        raise RecipeError(
            f"Expected {where} to give a kerasdl.Recipe. Received: {type(recipe).__name__}."
        )
    recipe.__post_init__()  # a recipe file may have set `export` to a list after building
    return recipe
