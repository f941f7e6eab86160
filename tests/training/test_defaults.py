"""The transfer defaults (issue 13): the monitored metric, layer-wise learning
rates, warmup + cosine, early stopping, validation of every phase field, and
test-time augmentation in `run`."""

from __future__ import annotations

import json
import re

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kerasdl.cli import main
from kerasdl.errors import RecipeError
from kerasdl.models.classifier import get_backbone_layer, set_trainable
from kerasdl.recipe import (
    Phase,
    apply_overrides,
    get_recipe,
    resolve_monitor,
    transfer_recipe,
    validate_recipe,
)
from kerasdl.training.engine import (
    BestModelKeeper,
    PositiveClassAUC,
    layer_lr_multipliers,
    make_optimizer,
    train,
)
from tests.support import write_class_folder
from tests.training.test_training import (
    TINY_RECIPE_FILE,
    Interrupted,
    fresh,
    read_history,
    stop_after_checkpoint,
    tiny_recipe_module,
)


@pytest.fixture
def tiny_cnn_recipe():
    return tiny_recipe_module().recipe()


@pytest.fixture
def stripes(tmp_path):
    return write_class_folder(tmp_path / "stripes", per_class=8, size=24)


# ------------------------------------------------------------------ monitor


def test_monitor_auto_is_roc_auc_for_two_classes_and_accuracy_otherwise():
    assert get_recipe("efficientnet-lite0-transfer").monitor == "auto"
    assert resolve_monitor("auto", 2) == "val_auc"
    assert resolve_monitor("auto", 5) == "val_accuracy"
    assert resolve_monitor("val_loss", 5) == "val_loss"
    with pytest.raises(RecipeError, match="two classes.*3 classes.*val_accuracy"):
        resolve_monitor("val_auc", 3)
    with pytest.raises(RecipeError, match="val_auc, val_accuracy, val_loss"):
        resolve_monitor("val_f1", 2)


def test_positive_class_auc_matches_the_exact_roc_auc():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = np.clip(labels * 0.3 + rng.uniform(0, 0.7, 200), 0, 1)
    probabilities = np.stack([1 - scores, scores], axis=1).astype("float32")
    exact = np.mean([(s > t) + 0.5 * (s == t) for s in scores[labels == 1] for t in scores[labels == 0]])
    for y_true in (labels, np.eye(2)[labels]):  # class indices and one-hot labels
        metric = PositiveClassAUC()
        metric.update_state(y_true, probabilities)
        assert float(metric.result()) == pytest.approx(exact, abs=0.01)


def test_training_monitors_val_auc_for_two_classes_by_default(tiny_cnn_recipe, stripes, tmp_path):
    tiny_cnn_recipe.phases[1].epochs = 1
    data, model = fresh(tiny_cnn_recipe, stripes)
    result = train(model, data, tiny_cnn_recipe, run_dir=tmp_path, verbose=0)
    assert result.monitor == "val_auc"
    rows = read_history(tmp_path / "history.csv")
    assert all("val_auc" in row for row in rows)
    best = max(range(len(rows)), key=lambda i: float(rows[i]["val_auc"]))
    assert result.best_metric == pytest.approx(float(rows[best]["val_auc"]))


def test_run_records_the_monitor_and_tta_in_metrics_json(tmp_path):
    images = write_class_folder(tmp_path / "images", per_class=6)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "run", str(TINY_RECIPE_FILE), "--data", str(images), "--output", str(out), "--quiet",
        "--epochs", "1", "--fine-tune-epochs", "1", "--monitor", "val_loss", "--tta", "flip",
    ])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["monitor"] == "val_loss" and metrics["tta"] == "flip"
    assert "best model by val_loss" in result.output
    assert "best val_loss" in (out / "report.md").read_text()
    model = keras.saving.load_model(out / "model.keras", compile=False)
    assert model.output_shape == (None, 2)


def test_val_auc_on_three_classes_is_one_line_before_the_run_folder(tmp_path):
    images = write_class_folder(tmp_path / "images3", classes=("a", "b", "c"), per_class=4)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "run", str(TINY_RECIPE_FILE), "--data", str(images), "--output", str(out),
        "--monitor", "val_auc",
    ])
    assert result.exit_code == 1
    assert "Error: --monitor: Expected two classes for --monitor val_auc" in result.output
    assert "Pass --monitor val_accuracy or --monitor val_loss." in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_best_model_keeper_breaks_ties_by_validation_loss():
    keeper = BestModelKeeper("val_auc")
    keeper.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    keeper.on_epoch_end(0, {"val_auc": 1.0, "val_loss": 0.5})
    keeper.on_epoch_end(1, {"val_auc": 1.0, "val_loss": 0.7})
    assert keeper.best_epoch == 1
    keeper.on_epoch_end(2, {"val_auc": 1.0, "val_loss": 0.3})
    assert keeper.best_epoch == 3
    keeper.on_epoch_end(3, {"val_auc": 0.9, "val_loss": 0.1})
    assert keeper.best_epoch == 3


