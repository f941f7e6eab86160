"""Recipes: the registry, overrides, user recipe files, validation, packaging."""

import pkgutil
import sys
from importlib.metadata import EntryPoint

import pytest

from kerasdl.errors import RecipeError
from kerasdl.recipe import apply_overrides, get_recipe, list_recipes, validate_recipe

REQUIRED = ["resnet50-transfer", "efficientnetb0-transfer", "mobilenetv2-transfer",
            "mobilenetv3small-transfer", "convnext-tiny-transfer"]


def test_every_module_in_recipes_is_listed_by_kerasdl_list():
    """A built-in recipe is one module of `kerasdl.recipes`: no entry point, no other registration."""
    import kerasdl.recipes
    from click.testing import CliRunner

    from kerasdl.cli import main

    modules = [info.name for info in pkgutil.iter_modules(kerasdl.recipes.__path__)]
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 0, result.output
    listed = [line.split()[0] for line in result.output.splitlines() if line.strip()]
    assert listed == sorted(name.replace("_", "-") for name in modules)
    assert set(REQUIRED) <= set(listed)
    assert [recipe.name for recipe in list_recipes()] == listed, "each recipe carries its module's name"


def _package(root, name, modules):
    """A package `name` under `root` with `modules` ({module: source}), importable for this test."""
    (root / name).mkdir()
    (root / name / "__init__.py").write_text("")
    for module, source in modules.items():
        (root / name / f"{module}.py").write_text(source)


