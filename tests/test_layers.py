"""The package's layers point one way: a module imports only its own layer or those below.

Imports inside functions count too: a deferred import that reaches up a
layer is still a circle waiting to happen.
"""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kerasdl"

# Lowest first. A module may import from its own entry or any entry before it.
LAYERS = [
    {"errors", "_util"},
    {"backbones"},
    {"data"},
    {"models"},
    {"recipe"},
    {"training", "inference"},
    {"evaluation", "export"},
    {"app", "course"},
    {"cli"},
]
LAYER_OF = {name: rank for rank, names in enumerate(LAYERS) for name in names}
# Packages on one layer that must still not import each other.
SIBLINGS_APART = [("training", "inference"), ("evaluation", "export"), ("app", "course")]


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "kerasdl" and len(parts) > 1 else None


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "kerasdl":
                for alias in node.names:
                    yield node.lineno, f"kerasdl.{alias.name}"
            else:
                yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def _violations():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative == Path("__init__.py"):
            continue  # the lazy top-level API names every layer, by design
        own = relative.parts[0].removesuffix(".py")
        for line, module in _imports(path):
            target = _part(module)
            if target is None or target == own or target == "__version__":
                continue
            if target not in LAYER_OF:
                # the top-level package itself: only __version__ may come from there
                found.append(f"{relative}:{line} imports {module}, a name of the top-level API")
            elif LAYER_OF[target] > LAYER_OF[own]:
                found.append(f"{relative}:{line} ({own}) imports {module}, a higher layer")
            elif (own, target) in SIBLINGS_APART or (target, own) in SIBLINGS_APART:
                found.append(f"{relative}:{line} ({own}) imports its sibling {module}")
    return found


def test_every_package_has_a_layer():
    packages = {p.name.removesuffix(".py") for p in PACKAGE.iterdir()
                if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.name != "__init__.py")}
    assert packages == set(LAYER_OF), "add new packages to LAYERS in tests/test_layers.py"


def test_no_module_imports_a_higher_layer():
    assert _violations() == []