def test_best_model_keeper_takes_a_gain_the_split_cannot_resolve_only_with_a_lower_loss():
    # hymenoptera, seed 2 (153 validation images, min_delta 1/153 = 0.0065): the head's last epoch,
    # then two fine-tuning epochs; the raw maximum, epoch 7, was 0.0001 above epoch 6 at a worse loss.
    keeper = BestModelKeeper("val_auc", min_delta=1 / 153)
    keeper.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    keeper.on_epoch_end(4, {"val_auc": 0.9674, "val_loss": 0.2190})
    keeper.on_epoch_end(5, {"val_auc": 0.9736, "val_loss": 0.2177})  # +0.0062, lower loss: taken
    assert keeper.best_epoch == 6
    keeper.on_epoch_end(6, {"val_auc": 0.9737, "val_loss": 0.2648})  # +0.0001, higher loss: noise
    assert (keeper.best_epoch, keeper.best) == (6, 0.9736)
    keeper.on_epoch_end(7, {"val_auc": 0.9736 + 0.0066, "val_loss": 0.3})  # beyond one image: taken
    assert keeper.best_epoch == 8
    keeper.on_epoch_end(8, {"val_auc": 0.9790, "val_loss": 0.01})  # lower, whatever the loss: not taken
    assert keeper.best_epoch == 8

    by_loss = BestModelKeeper("val_loss")  # the loss monitored: any decrease beyond min_delta (0)
    by_loss.set_model(keeper.model)
    by_loss.on_epoch_end(0, {"val_loss": 0.5})
    by_loss.on_epoch_end(1, {"val_loss": 0.5})
    by_loss.on_epoch_end(2, {"val_loss": 0.4})
    assert by_loss.best_epoch == 3



def test_best_model_keeper_takes_its_settings_and_a_resumed_best_in_init(tmp_path):
    from kerasdl.training.callbacks import BestEpoch

    target = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    fitted = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    kept = [np.full((1, 1), 2.0, "float32"), np.zeros(1, "float32")]
    keeper = BestModelKeeper(
        "val_auc", tmp_path / "model.keras", target=target, min_delta=0.01, save_every_improvement=False,
        resume_state=BestEpoch(0.9, 3, loss=0.4, weights=kept),
    )
    keeper.set_model(fitted)
    assert (keeper.best, keeper.best_epoch, keeper.best_loss, keeper.unsaved) == (0.9, 3, 0.4, True)
    keeper.on_epoch_end(3, {"val_auc": 0.905, "val_loss": 0.5})  # within min_delta, higher loss: kept
    assert keeper.best_epoch == 3 and not (tmp_path / "model.keras").exists()  # saved only by flush
    keeper.flush(target)  # the resumed best, never written before the kill, is written now
    assert (tmp_path / "model.keras").exists() and not keeper.unsaved
    keeper.on_epoch_end(4, {"val_auc": 0.95, "val_loss": 0.5})
    assert keeper.best_epoch == 5
    np.testing.assert_array_equal(keeper.best_weights[0], target.get_weights()[0])  # the target's, not fitted's

# ------------------------------------------------------- layer-wise rates


def _tiny_classifier():
    from kerasdl.models.classifier import build_classifier

    tiny_recipe_module()  # registers the tiny_cnn backbone
    return build_classifier("tiny_cnn", 2, weights=None, image_size=24, trainable="all")


def test_layer_decay_gives_lower_multipliers_toward_the_input():
    model = _tiny_classifier()
    base = get_backbone_layer(model)
    multipliers = layer_lr_multipliers(model, 0.5)
    by_layer = {layer.name: {multipliers.get(id(v)) for v in layer.trainable_weights}
                for layer in base.layers if layer.trainable_weights}
    assert by_layer == {"block_2_conv": {0.5}, "block_1_conv": {0.25}}  # BatchNorm is frozen
    head = model.get_layer("predictions").trainable_weights
    assert all(id(v) not in multipliers for v in head)
    assert layer_lr_multipliers(model, 1.0) == {}
    set_trainable(model, "head")
    assert layer_lr_multipliers(model, 0.5) == {}


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop", "adamw"])
def test_layer_wise_multipliers_scale_each_groups_update(optimizer):
    model = _tiny_classifier()
    variables = model.trainable_variables
    start = [v.numpy().copy() for v in variables]
    rng = np.random.default_rng(0)
    gradients = [rng.normal(size=v.shape).astype("float32") for v in variables]
    phase = Phase(epochs=1, learning_rate=1e-2, optimizer=optimizer, weight_decay=0.0)
    steps = {}
    for decay in (1.0, 0.5):
        for variable, value in zip(variables, start, strict=True):
            variable.assign(value)
        optimizer_object = make_optimizer(phase, 1, lr_multipliers=layer_lr_multipliers(model, decay))
        optimizer_object.apply([keras.ops.convert_to_tensor(g) for g in gradients], variables)
        steps[decay] = [v.numpy() - value for v, value in zip(variables, start, strict=True)]
    multipliers = layer_lr_multipliers(model, 0.5)
    seen = set()
    for variable, plain, scaled in zip(variables, steps[1.0], steps[0.5], strict=True):
        factor = multipliers.get(id(variable), 1.0)
        seen.add(factor)
        # (AdamW's decoupled weight decay, 1e-4 x the rate, is not scaled: within tolerance.)
        rtol = 1e-3 if optimizer == "adamw" else 1e-4
        np.testing.assert_allclose(scaled, plain * factor, rtol=rtol, atol=1e-7)
    assert seen == {1.0, 0.5, 0.25}


