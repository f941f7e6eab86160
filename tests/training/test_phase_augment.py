"""Per-phase augmentation: the transfer recipes' frozen head phase trains
without augmentation (on cached backbone features), fine-tuning with the
recipe's; `--augment`, `--set phases.X.augment=...`, bad names, config.json."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import pytest
from click.testing import CliRunner

from kerasdl.cli.commands import main
from kerasdl.data.augment import get_augmentation
from kerasdl.data.load import load_data
from kerasdl.data.pipeline import make_dataset
from kerasdl.errors import RecipeError
from kerasdl.models.classifier import build_classifier
from kerasdl.recipe import (
    apply_overrides,
    get_recipe,
    phase_augmentation,
    transfer_recipe,
    validate_recipe,
    with_augmentation,
)
from kerasdl.training import phase_data
from kerasdl.training.engine import train
from tests.support import TINY_RECIPE_FILE as TINY_RECIPE_PATH
from tests.support import write_class_folder

TINY_RECIPE_FILE = str(TINY_RECIPE_PATH)


@pytest.fixture(scope="module")
def stripes(tmp_path_factory) -> Path:
    return write_class_folder(tmp_path_factory.mktemp("augment") / "stripes", per_class=8, size=24)


def tiny_recipe(augment: str = "light"):
    """The 24 px tiny-CNN transfer recipe (head 1 epoch, fine_tune 1) with `augment`."""
    recipe = get_recipe(TINY_RECIPE_FILE)
    recipe.augment = augment
    recipe.phases[0].epochs, recipe.phases[1].epochs = 1, 1
    return recipe


def data_and_model(recipe, folder):
    """As `run_recipe` makes them: the data carries the recipe's augmentation."""
    keras.utils.set_random_seed(0)
    data = load_data(folder, image_size=recipe.image_size, batch_size=recipe.batch_size, seed=0,
                     augment=get_augmentation(recipe.augment, seed=recipe.seed))
    model = build_classifier(recipe.backbone.name, len(data.class_names), weights=None,
                             image_size=recipe.image_size, trainable=recipe.phases[0].trainable)
    return data, model


def spy_on_augmentations(monkeypatch) -> list:
    """Records the augmentation each end-to-end phase puts on its batches."""
    used = []
    original = phase_data.augment_batches

    def recording(dataset, augment):
        used.append(augment)
        return original(dataset, augment)

    monkeypatch.setattr(phase_data, "augment_batches", recording)
    return used


# ------------------------------------------------------------------ recipe


def test_transfer_recipes_freeze_the_head_phase_without_augmentation():
    for name in ("mobilenetv2-transfer", "resnet50-transfer", "efficientnet-lite0-transfer"):
        recipe = get_recipe(name)
        head, fine_tune = recipe.phases
        assert (head.trainable, head.augment, phase_augmentation(recipe, head)) == ("head", "none", "none")
        assert fine_tune.augment is None and phase_augmentation(recipe, fine_tune) == "flip"


def test_augment_option_applies_to_every_phase_and_set_can_still_differ():
    recipe = with_augmentation(get_recipe("mobilenetv2-transfer"), "strong")
    assert [phase_augmentation(recipe, phase) for phase in recipe.phases] == ["strong", "strong"]
    again = apply_overrides(recipe, ["phases.head.augment=none"])
    assert [phase_augmentation(again, phase) for phase in again.phases] == ["none", "strong"]


def test_set_addresses_a_phase_by_index_or_name_and_null_inherits():
    recipe = transfer_recipe("t", "mobilenetv2", description="t")
    changed = apply_overrides(recipe, ["phases.1.augment=mixup", "phases.head.augment=light"])
    assert [phase.augment for phase in changed.phases] == ["light", "mixup"]
    # `none` is the preset named none; `null` hands the phase back to the recipe's augment.
    assert apply_overrides(recipe, ["phases.0.augment=none"]).phases[0].augment == "none"
    assert apply_overrides(recipe, ["phases.0.augment=null"]).phases[0].augment is None
    assert apply_overrides(recipe, ["augment=none"]).augment == "none"


def test_unknown_phase_augmentation_is_refused_naming_the_key():
    recipe = apply_overrides(tiny_recipe(), ["phases.fine_tune.augment=heavy"])
    with pytest.raises(RecipeError) as raised:
        validate_recipe(recipe)
    message = str(raised.value)
    assert "\n" not in message
    assert "none, flip, light, strong, mixup, cutmix" in message and "'heavy'" in message
    assert "phases.fine_tune.augment" in message
    with pytest.raises(RecipeError, match="'heavy'"):
        with_augmentation(tiny_recipe(), "heavy")


