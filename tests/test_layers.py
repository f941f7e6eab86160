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