def test_full_fine_tuning_keeps_batchnorm_statistics_and_trains_at_layer_wise_rates(
        tiny_cnn_recipe, stripes, capsys):
    recipe = apply_overrides(tiny_cnn_recipe, [
        "phases.head.epochs=0", "phases.fine_tune.epochs=1", "phases.fine_tune.trainable=all",
        "phases.fine_tune.layer_decay=0.5",
    ])
    data, model = fresh(recipe, stripes)
    base = get_backbone_layer(model)
    norms = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    before = [[w.copy() for w in layer.get_weights()] for layer in norms]
    convs_before = [base.get_layer(f"block_{i}_conv").get_weights()[0].copy() for i in (1, 2)]
    train(model, data, recipe, verbose=0)
    for layer, weights in zip(norms, before, strict=True):
        for expected, received in zip(weights, layer.get_weights(), strict=True):
            np.testing.assert_array_equal(expected, received)
    for i, old in zip((1, 2), convs_before, strict=True):
        assert not np.allclose(base.get_layer(f"block_{i}_conv").get_weights()[0], old)
    assert "x0.5 per block toward the input" in capsys.readouterr().out


# ----------------------------------------------------------- early stopping


def test_fine_tuning_that_cannot_beat_the_head_phase_stops_after_its_patience(tiny_cnn_recipe, stripes):
    recipe = apply_overrides(tiny_cnn_recipe, [
        "phases.head.epochs=1", "phases.fine_tune.epochs=6", "phases.fine_tune.early_stopping=2",
        "phases.fine_tune.learning_rate=1e-12", "monitor=val_accuracy",
    ])
    data, model = fresh(recipe, stripes)
    result = train(model, data, recipe, verbose=0)
    fine_tune = [row for row in result.history if row["phase"] == "fine_tune"]
    assert len(fine_tune) == 2, "no gain over the head phase at a zero learning rate: stopped after patience 2"
    assert result.best_metric == max(row["val_accuracy"] for row in result.history)


def test_early_stopping_asks_fine_tuning_to_beat_the_head_phase_by_one_validation_image():
    from kerasdl.training.callbacks import early_stopping_delta, early_stopping_start

    phase = Phase(name="fine_tune", early_stopping=2)
    assert early_stopping_delta(phase, "val_auc", 160) == pytest.approx(1 / 160)
    assert early_stopping_delta(phase, "val_loss", 160) == 0.0
    assert early_stopping_delta(Phase(min_delta=0.01), "val_auc", 160) == 0.01
    rows = [{"phase": "head", "val_auc": 0.80}, {"phase": "head", "val_auc": 0.85},
            {"phase": "fine_tune", "val_auc": 0.853},  # +0.003 over the head: under one image's worth
            {"phase": "fine_tune", "val_auc": 0.86},   # +0.01: beaten
            {"phase": "fine_tune", "val_auc": 0.858},
            {"phase": "fine_tune", "val_auc": 0.861}]  # +0.001: once beaten, any gain counts
    delta = 1 / 160
    assert early_stopping_start(rows[:3], phase, "val_auc", False, delta) == (0.85, 0.85, 1, False)
    assert early_stopping_start(rows[:4], phase, "val_auc", False, delta) == (0.85, 0.86, 0, True)
    assert early_stopping_start(rows[:5], phase, "val_auc", False, delta) == (0.85, 0.86, 0, True)  # runs on
    assert early_stopping_start(rows, phase, "val_auc", False, delta) == (0.85, 0.861, 0, True)
    assert early_stopping_start(rows[:3], phase, "val_auc", False, 0.0) == (0.85, 0.853, 0, True)
    # a first phase (nothing to beat) is Keras's early stopping: patience counts after its best
    first = [{"phase": "fine_tune", "val_auc": value} for value in (0.853, 0.86, 0.858, 0.861, 0.859)]
    assert early_stopping_start(first, phase, "val_auc", False, delta) == (None, 0.861, 1, True)
    losses = [{"phase": "head", "val_loss": 0.5}, {"phase": "fine_tune", "val_loss": 0.45}]
    assert early_stopping_start(losses, phase, "val_loss", True, 0.1) == (0.5, 0.5, 1, False)


def _stopped_at(stopping, values):
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.stop_training = False
    stopping.set_model(model)
    stopping.on_train_begin()
    for epoch, value in enumerate(values):
        stopping.on_epoch_end(epoch + 2, {"val_auc": value})
        if model.stop_training:
            return epoch
    return None


def test_the_callback_stops_as_the_replay_says():
    from kerasdl.training.callbacks import ResumableEarlyStopping

    def stopping(**kwargs):
        return ResumableEarlyStopping(monitor="val_auc", mode="max", patience=2, min_delta=1 / 160, **kwargs)

    # Not beaten within patience: stops after 2 epochs.
    assert _stopped_at(stopping(to_beat=0.85, initial_best=0.85), [0.853, 0.851, 0.99]) == 1
    # Beaten at the second epoch: runs to the end, through a dip, and keeps the best.
    beaten = stopping(to_beat=0.85, initial_best=0.85)
    assert _stopped_at(beaten, [0.853, 0.86, 0.80, 0.79, 0.78, 0.861]) is None and beaten.best == 0.861
    # Resumed after beating: still runs on.
    assert _stopped_at(stopping(to_beat=0.85, initial_best=0.86, beaten=True), [0.8, 0.8, 0.8]) is None
    # Nothing to beat: Keras's patience after the best.
    first = stopping()
    assert _stopped_at(first, [0.853, 0.86, 0.858, 0.861, 0.859, 0.86]) == 5 and first.best == 0.861


