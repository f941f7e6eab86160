"""Reproducibility and speed options: --seed/--deterministic, mixed precision, XLA,
steps per execution."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasdl.app.run_parts import environment_info
from kerasdl.errors import RecipeError
from kerasdl.recipe import Phase
from kerasdl.training.distribute import check_distribute
from kerasdl.training.engine import TrainOptions, phase_loss, train
from kerasdl.training.runtime import dtype_policy, mixed_precision_policy
from tests.support import write_class_folder
from tests.training.test_training import fresh, tiny_recipe_module


@pytest.fixture
def recipe():
    built = tiny_recipe_module().recipe()
    built.phases[0].epochs, built.phases[1].epochs = 1, 0
    built.batch_size, built.head.dropout = 2, 0.0  # XLA draws other dropout masks
    return built


@pytest.fixture(scope="module")
def baseline_predictions(tmp_path_factory):
    recipe = tiny_recipe_module().recipe()
    recipe.phases[0].epochs, recipe.phases[1].epochs = 1, 0
    recipe.batch_size, recipe.head.dropout = 2, 0.0
    folder = write_class_folder(tmp_path_factory.mktemp("options") / "images", per_class=6)
    return folder, predictions_after_training(recipe, folder, TrainOptions(feature_cache=False))[1]


def test_label_smoothing_gives_a_smoothed_one_hot_loss():
    loss = phase_loss(Phase(label_smoothing=0.2))
    assert isinstance(loss, keras.losses.CategoricalCrossentropy)
    assert loss.label_smoothing == pytest.approx(0.2)
    assert isinstance(phase_loss(Phase()), keras.losses.SparseCategoricalCrossentropy)


def test_environment_info_names_backend_devices_and_versions():
    info = environment_info()
    assert info["backend"] == keras.backend.backend() and info["devices"]
    assert info["packages"]["keras"] == keras.__version__


def predictions_after_training(recipe, folder, options: TrainOptions, *, mixed: bool = False):
    with dtype_policy(mixed):
        data, model = fresh(recipe, folder)
        train(model, data, recipe, verbose=0, options=options)
        images = np.concatenate([x for x, _ in data.val.as_numpy_iterator()])
        return model, model.predict(images, verbose=0)


@pytest.mark.parametrize(
    "options, mixed, tolerance",
    [
        (TrainOptions(feature_cache=False, jit_compile=True), False, 1e-4),
        (TrainOptions(feature_cache=False, steps_per_execution=3), False, 1e-5),
        (TrainOptions(feature_cache=False), True, 0.05),
    ],
    ids=["jit-compile", "steps-per-execution", "mixed-precision"],
)
def test_speed_options_give_the_same_predictions(recipe, baseline_predictions, options, mixed,
                                                 tolerance):
    folder, baseline = baseline_predictions
    model, predictions = predictions_after_training(recipe, folder, options, mixed=mixed)
    assert predictions.dtype == np.float32
    np.testing.assert_allclose(predictions, baseline, atol=tolerance)
    if mixed:
        assert model.get_layer("predictions").dtype_policy.name == "float32"
        assert model.get_layer("avg_pool").dtype_policy.name == mixed_precision_policy()
    assert keras.config.dtype_policy().name == "float32"  # restored after the run


def test_distribute_choices_are_checked(monkeypatch):
    with pytest.raises(RecipeError, match="mirrored, multi-worker"):
        check_distribute("ring")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}')
    if keras.backend.backend() != "tensorflow":  # `tox -e jax`
        with pytest.raises(RecipeError, match="Expected the tensorflow backend for distribute=.multi-worker."):
            check_distribute("multi-worker")
    else:
        check_distribute("multi-worker")
        monkeypatch.delenv("TF_CONFIG")
        with pytest.raises(RecipeError, match="Expected TF_CONFIG"):
            check_distribute("multi-worker")
    check_distribute("mirrored")
    check_distribute(None)
