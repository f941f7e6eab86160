"""Recipes: the registry, overrides, user recipe files, validation, packaging."""

from importlib.metadata import entry_points

import pytest

from kerasdl.errors import RecipeError
from kerasdl.recipe import apply_overrides, get_recipe, list_recipes, validate_recipe

REQUIRED = ["resnet50-transfer", "efficientnetb0-transfer", "mobilenetv2-transfer",
            "mobilenetv3small-transfer", "convnext-tiny-transfer"]


def test_every_required_recipe_is_installed_through_the_entry_point_group():
    names = {ep.name for ep in entry_points(group="kerasdl.recipes")}
    assert set(REQUIRED) <= names
    assert {recipe.name for recipe in list_recipes()} == names
    for ep in entry_points(group="kerasdl.recipes"):
        assert ep.value.startswith("kerasdl.recipes."), "recipes must not claim the name `recipes`"


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
    from kerasdl.export.exporter import parse_export_list

    recipe = apply_overrides(get_recipe("mobilenetv2-transfer"), ["export.quantize=int8"])
    assert recipe.export.quantize == "int8" and recipe.export.formats == ["saved_model", "tflite"]
    targets = parse_export_list(recipe.export.formats + ["tflite:float16"], tflite_quantize=recipe.export.quantize)
    assert [str(target) for target in targets] == ["saved_model", "tflite:int8", "tflite:float16"]
    with pytest.raises(ExportError, match="Expected export.quantize from: none, float16, dynamic, int8, "
                                          "int8-full. Received: 'int4'"):
        parse_export_list(["tflite"], tflite_quantize="int4")