def test_train_restores_the_best_epoch_not_the_last(tiny_cnn_recipe, stripes, monkeypatch):
    """The last epochs get worse (a huge rate); the kept weights are those of the best epoch."""
    recipe = apply_overrides(tiny_cnn_recipe, [
        "phases.head.epochs=2", "phases.fine_tune.epochs=2", "phases.fine_tune.learning_rate=5.0",
        "phases.fine_tune.schedule=constant", "phases.fine_tune.warmup_epochs=0",
        "phases.fine_tune.early_stopping=0", "monitor=val_loss",
    ])
    data, model = fresh(recipe, stripes)
    snapshots = {}
    original = BestModelKeeper.on_epoch_end

    def record(self, epoch, logs=None):
        snapshots[epoch + 1] = [w.copy() for w in (self.target or self.model).get_weights()]
        return original(self, epoch, logs)

    monkeypatch.setattr(BestModelKeeper, "on_epoch_end", record)
    result = train(model, data, recipe, verbose=0)
    losses = [row["val_loss"] for row in result.history]
    assert result.best_epoch == 1 + int(np.nanargmin(losses))
    for expected, received in zip(snapshots[result.best_epoch], model.get_weights(), strict=True):
        np.testing.assert_array_equal(expected, received)


# --------------------------------------------------------------- validation


def test_transfer_defaults_fine_tune_everything_with_warmup_cosine_and_early_stopping():
    recipe = transfer_recipe("x", "mobilenetv2", description="x")
    head, fine_tune = recipe.phases
    assert (head.trainable, head.augment, head.epochs) == ("head", "none", "auto")
    assert (fine_tune.trainable, fine_tune.schedule, fine_tune.warmup_epochs) == ("all", "cosine", 1)
    assert fine_tune.early_stopping > 0 and 0 < fine_tune.layer_decay < 1
    assert fine_tune.learning_rate < head.learning_rate
    assert fine_tune.epochs == "auto" and fine_tune.min_delta == "auto"
    # measured in bench/BENCHMARKS.md ("The course's own task"): the images' own size, flips only
    # (no resampling), and the head's features chosen on the validation split
    assert (recipe.image_size, recipe.augment, recipe.head.pooling) == ("auto", "flip", "auto")
    validate_recipe(recipe)


def test_auto_epochs_make_about_three_hundred_steps_within_three_to_five_epochs():
    from kerasdl.recipe import auto_epochs, resolve_epochs

    assert [auto_epochs(steps) for steps in (1, 8, 20, 38, 60, 75, 100, 108, 1000)] == [5, 5, 5, 5, 5, 4, 3, 3, 3]
    recipe = transfer_recipe("x", "mobilenetv2", description="x")
    resolved = resolve_epochs(recipe, 20)
    assert [phase.epochs for phase in resolved.phases] == [5, 5]
    # the head on cached features: about 100 steps, 5 to 15 epochs (hymenoptera's 244 images: 13)
    assert [auto_epochs(steps, frozen=True) for steps in (1, 8, 20, 108)] == [15, 13, 5, 5]
    assert [phase.epochs for phase in resolve_epochs(recipe, 8).phases] == [13, 5]
    assert recipe.phases[1].epochs == "auto"  # the recipe itself is not changed
    assert resolve_epochs(resolved, 100) is resolved  # nothing left to resolve
    fixed = apply_overrides(recipe, ["phases.fine_tune.epochs=2"])
    assert fixed.phases[1].epochs == 2 and resolve_epochs(fixed, 20).phases[1].epochs == 2
    assert apply_overrides(fixed, ["phases.fine_tune.epochs=auto"]).phases[1].epochs == "auto"


def test_a_run_records_the_epochs_auto_gave(tmp_path):
    images = write_class_folder(tmp_path / "images", per_class=4)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", str(TINY_RECIPE_FILE), "--data", str(images), "--output", str(out),
                                       "--quiet", "--set", "phases.fine_tune.epochs=auto"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["recipe"]["phases"][1]["epochs"] == 5  # a few steps an epoch: the most, 5
    assert [phase["epochs"] for phase in config["training"]["phases"]][1] <= 5


def test_block_pooling_trains_on_cached_block_features_and_exports_what_it_evaluated(tmp_path):
    images = write_class_folder(tmp_path / "images", per_class=6)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", str(TINY_RECIPE_FILE), "--data", str(images), "--output", str(out),
                                       "--quiet", "--set", "head.pooling=blocks", "--export", "tflite"])
    assert result.exit_code == 0, result.output
    assert "on backbone features computed once" in result.output
    model = keras.saving.load_model(out / "model.keras")
    assert model.get_layer("avg_pool").output.shape[-1] == 8 + 16  # block_1 and block_2 of tiny_cnn
    parity = json.loads((out / "export" / "parity.json").read_text())["model.tflite"]
    assert parity["top1_agreement"] == 1.0 and parity["max_abs_probability_difference"] < 1e-4


@pytest.mark.parametrize("scores, chosen", [({"top": 0.50, "blocks": 0.90}, "blocks"),
                                            ({"top": 0.80, "blocks": 0.90}, "top"),  # under 1/4 val images
                                            ({"top": 0.95, "blocks": 0.90}, "top")])
def test_head_pooling_auto_takes_the_blocks_only_when_they_beat_the_top_beyond_the_noise(
        tmp_path, monkeypatch, scores, chosen):
    from kerasdl.app import head_choice

    monkeypatch.setattr(head_choice, "_best_validation", lambda train, val, columns, recipe, monitor:
                        scores["blocks" if columns == slice(None) else "top"])
    images = write_class_folder(tmp_path / "images", per_class=10)  # 4 validation images: margin 0.25
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", str(TINY_RECIPE_FILE), "--data", str(images), "--output", str(out),
                                       "--quiet", "--set", "head.pooling=auto", "--epochs", "1",
                                       "--fine-tune-epochs", "1"])
    assert result.exit_code == 0, result.output
    assert f"Head pooling auto: {chosen}" in result.output
    config = json.loads((out / "config.json").read_text())
    assert config["head_pooling"]["chosen"] == chosen == config["recipe"]["head"]["pooling"]
    assert config["recipe_as_given"]["head"]["pooling"] == "auto"
    width = keras.saving.load_model(out / "model.keras").get_layer("avg_pool").output.shape[-1]
    assert width == {"top": 16, "blocks": 24}[chosen]