@pytest.fixture
def importable(tmp_path, monkeypatch):
    """`tmp_path` on sys.path; the packages a test makes there are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


RECIPE_SOURCE = (
    "from kerasdl.recipe import transfer_recipe\n"
    "def recipe():\n"
    "    return transfer_recipe({name!r}, 'mobilenetv3small', description='from a temporary package')\n"
)


def test_a_new_recipe_is_one_module_in_the_recipes_package(importable, monkeypatch):
    from kerasdl.recipe import registry

    _package(importable, "my_builtins", {"tiny_new_transfer": RECIPE_SOURCE.format(name="tiny-new-transfer"),
                                         "_helpers": "X = 1\n"})
    monkeypatch.setattr(registry, "BUILTIN_PACKAGE", "my_builtins")
    assert registry.builtin_recipes() == {"tiny-new-transfer": "my_builtins.tiny_new_transfer"}
    assert get_recipe("tiny-new-transfer").description == "from a temporary package"
    (importable / "my_builtins" / "misnamed_transfer.py").write_text(RECIPE_SOURCE.format(name="other"))
    with pytest.raises(RecipeError, match="Expected my_builtins.misnamed_transfer to give the recipe named "
                                          "'misnamed-transfer' after its module. Received: 'other'"):
        get_recipe("misnamed-transfer")


def test_a_plugin_adds_a_recipe_through_the_entry_point_group(importable, monkeypatch, caplog):
    from click.testing import CliRunner

    from kerasdl.cli import main
    from kerasdl.recipe import registry

    _package(importable, "my_plugin", {"recipes": RECIPE_SOURCE.format(name="my-plugin-transfer")})
    points = [EntryPoint("my-plugin-transfer", "my_plugin.recipes:recipe", "kerasdl.recipes"),
              EntryPoint("resnet50-transfer", "my_plugin.recipes:recipe", "kerasdl.recipes"),
              EntryPoint("mobilenetv2-transfer", "kerasdl.recipes.mobilenetv2_transfer:recipe", "kerasdl.recipes")]
    monkeypatch.setattr(registry, "entry_points",
                        lambda group: [point for point in points if point.group == group])
    assert get_recipe("my-plugin-transfer").description == "from a temporary package"
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 0, result.output
    assert "my-plugin-transfer" in result.output
    # a plugin named like a built-in: the built-in wins, and a warning names the plugin
    assert get_recipe("resnet50-transfer").backbone.name == "resnet50"
    assert "resnet50-transfer from my_plugin.recipes:recipe, the name of a built-in recipe" in caplog.text
    # an install made when the built-ins were entry points still lists them: no warning for those
    assert "mobilenetv2-transfer from" not in caplog.text


@pytest.mark.parametrize("name", REQUIRED)
def test_transfer_recipes_train_the_head_then_fine_tune_lower_toward_the_input(name):
    recipe = get_recipe(name)
    head, fine_tune = recipe.phases
    assert head.trainable == "head" and fine_tune.trainable != "head"
    assert fine_tune.learning_rate < head.learning_rate and fine_tune.layer_decay < 1
    validate_recipe(recipe)


def test_unknown_recipe_lists_the_valid_names():
    with pytest.raises(RecipeError, match="resnet50-transfer"):
        get_recipe("resnet-transfer")


def test_overrides_reach_any_field():
    recipe = apply_overrides(get_recipe("mobilenetv2-transfer"), [
        "backbone.alpha=0.35", "head.dropout=0.3", "batch_size=8",
        "phases.fine_tune.learning_rate=1e-6", "phases.0.epochs=2", "export=tflite,saved_model",
    ])
    assert recipe.backbone.options == {"alpha": 0.35}
    assert recipe.head.dropout == 0.3 and recipe.batch_size == 8
    assert recipe.phases[1].learning_rate == 1e-6 and recipe.phases[0].epochs == 2
    assert recipe.export.formats == ["tflite", "saved_model"]
    assert get_recipe("mobilenetv2-transfer").head.dropout == 0.2, "the registry copy is untouched"


@pytest.mark.parametrize("assignment, message", [
    ("head.dropuot=0.3", "dropout"),
    ("nothing", "KEY=VALUE"),
    ("phases.warmup.epochs=1", "head, fine_tune"),
    ("batch_size=big", "batch_size"),
])
def test_bad_overrides_say_what_is_valid(assignment, message):
    with pytest.raises(RecipeError, match=message):
        apply_overrides(get_recipe("mobilenetv2-transfer"), [assignment])


def test_a_recipe_file_written_by_a_user_runs(tmp_path):
    path = tmp_path / "my_recipe.py"
    path.write_text(
        "from kerasdl import transfer_recipe\n"
        "def recipe():\n"
        "    return transfer_recipe('mine', 'mobilenetv3small', description='x', image_size=64)\n"
    )
    assert get_recipe(str(path)).name == "mine"
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(RecipeError, match="define recipe"):
        get_recipe(str(tmp_path / "empty.py"))


@pytest.mark.parametrize("assignments, message", [
    (["phases.0.epochs=-1"], "non-negative"),
    (["phases.0.epochs=0", "phases.1.epochs=0"], "at least one phase"),
    (["image_size=0"], "image size from 1 to 1024"),
    (["backbone.name=resnet5"], "backbone name"),
    (["phases.1.trainable=top"], "top:N"),
])
def test_invalid_recipes_are_refused_before_any_work(assignments, message):
    with pytest.raises(RecipeError, match=message):
        validate_recipe(apply_overrides(get_recipe("mobilenetv2-transfer"), assignments))


def test_export_quantize_sets_the_plain_tflite_files_quantization():
    from kerasdl.errors import ExportError
    from kerasdl.export.options import parse_export_list

    recipe = apply_overrides(get_recipe("mobilenetv2-transfer"), ["export.quantize=int8"])
    assert recipe.export.quantize == "int8" and recipe.export.formats == ["saved_model", "tflite"]
    targets = parse_export_list(recipe.export.formats + ["tflite:float16"], tflite_quantize=recipe.export.quantize)
    assert [str(target) for target in targets] == ["saved_model", "tflite:int8", "tflite:float16"]
    with pytest.raises(ExportError, match="Expected export.quantize from: none, float16, dynamic, int8, "
                                          "int8-full. Received: 'int4'"):
        parse_export_list(["tflite"], tflite_quantize="int4")