def test_checker_catches_an_upward_import(tmp_path, monkeypatch):
    fake = tmp_path / "kerasdl"
    (fake / "data").mkdir(parents=True)
    (fake / "data" / "bad.py").write_text("def f():\n    from kerasdl.training.engine import train\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert _violations() == ["data/bad.py:2 (data) imports kerasdl.training.engine, a higher layer"]


# The command line parses and prints: it reaches the application layer (`app`, and `course`
# for the course's commands), `recipe` to parse recipes and `--set`, and errors and helpers.
CLI_REACHES = {"cli", "app", "course", "recipe", "errors", "_util"}


def _cli_reaches_below():
    found = []
    for path in sorted((PACKAGE / "cli").rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        for line, module in _imports(path):
            target = _part(module)
            if target is not None and target not in CLI_REACHES:
                found.append(f"{relative}:{line} imports {module}: call it through kerasdl.app")
    return found


def test_the_cli_reaches_only_the_application_layer_and_recipes():
    assert _cli_reaches_below() == []


def test_the_cli_check_sees_a_deferred_import_below_app(tmp_path, monkeypatch):
    fake = tmp_path / "kerasdl"
    (fake / "cli").mkdir(parents=True)
    (fake / "cli" / "bad.py").write_text(
        "from kerasdl.app.catalog import backbone_specs\n"
        "def f():\n    from kerasdl.backbones.registry import BACKBONES\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert _cli_reaches_below() == [
        "cli/bad.py:3 imports kerasdl.backbones.registry: call it through kerasdl.app"]


@pytest.mark.parametrize("command", [["--help"], ["list"], ["backbones"]])
def test_cli_starts_without_tensorflow(command):
    import subprocess
    import sys

    code = (
        "import sys; from click.testing import CliRunner; from kerasdl.cli import main; "
        f"result = CliRunner().invoke(main, {command!r}); "
        "assert result.exit_code == 0, result.output; "
        "heavy = sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules); "
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"kerasdl {' '.join(command)} imported {result.stdout.strip()}"


def test_setup_cfg_lists_every_package():
    import configparser

    config = configparser.ConfigParser()
    config.read(PACKAGE.parent / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    on_disk = {"kerasdl"} | {f"kerasdl.{p.name}" for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert on_disk | {"kerasdl.recipes"} == listed, "a wheel would miss a package: list it in setup.cfg"


# ------------------------------------------------------------------ modules

# kerasdl/training/, one concern a module. Lowest first: a module imports only
# training modules of an earlier entry (or none), so the phase loop stays on top.
TRAINING_MODULES = [
    {"types", "metrics", "schedules", "runtime", "checkpoints", "distribute", "feature_cache", "progress"},
    {"optimizers", "multi_worker"},  # layer-wise rates over Keras's optimizers; the multi-worker loop
    {"compile", "callbacks", "lr_find"},  # a phase's compile; fit's callbacks; the range test
    {"phase_data"},  # the data a phase fits on
    {"engine"},  # the phase loop, `train`
]
MODULE_LINES = 500  # about; a module that grows past it wants splitting


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _runtime_imports(path: Path) -> set[str]:
    """The kerasdl modules `path` imports, at the top or in a function, outside `if TYPE_CHECKING:`."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _is_type_checking(node):
            return
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


def _import_graph() -> dict[str, set[str]]:
    """`{module: kerasdl modules it imports}`, packages' `__init__` left out (the lazy API names everything)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    return {name: {m for m in _runtime_imports(path) if m in modules and m != name}
            for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import circle once, as the modules along it."""
    found, done = [], set()

    def walk(node: str, trail: list[str]) -> None:
        if node in trail:
            cycle = trail[trail.index(node):]
            turn = cycle.index(min(cycle))
            canonical = cycle[turn:] + cycle[:turn]
            if canonical not in found:
                found.append(canonical)
            return
        if node in done:
            return
        for target in sorted(graph.get(node, ())):
            walk(target, [*trail, node])
        done.add(node)

    for node in sorted(graph):
        walk(node, [])
    return found


def test_no_import_circle_in_kerasdl():
    assert _cycles(_import_graph()) == []


def test_the_circle_check_sees_a_deferred_import(tmp_path, monkeypatch):
    fake = tmp_path / "kerasdl"
    (fake / "inference").mkdir(parents=True)
    (fake / "inference" / "a.py").write_text("from kerasdl.inference.b import g\n")
    (fake / "inference" / "b.py").write_text("def g():\n    from kerasdl.inference import a\n")
    (fake / "inference" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from kerasdl.inference.a import x\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert _cycles(_import_graph()) == [["kerasdl.inference.a", "kerasdl.inference.b"]]


def test_training_modules_keep_their_places():
    folder = PACKAGE / "training"
    on_disk = {p.stem for p in folder.glob("*.py") if p.name != "__init__.py"}
    listed = set().union(*TRAINING_MODULES)
    assert on_disk == listed, "give a new kerasdl/training module its place in TRAINING_MODULES"
    rank = {name: i for i, names in enumerate(TRAINING_MODULES) for name in names}
    upward = []
    for name in sorted(on_disk):
        for module in _runtime_imports(folder / f"{name}.py"):
            target = module.split(".")[2] if module.startswith("kerasdl.training.") else None
            if target in rank and target != name and rank[target] >= rank[name]:
                upward.append(f"training/{name}.py imports kerasdl.training.{target}")
    assert upward == []


# Every package keeps its modules to MODULE_LINES (issue 28).
SHORT_MODULE_PACKAGES = sorted(path.parent.name for path in PACKAGE.glob("*/__init__.py"))


@pytest.mark.parametrize("package", SHORT_MODULE_PACKAGES)
def test_no_module_is_too_long(package):
    long = {p.name: n for p in (PACKAGE / package).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MODULE_LINES}
    assert long == {}, f"split these into modules of one concern: {long}"


# kerasdl/recipe/, one concern a module: the schema below every other, which import only it.
RECIPE_MODULES = [
    {"schema"},  # Recipe, Phase and the other dataclasses; the values their fields take
    {"factories", "registry", "overrides", "checks", "resolve"},
]


def test_recipe_modules_keep_their_places():
    folder = PACKAGE / "recipe"
    on_disk = {p.stem for p in folder.glob("*.py") if p.name != "__init__.py"}
    assert on_disk == set().union(*RECIPE_MODULES), "give a new kerasdl/recipe module its place in RECIPE_MODULES"
    rank = {name: i for i, names in enumerate(RECIPE_MODULES) for name in names}
    upward = [f"recipe/{name}.py imports {module}" for name in sorted(on_disk)
              for module in _runtime_imports(folder / f"{name}.py")
              if module.startswith("kerasdl.recipe.")  # a name of the package itself counts as upward
              and rank.get(module.split(".")[2], len(RECIPE_MODULES)) >= rank[name]]
    assert upward == []
    long = {p.name: n for p in folder.glob("*.py") if (n := len(p.read_text().splitlines())) > MODULE_LINES}
    assert long == {}, f"split these into modules of one concern: {long}"