def test_head_pooling_auto_trains_both_heads_on_real_features(tiny_cnn_recipe, stripes):
    from kerasdl.app.head_choice import choose_head_pooling

    recipe = apply_overrides(tiny_cnn_recipe, ["head.pooling=auto"])
    data, _ = fresh(recipe, stripes)
    resolved, record, features = choose_head_pooling(recipe, data, image_size=recipe.image_size)
    assert resolved.head.pooling == record["chosen"] in ("top", "blocks") and recipe.head.pooling == "auto"
    assert set(record["best"]) == {"top", "blocks"} and record["monitor"] == "val_auc"
    assert all(0.0 <= value <= 1.0 for value in record["best"].values())
    assert features.train.features.shape == (len(data.files["train"]), {"top": 16, "blocks": 24}[record["chosen"]])


def _sorted_rows(array):
    return array[np.lexsort(array.T[::-1])]


@pytest.mark.parametrize("pooling", ["top", "blocks"])
def test_head_phase_trains_on_the_features_the_pooling_choice_computed(
        tiny_cnn_recipe, stripes, tmp_path, caplog, pooling):
    from kerasdl.app.head_choice import choose_head_pooling
    from kerasdl.models.classifier import build_classifier
    from kerasdl.training.feature_cache import build_feature_extractor, extract_features, weights_digest

    weights = tmp_path / "tiny.weights.h5"  # a file: every model built from it has the same backbone
    keras.utils.set_random_seed(3)
    tiny_recipe_module().tiny_cnn(input_shape=(24, 24, 3)).save_weights(weights)
    recipe = apply_overrides(tiny_cnn_recipe, ["head.pooling=auto", f"backbone.weights={weights}"])
    data, _ = fresh(recipe, stripes)
    _, _, features = choose_head_pooling(recipe, data, image_size=24)
    if pooling == "top":
        features = features.columns(slice(-16, None))  # what the choice hands over when top wins
    model = build_classifier("tiny_cnn", 2, weights=str(weights), image_size=24, pooling=pooling, trainable="head")
    extractor = build_feature_extractor(model)
    assert features.weights_digest == weights_digest(extractor)
    # The features are those the head phase would compute itself (the training split in another order).
    val = extract_features(extractor, data.val, num_images=len(data.files["val"]), in_memory=True)
    np.testing.assert_allclose(features.val.features, val.features, rtol=1e-6)
    train_again = extract_features(extractor, data.train_source().unaugmented,
                                   num_images=len(data.files["train"]), in_memory=True)
    np.testing.assert_allclose(_sorted_rows(features.train.features), _sorted_rows(train_again.features),
                               rtol=1e-6)

    with caplog.at_level("INFO", logger="kerasdl"):
        train(model, data, recipe, features=features)
    assert "training on the backbone features computed for the head-pooling choice" in caplog.text
    assert "computing the frozen backbone's features" not in caplog.text

    caplog.clear()  # a model with other backbone weights computes its own
    other = build_classifier("tiny_cnn", 2, weights=None, image_size=24, pooling=pooling, trainable="head")
    with caplog.at_level("INFO", logger="kerasdl"):
        train(other, data, recipe, features=features)
    assert "computing the frozen backbone's features of 12 training and 4 validation images" in caplog.text


@pytest.mark.parametrize("assignment, message", [
    ("head.pooling=levels", "head.pooling top, blocks or auto"),
    ("phases.fine_tune.layer_decay=0", "layer_decay in \\(0, 1\\]"),
    ("phases.fine_tune.layer_decay=1.5", "layer_decay"),
    ("phases.fine_tune.optimizer=adagrad", "optimizer from: adam"),
    ("phases.fine_tune.schedule=linear", "schedule from: constant"),
    ("phases.head.learning_rate=0", "learning_rate in \\(0, 10\\)"),
    ("phases.fine_tune.warmup_epochs=-1", "warmup_epochs"),
    ("phases.fine_tune.label_smoothing=1", "label_smoothing in \\[0, 1\\)"),
    ("phases.fine_tune.weight_decay=-0.1", "weight_decay"),
    ("phases.fine_tune.clipnorm=0", "clipnorm above 0"),
    ("phases.fine_tune.early_stopping=-1", "early_stopping"),
    ("phases.fine_tune.min_delta=-0.1", "min_delta to be auto"),
    ("phases.fine_tune.min_delta=soon", "min_delta to be auto"),
    ("phases.fine_tune.epochs=-1", "non-negative epoch count"),
    ("phases.fine_tune.epochs=many", "non-negative epoch count or auto"),
    ("monitor=val_f1", "monitor from: auto"),
    ("head.dropout=1", "head.dropout"),
    ("head.hidden_units=-2", "hidden_units"),
])
def test_every_phase_field_is_validated(assignment, message):
    recipe = apply_overrides(get_recipe("mobilenetv2-transfer"), [assignment])
    recipe.backbone.weights = "none"
    with pytest.raises(RecipeError, match=message):
        validate_recipe(recipe)


