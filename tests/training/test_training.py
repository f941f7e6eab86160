"""The training engine: feature caching, checkpoints and resume, NaN, label smoothing."""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from kerasdl.app.run_parts import prepare_run_dir
from kerasdl.data.load import load_data
from kerasdl.errors import CheckpointError, RunFolderError, TrainingError
from kerasdl.models.classifier import build_classifier
from kerasdl.recipe import with_augmentation
from kerasdl.training import callbacks, checkpoints
from kerasdl.training import engine as training
from kerasdl.training.checkpoints import (
    TrainingState,
    check_resumable,
    check_same_data,
    check_same_recipe,
    checkpoint_dir,
    read_checkpoint,
    write_checkpoint,
)
from kerasdl.training.engine import TrainOptions, train
from kerasdl.training.feature_cache import (
    CachedFeatures,
    build_feature_extractor,
    build_head_model,
    extract_features,
    features_dataset,
)
from tests.support import TINY_RECIPE_FILE, write_class_folder


def tiny_recipe_module():
    spec = importlib.util.spec_from_file_location("training_tiny_recipe", TINY_RECIPE_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_cnn_recipe():
    """A 2-phase recipe on a tiny CNN backbone (registered by the recipe file)."""
    return tiny_recipe_module().recipe()


@pytest.fixture
def stripes(tmp_path) -> Path:
    return write_class_folder(tmp_path / "stripes", per_class=8, size=24)


def fresh(recipe, folder, *, seed=0):
    """Data and an untrained model, seeded as a new process would be."""
    keras.utils.set_random_seed(seed)
    data = load_data(folder, image_size=recipe.image_size, batch_size=recipe.batch_size, seed=seed)
    model = build_classifier(
        recipe.backbone.name, len(data.class_names), weights=None, image_size=recipe.image_size,
        dropout=recipe.head.dropout, trainable=recipe.phases[0].trainable,
    )
    return data, model


def read_history(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# ----------------------------------------------------------- feature caching


def test_head_model_shares_the_classifier_weights(tiny_cnn_recipe):
    model = build_classifier("tiny_cnn", 3, weights=None, image_size=24)
    head = build_head_model(model)
    images = np.random.default_rng(0).uniform(0, 255, (5, 24, 24, 3)).astype("float32")
    features = build_feature_extractor(model).predict(images, verbose=0)
    np.testing.assert_allclose(head.predict(features, verbose=0), model.predict(images, verbose=0),
                               rtol=1e-5, atol=1e-6)
    kernel = model.get_layer("predictions").kernel
    assert any(variable is kernel for variable in head.trainable_variables)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cached_head_phase_matches_full_model_fit(tiny_cnn_recipe, stripes, tmp_path, capsys,
                                                  label_smoothing):
    # One batch per epoch and no dropout: the data order cannot matter, so the
    # cached path must compute what model.fit on the full frozen model computes
    # (with integer labels, and with the one-hot labels of label smoothing).
    recipe = tiny_cnn_recipe
    recipe.batch_size, recipe.head.dropout = 16, 0.0
    recipe.phases[1].epochs = 0
    recipe.phases[0].label_smoothing = label_smoothing
    histories = {}
    for cache in (True, False):
        data, model = fresh(recipe, stripes)
        run_dir = tmp_path / f"run_{cache}"
        run_dir.mkdir()
        result = train(model, data, recipe, run_dir=run_dir, verbose=0,
                       options=TrainOptions(feature_cache=cache))
        histories[cache] = result.history
        saved = keras.saving.load_model(run_dir / "model.keras")
        assert saved.input_shape == (None, 24, 24, 3)  # the end-to-end classifier was saved
        assert [row["phase"] for row in read_history(run_dir / "history.csv")] == ["head", "head"]
    log = capsys.readouterr().out
    assert "computed once per image" in log and "(feature cache off)" in log
    for cached, full in zip(histories[True], histories[False], strict=True):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert cached[key] == pytest.approx(full[key], rel=1e-4, abs=1e-5), key


def test_augmented_phase_does_not_use_the_cache(tiny_cnn_recipe, stripes, tmp_path, capsys):
    recipe = with_augmentation(tiny_cnn_recipe, "light")  # the head phase too, as --augment light
    recipe.phases[0].epochs, recipe.phases[1].epochs = 1, 0
    data, model = fresh(recipe, stripes)
    train(model, data, recipe, verbose=0)
    assert "augmentation changes pixels" in capsys.readouterr().out


def test_features_on_disk_give_the_same_batches(tiny_cnn_recipe, stripes, tmp_path):
    data, model = fresh(tiny_cnn_recipe, stripes)
    extractor = build_feature_extractor(model)
    count = len(data.files["val"])
    memory = extract_features(extractor, data.val, num_images=count, in_memory=True)
    disk = extract_features(extractor, data.val, num_images=count, in_memory=False,
                            cache_dir=tmp_path / "features", name="val")
    assert disk.on_disk and (tmp_path / "features" / "val.npy").is_file()
    np.testing.assert_array_equal(memory.features, np.asarray(disk.features))
    for a, b in zip(features_dataset(memory, batch_size=3), features_dataset(disk, batch_size=3),
                    strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert isinstance(memory, CachedFeatures)


# ----------------------------------------------------- checkpoints / resume


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory):
    """The uninterrupted run that resumed runs must reproduce."""
    recipe = tiny_recipe_module().recipe()  # head 2 epochs (cached), fine_tune 3 (end to end)
    folder = write_class_folder(tmp_path_factory.mktemp("resume") / "stripes", per_class=8, size=24)
    data, model = fresh(recipe, folder)
    run_dir = tmp_path_factory.mktemp("whole")
    return folder, train(model, data, recipe, run_dir=run_dir, verbose=0)


@contextlib.contextmanager
def stop_after_checkpoint(monkeypatch, stop_after: tuple[int, int]):
    """Raises `Interrupted` once the checkpoint of `(phase_index, epochs_done_in_phase)`
    is written, as a kill right after it would; both writers of checkpoints (the
    per-epoch callback and the phase end) are watched."""
    original = checkpoints.write_checkpoint

    def write_then_stop(checkpoint_folder, state, **kwargs):
        path = original(checkpoint_folder, state, **kwargs)
        if (state.phase_index, state.epochs_done_in_phase) == tuple(stop_after):
            raise Interrupted()
        return path

    with monkeypatch.context() as patch:
        for module in (training, callbacks):
            patch.setattr(module, "write_checkpoint", write_then_stop)
        yield


@pytest.mark.parametrize(
    "stop_after",
    [
        (1, 1),  # in the second phase, after its first epoch
        pytest.param((0, 1), marks=pytest.mark.slow),  # in the cached head phase
        pytest.param((1, 0), marks=pytest.mark.slow),  # at the phase boundary
    ],
    ids=["second-phase", "cached-phase", "boundary"],
)
def test_resume_continues_as_if_never_interrupted(whole_run, tmp_path, monkeypatch, stop_after):
    folder, whole = whole_run
    recipe = tiny_recipe_module().recipe()
    with stop_after_checkpoint(monkeypatch, stop_after):
        data, model = fresh(recipe, folder)
        with pytest.raises(Interrupted):
            train(model, data, recipe, run_dir=tmp_path, verbose=0)
    state, _ = read_checkpoint(checkpoint_dir(tmp_path))
    assert (state.phase_index, state.epochs_done_in_phase) == stop_after

    data, model = fresh(recipe, folder)  # as a new process would build them
    resumed = train(model, data, recipe, run_dir=tmp_path, verbose=0, resume=True)
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4, 5]
    assert [row["epoch"] for row in read_history(tmp_path / "history.csv")] == ["1", "2", "3", "4", "5"]
    for a, b in zip(whole.history, resumed.history, strict=True):
        for key in ("loss", "val_loss", "val_accuracy", "learning_rate"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), (a["epoch"], key)
    assert resumed.best_epoch == whole.best_epoch


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_checkpoint(tiny_cnn_recipe, stripes, tmp_path):
    recipe = tiny_cnn_recipe
    recipe.phases[0].epochs = 1
    recipe.phases[1].optimizer, recipe.phases[1].learning_rate = "sgd", 1e35
    data, model = fresh(recipe, stripes)
    with pytest.raises(TrainingError, match="finite training loss.*phase fine_tune.*checkpoint"):
        train(model, data, recipe, run_dir=tmp_path, verbose=0)
    state, arrays = read_checkpoint(checkpoint_dir(tmp_path))
    assert state.epoch == 1 and state.phase_index == 1  # the last good epoch
    assert all(np.isfinite(value).all() for key, value in arrays.items() if key.startswith("model_"))


def test_truncated_checkpoint_is_one_clear_error(tmp_path):
    folder = checkpoint_dir(tmp_path)
    tiny_recipe_module()  # registers the tiny_cnn backbone
    model = build_classifier("tiny_cnn", 2, weights=None, image_size=24)
    write_checkpoint(folder, TrainingState(epoch=1), model=model)
    variables = next(folder.glob("epoch-*.npz"))
    variables.write_bytes(variables.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(folder)
    (folder / "state.json").write_text('{"epoch": 1, ')
    with pytest.raises(CheckpointError, match="damaged"):
        read_checkpoint(folder)



def test_damaged_state_and_config_are_one_error_naming_the_file_and_the_damage(tmp_path):
    folder = checkpoint_dir(tmp_path)
    folder.mkdir(parents=True)
    for text, damage in (('{"epoch": 1, ', "JSONDecodeError"), ("[1]", "TypeError"), ("3", "AttributeError")):
        (folder / "state.json").write_text(text)
        with pytest.raises(CheckpointError) as caught:
            read_checkpoint(folder)
        assert str(caught.value) == (f"Expected a readable checkpoint state in {folder / 'state.json'}. "
                                     f"Received: a damaged file ({damage}). Start a new run with overwrite=True.")
    (tmp_path / "config.json").write_bytes(b"\xff{")
    with pytest.raises(CheckpointError) as caught:
        check_resumable(tmp_path)
    assert str(caught.value) == (f"Expected a readable {tmp_path / 'config.json'}. Received: a damaged file "
                                 "(UnicodeDecodeError). Start a new run.")

def test_resume_refuses_other_runs(tiny_cnn_recipe, tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        check_resumable(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"status": "running",
                                                      "recipe": tiny_cnn_recipe.to_dict()}))
    with pytest.raises(CheckpointError, match="no checkpoint|Received: none"):
        check_resumable(tmp_path)
    other = tiny_recipe_module().recipe()
    other.phases[1].learning_rate = 0.5
    with pytest.raises(CheckpointError, match="phases.1.learning_rate"):
        check_same_recipe(tmp_path, other)
    (tmp_path / "config.json").write_text(json.dumps({"status": "complete"}))
    with pytest.raises(CheckpointError, match="complete"):
        check_resumable(tmp_path)


def test_used_output_folder_names_resume_and_overwrite(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text('{"kerasdl_run": 1}')
    with pytest.raises(RunFolderError, match="resume=True.*overwrite=True"):
        prepare_run_dir(tmp_path)
    (tmp_path / "config.json").write_text("{}")  # not kerasdl's: the folder is the user's
    with pytest.raises(RunFolderError, match="no kerasdl run"):
        prepare_run_dir(tmp_path, overwrite=True)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(RunFolderError, match="a file"):
        prepare_run_dir(blocker)
    with pytest.raises(RunFolderError, match="a file"):
        prepare_run_dir(blocker / "run")
    monkeypatch.setattr("os.access", lambda path, mode: False)
    with pytest.raises(RunFolderError, match="not writable"):
        prepare_run_dir(tmp_path / "new_run")


def test_resume_refuses_other_data(tiny_cnn_recipe, stripes, tmp_path):
    data, _ = fresh(tiny_cnn_recipe, stripes)
    config = {"data": {"source": "elsewhere", "class_names": ["cat", "dog"],
                       "class_counts": {"train": {"cat": 1, "dog": 1}}}}
    with pytest.raises(CheckpointError, match="Expected the data the run was started with"):
        check_same_data(config, data)


def test_a_run_from_before_a_data_field_was_removed_or_added_still_resumes(tmp_path):
    """An interrupted run recorded data.fold (a setting until the fold plan took it over) and no
    data.encoding (added later): neither is a difference in the recipe; a changed value still is."""
    from kerasdl.recipe import get_recipe

    recipe = get_recipe(str(TINY_RECIPE_FILE))
    recorded = json.loads(json.dumps(recipe.to_dict()))
    recorded["data"]["fold"] = 0
    recorded["data"].pop("encoding")
    (tmp_path / "config.json").write_text(json.dumps({"recipe": recorded}))
    assert checkpoints.check_same_recipe(tmp_path, recipe)["recipe"]["data"]["fold"] == 0
    recorded["data"]["val_split"] = 0.5
    (tmp_path / "config.json").write_text(json.dumps({"recipe": recorded}))
    with pytest.raises(CheckpointError, match=r"data\.val_split: 0\.5 then"):
        checkpoints.check_same_recipe(tmp_path, recipe)