# ---------------------------------------------------------------- training


def test_head_phase_takes_the_cache_and_fine_tune_the_augmentation(stripes, monkeypatch, capsys):
    recipe = tiny_recipe("light")
    data, model = data_and_model(recipe, stripes)
    used = spy_on_augmentations(monkeypatch)
    result = train(model, data, recipe, verbose=0)
    head, fine_tune = result.phases
    assert (head.augment, head.feature_cache) == ("none", True)
    assert (fine_tune.augment, fine_tune.feature_cache) == ("light", False)
    # Only the fine-tuning phase went through the image pipeline, with the data's own light layers.
    assert used == [data.train_parts.augment] and used[0].name == "augment_light"
    log = capsys.readouterr().out
    assert "Phase head: " in log and "augment none, training on backbone features" in log
    assert "Phase fine_tune: " in log and "augment light, training end to end" in log


def test_augment_option_puts_the_head_phase_back_end_to_end(stripes, monkeypatch, capsys):
    recipe = with_augmentation(tiny_recipe(), "light")
    data, model = data_and_model(recipe, stripes)
    used = spy_on_augmentations(monkeypatch)
    result = train(model, data, recipe, verbose=0)
    assert [phase.feature_cache for phase in result.phases] == [False, False]
    assert len(used) == 2 and all(layer.name == "augment_light" for layer in used)
    assert "phases.head.augment='none' uses it" in capsys.readouterr().out


def test_a_phase_mixes_labels_while_the_recipe_does_not(stripes, monkeypatch):
    recipe = apply_overrides(tiny_recipe("none"), ["phases.fine_tune.augment=mixup"])
    data, model = data_and_model(recipe, stripes)
    used = spy_on_augmentations(monkeypatch)
    result = train(model, data, recipe, verbose=0)
    assert not data.one_hot and [phase.augment for phase in result.phases] == ["none", "mixup"]
    assert used[0].mixes_labels  # one-hot labels were made for it: the phase trained
    assert all(row["loss"] > 0 for row in result.history)


def test_cached_head_phase_under_a_mixing_recipe_takes_one_hot_labels(stripes):
    recipe = tiny_recipe("cutmix")
    data, model = data_and_model(recipe, stripes)
    assert data.one_hot
    result = train(model, data, recipe, verbose=0)
    assert [phase.feature_cache for phase in result.phases] == [True, False]
    assert all(row["val_loss"] > 0 for row in result.history)


def test_a_replaced_train_split_cannot_take_another_augmentation(stripes):
    recipe = tiny_recipe("light")
    data, model = data_and_model(recipe, stripes)
    replaced = dataclasses.replace(data, train=make_dataset(
        data.files["train"], image_size=24, batch_size=4, training=True))
    assert replaced.train_source() is None and data.train_source() is data.train_parts
    with pytest.raises(RecipeError, match="phase head's own augmentation"):
        train(model, replaced, recipe, verbose=0)


# --------------------------------------------------------------------- CLI


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_run_records_each_phase_augmentation_in_config_json(stripes, tmp_path):
    run_dir = tmp_path / "run"
    result = invoke("run", TINY_RECIPE_FILE, "--data", stripes, "--output", run_dir, "--quiet",
                    "--epochs", "1", "--fine-tune-epochs", "1", "--export", "none",
                    "--augment", "light", "--set", "phases.head.augment=none")
    assert result.exit_code == 0, result.output
    config = json.loads((run_dir / "config.json").read_text())
    assert config["recipe"]["augment"] == "light"
    assert [phase["augment"] for phase in config["recipe"]["phases"]] == ["none", None]
    assert [(phase["augment"], phase["feature_cache"]) for phase in config["training"]["phases"]] == [
        ("none", True), ("light", False)]
    assert "augmentation light (head: none)" in (run_dir / "report.md").read_text()


@pytest.mark.parametrize("flags", [["--set", "phases.head.augment=heavy"], ["--augment", "heavy"]])
def test_run_refuses_an_unknown_augmentation_in_one_line(stripes, tmp_path, flags):
    run_dir = tmp_path / "run"
    result = invoke("run", TINY_RECIPE_FILE, "--data", stripes, "--output", run_dir, *flags)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "heavy" in lines[0] and "none, flip, light, strong" in lines[0]
    assert not run_dir.exists()