def test_bad_phase_field_on_the_command_line_is_one_line_before_any_folder(tmp_path):
    images = write_class_folder(tmp_path / "images", per_class=4)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "run", str(TINY_RECIPE_FILE), "--data", str(images), "--output", str(out),
        "--set", "phases.fine_tune.layer_decay=2",
    ])
    assert result.exit_code == 1 and "phases.fine_tune.layer_decay in (0, 1]" in result.output
    assert not out.exists()


def test_image_size_auto_trains_at_the_images_own_size_and_records_it(tmp_path):
    images = write_class_folder(tmp_path / "images", per_class=4, size=28)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "run", str(TINY_RECIPE_FILE), "--data", str(images), "--output", str(out), "--quiet",
        "--image-size", "auto", "--epochs", "1", "--fine-tune-epochs", "0"])
    assert result.exit_code == 0, result.output
    assert "Image size auto: 28 px" in result.output  # tiny_cnn takes 16 to 37 px
    config = json.loads((out / "config.json").read_text())
    assert config["image_size"] == 28 and config["recipe_as_given"]["image_size"] == "auto"
    assert keras.saving.load_model(out / "model.keras").input_shape[1:] == (28, 28, 3)


@pytest.mark.parametrize("flag, code, message", [("big", 2, "expected a number of pixels or auto"),
                                                 ("2000", 1, "image size from 1 to 1024")])
def test_a_bad_image_size_is_one_line(tmp_path, flag, code, message):
    images = write_class_folder(tmp_path / "images", per_class=4)
    result = CliRunner().invoke(main, ["run", str(TINY_RECIPE_FILE), "--data", str(images),
                                       "--output", str(tmp_path / "run"), "--image-size", flag])
    assert result.exit_code == code and message in result.output
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------- learning rates


def test_lr_range_test_suggests_a_rate_and_restores_the_head(tiny_cnn_recipe, stripes):
    from kerasdl.training.lr_find import find_learning_rate

    data, model = fresh(tiny_cnn_recipe, stripes)
    before = [w.copy() for w in model.get_weights()]
    result = find_learning_rate(model, data, steps=100, start=1e-5, end=10.0)  # 40 was noisy off TF
    assert 1e-5 <= result.suggestion < result.min_loss_learning_rate <= 10.0
    assert len(result.learning_rates) == len(result.losses) > 5
    for expected, received in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(expected, received)


def test_lr_range_test_that_diverges_at_every_rate_is_one_line(tiny_cnn_recipe, stripes):
    from kerasdl.errors import TrainingError
    from kerasdl.training.lr_find import find_learning_rate

    data, model = fresh(tiny_cnn_recipe, stripes)
    with pytest.raises(TrainingError, match="never fell below its starting value"):
        find_learning_rate(model, data, steps=10, start=1e3, end=1e6)


def test_lr_find_command_plots_and_records_and_run_lr_auto_uses_it(tmp_path):
    images = write_class_folder(tmp_path / "images", per_class=6)
    out = tmp_path / "lr"
    result = CliRunner().invoke(main, ["lr-find", str(TINY_RECIPE_FILE), "--data", str(images),
                                       "--output", str(out), "--steps", "100"])
    assert result.exit_code == 0, result.output
    assert "Suggested learning rate for phase head" in result.output
    found = json.loads((out / "lr_find.json").read_text())
    assert (out / "lr_find.png").stat().st_size > 0 and found["suggestion"] > 0
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "run", str(TINY_RECIPE_FILE), "--data", str(images), "--output", str(run_dir), "--quiet",
        "--epochs", "1", "--fine-tune-epochs", "0", "--lr", "auto",
    ])
    assert result.exit_code == 0, result.output
    config = json.loads((run_dir / "config.json").read_text())
    assert config["recipe"]["phases"][0]["learning_rate"] == pytest.approx(config["lr_find"]["suggestion"])


# ------------------------------------------------------------- time budget


def test_time_budgets_parse():
    from kerasdl.app.budget import parse_duration

    assert parse_duration("90s") == 90 and parse_duration("10m") == 600
    assert parse_duration("1h30m") == 5400 and parse_duration("45") == 45
    for bad in ("soon", "0", "-5m", "10x"):
        with pytest.raises(RecipeError, match="time budget"):
            parse_duration(bad)


def test_too_small_a_time_budget_names_the_smallest_before_any_folder(tmp_path):
    images = write_class_folder(tmp_path / "images", per_class=4)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", str(TINY_RECIPE_FILE), "--data", str(images),
                                       "--output", str(out), "--time-budget", "0.001s"])
    assert result.exit_code == 1 and "Expected a time budget of at least" in result.output
    # issue 27: the budget as typed ("1s" was echoed as "--time-budget 1"), in human units, and one to type
    assert "Error: --time-budget: " in result.output and "Received: --time-budget 0.001s. " in result.output
    assert re.search(r"at least [\d.]+ (s|min) for this", result.output), result.output
    assert re.search(r"Pass --time-budget (\d+m)?(\d+s)? or more\.$", result.output.strip()), result.output
    assert not out.exists()
    result = CliRunner().invoke(main, ["run", str(TINY_RECIPE_FILE), "--data", str(images),
                                       "--output", str(out), "--time-budget", "soon"])
    assert result.exit_code == 1 and "90s, 10m or 1h30m" in result.output and not out.exists()


def test_a_time_budget_plans_the_epochs_and_records_them(tmp_path):
    images = write_class_folder(tmp_path / "images", per_class=4)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", str(TINY_RECIPE_FILE), "--data", str(images),
                                       "--output", str(out), "--quiet", "--time-budget", "10m"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    plan = config["time_budget"]
    # Ten minutes hold far more than the tiny recipe's 3 end-to-end epochs: they grow to 3x.
    assert plan["budget_s"] == 600 and plan["epochs"] == {"head": 2, "fine_tune": 9}
    assert plan["recipe_epochs"] == {"head": 2, "fine_tune": 3}
    assert config["seconds"] < 600
    assert "time budget: 10 min; epochs chosen: head 2, fine_tune 9" in (out / "report.md").read_text()
    assert "Time budget 10 min: epochs" in result.output


def test_explicit_epochs_are_a_ceiling_the_budget_keeps(tmp_path):
    """Issue 27: `--time-budget 99999h` turned `--fine-tune-epochs 1` into 3, and printed 359996400 s."""
    images = write_class_folder(tmp_path / "images", per_class=4)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", str(TINY_RECIPE_FILE), "--data", str(images), "--output", str(out),
                                       "--quiet", "--time-budget", "99999h", "--fine-tune-epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "Time budget 99,999 h: epochs {'head': 2, 'fine_tune': 1}" in result.output
    config = json.loads((out / "config.json").read_text())
    assert config["time_budget"]["epochs"] == {"head": 2, "fine_tune": 1}


def test_a_resumed_run_keeps_the_epochs_rate_and_plan_it_started_with(tmp_path, monkeypatch):
    """`epochs=auto`, `--lr auto` and `--time-budget` resolve once: the resume
    trains with the recorded numbers and runs no second range test."""
    from kerasdl.app import lr_find

    images = write_class_folder(tmp_path / "images", per_class=4)
    out = tmp_path / "run"
    flags = [str(TINY_RECIPE_FILE), "--data", str(images), "--quiet", "--lr", "auto",
             "--set", "phases.fine_tune.epochs=auto", "--time-budget", "10m"]
    with stop_after_checkpoint(monkeypatch, (1, 1)):
        interrupted = CliRunner().invoke(main, ["run", *flags, "--output", str(out)])
    assert isinstance(interrupted.exception, Interrupted), interrupted.output
    started = json.loads((out / "config.json").read_text())
    assert started["recipe_as_given"]["phases"][1]["epochs"] == "auto"
    assert started["recipe"]["phases"][1]["epochs"] == 15  # auto: 5, grown 3x into ten minutes

    monkeypatch.setattr(lr_find, "recipe_learning_rate", lambda *a, **k: pytest.fail("searched again"))
    resumed = CliRunner().invoke(main, ["run", *flags, "--resume", str(out)])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming at epoch 4" in resumed.output and "no new range test" in resumed.output
    config = json.loads((out / "config.json").read_text())
    assert config["status"] == "complete" and config["recipe"] == started["recipe"]
    assert config["lr_find"] == started["lr_find"]
    assert config["time_budget"]["epochs"] == {"head": 2, "fine_tune": 15}
    assert [int(row["epoch"]) for row in read_history(out / "history.csv")] == list(range(1, 18))


def test_a_time_budget_cuts_then_grows_the_end_to_end_epochs():
    from kerasdl.app.budget import EPOCH_CEILING, _fit_epochs
    from kerasdl.recipe import Phase

    def fitted(seconds, *epochs):
        phases = [Phase(name=f"p{index}", trainable="all", epochs=count) for index, count in enumerate(epochs)]
        _fit_epochs(phases, seconds, epoch_s=10.0)
        return [phase.epochs for phase in phases]

    assert fitted(35, 5) == [3]  # cut to what fits
    assert fitted(80, 5) == [8]  # grown into the time left
    assert fitted(10_000, 5) == [5 * EPOCH_CEILING]  # never past the ceiling
    assert fitted(70, 2, 3) == [3, 4]  # the time left is spread over the phases
    assert fitted(40, 2, 3) == [2, 2]  # the recipe's epochs first, in phase order
    assert fitted(5, 2) == [0]
    phases = [Phase(name="fine_tune", trainable="all", epochs=1)]
    _fit_epochs(phases, 10_000, epoch_s=10.0, fixed_epochs=("fine_tune",))  # the user's epochs: a ceiling
    assert phases[0].epochs == 1


def test_deadline_stops_a_phase_when_another_epoch_would_overrun():
    import time

    from kerasdl.training.engine import DeadlineStop

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.stop_training = False  # as fit sets it
    stop = DeadlineStop(time.perf_counter() + 3600)
    stop.set_model(model)
    stop.on_epoch_begin(0)
    stop.on_epoch_end(0)
    assert not model.stop_training
    stop.deadline = time.perf_counter()
    stop.on_epoch_begin(1)
    stop.on_epoch_end(1)
    assert model.stop_training and stop.stopped


def test_a_budget_schedule_can_end_sooner_inside_the_compiled_step():
    from kerasdl.training.engine import BudgetCosineDecay

    schedule = BudgetCosineDecay(1.0, decay_steps=100)
    plain = keras.optimizers.schedules.CosineDecay(1.0, decay_steps=100)
    assert float(schedule(30)) == pytest.approx(float(plain(30)))
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert restored.get_config()["decay_steps"] == 100
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(schedule), "mse")
    x, y = np.ones((4, 2), "float32"), np.zeros((4, 1), "float32")
    model.train_on_batch(x, y)  # traces the step with the 100-step schedule
    assert schedule.end_by(1)  # the schedule is over: the learning rate is 0 from step 1
    if keras.backend.backend() == "jax":  # as DeadlineStop does: JAX's step holds the old end
        model.make_train_function(force=True)
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(x, y)
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    assert not schedule.end_by(50)  # never lengthened
    assert schedule.get_config()["decay_steps"] == 1


def test_deadline_stop_shortens_the_schedule_the_next_steps_use():
    """On every backend: JAX's compiled step is traced again to see the new end."""
    import time

    from kerasdl.training.engine import BudgetCosineDecay, DeadlineStop

    schedule = BudgetCosineDecay(1.0, decay_steps=100)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(schedule), "mse")
    x, y = np.ones((4, 2), "float32"), np.zeros((4, 1), "float32")
    model.train_on_batch(x, y)  # traces the step with the 100-step schedule; step 1 next
    stop = DeadlineStop(0.0, steps_per_epoch=1)
    stop.set_model(model)
    model.stop_training = False
    now = time.perf_counter()
    stop.started, stop.deadline = now - 10, now + 15  # a 10 s epoch: one more fits, the end is step 2
    stop.on_epoch_end(0)
    assert not model.stop_training and schedule.get_config()["decay_steps"] == 2
    model.train_on_batch(x, y)  # step 1, at half the rate
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(x, y)  # step 2: the schedule is over, the rate 0
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_deadline_stop_ends_the_cosine_at_the_last_epoch_that_fits():
    import time

    from kerasdl.training.engine import BudgetCosineDecay, DeadlineStop

    schedule = BudgetCosineDecay(1e-3, decay_steps=90, warmup_target=1e-2, warmup_steps=10)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(schedule), "mse")
    model.optimizer.iterations.assign(20)  # two epochs of 10 steps done
    stop = DeadlineStop(0.0, steps_per_epoch=10)
    stop.set_model(model)
    model.stop_training = False
    now = time.perf_counter()
    stop.started, stop.deadline = now - 10, now + 35  # a 10 s epoch, room for 3 more
    stop.on_epoch_end(1)
    assert not model.stop_training
    assert schedule.get_config()["decay_steps"] == 20 + 3 * 10 - 10  # warmup steps aside


def test_deadline_stop_counts_in_typical_epochs_not_the_last_one():
    import time

    from kerasdl.training.engine import BudgetCosineDecay, DeadlineStop

    schedule = BudgetCosineDecay(1e-3, decay_steps=100)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(schedule), "mse")
    stop = DeadlineStop(0.0, steps_per_epoch=10)
    stop.set_model(model)
    model.stop_training = False
    stop.epoch_seconds = [30.0, 10.0, 10.0]  # the first epoch traced the step
    model.optimizer.iterations.assign(40)
    now = time.perf_counter()
    stop.started, stop.deadline = now - 40, now + 35  # a slow 40 s epoch; typical (10+10+40)/3 = 20 s
    stop.on_epoch_end(3)
    assert not model.stop_training
    assert schedule.get_config()["decay_steps"] == 40 + 1 * 10  # one more 20 s epoch fits, not zero


def test_deadline_stop_ends_a_phase_whose_shortened_schedule_is_over():
    import time

    from kerasdl.training.engine import BudgetCosineDecay, DeadlineStop

    schedule = BudgetCosineDecay(1e-3, decay_steps=100)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(schedule), "mse")
    schedule.end_by(30)  # an earlier epoch found room for three epochs only
    model.optimizer.iterations.assign(30)
    stop = DeadlineStop(time.perf_counter() + 3600, steps_per_epoch=10)  # then epochs ran faster
    stop.set_model(model)
    model.stop_training = False
    stop.on_epoch_begin(2)
    stop.on_epoch_end(2)
    assert model.stop_training and stop.stopped  # the rate is zero from here: nothing to learn


def test_ema_phase_averages_the_weights_and_uses_the_average_at_each_epoch_end():
    phase = Phase(name="fine_tune", epochs=2, learning_rate=0.1, trainable="all", ema=0.5)
    optimizer = make_optimizer(phase, steps_per_epoch=3)
    assert optimizer.use_ema and optimizer.ema_momentum == 0.5 and optimizer.ema_overwrite_frequency == 3
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer, "mse")
    x, y = np.random.default_rng(0).normal(size=(12, 2)), np.ones((12, 1))
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)  # 3 steps: the average is copied in
    averages = [keras.ops.convert_to_numpy(v) for v in optimizer._model_variables_moving_average]
    for weight, average in zip(model.get_weights(), averages, strict=True):
        np.testing.assert_allclose(weight, average, rtol=1e-6)
    with pytest.raises(RecipeError, match="ema in \\[0, 1\\)"):
        validate_recipe(apply_overrides(get_recipe("mobilenetv2-transfer"), ["phases.fine_tune.ema=1"]))


def test_the_epochs_a_command_sets_are_the_budgets_ceilings():
    from kerasdl.cli.commands import _epochs_set
    from kerasdl.recipe import apply_overrides, get_recipe

    for assignment in ("phases.fine_tune.epochs=4", "phases.1.epochs=4"):
        recipe = apply_overrides(get_recipe("mobilenetv2-transfer"), [assignment])
        assert _epochs_set(recipe, [assignment], epochs=None, fine_tune_epochs=None) == ("fine_tune",)
    recipe = apply_overrides(get_recipe("mobilenetv2-transfer"), ["phases.fine_tune.epochs=auto"])
    assert _epochs_set(recipe, ["phases.fine_tune.epochs=auto"], epochs=None, fine_tune_epochs=None) == ()
