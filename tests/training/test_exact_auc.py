"""The monitored `val_auc` is the exact ROC-AUC of the validation predictions (issue 27).

Keras's `AUC` metric interpolates over thresholds, and on a small validation
split with bunched scores it is far from the exact value that metrics.json
reports; the best epoch and early stopping must choose by the exact one.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from kerasdl.training.metrics import ExactValidationAUC, PositiveClassAUC, exact_roc_auc
from tests.support import run_on_backend
from tests.training.test_training import fresh, tiny_recipe_module, write_class_folder


@pytest.mark.parametrize("seed", range(4))
def test_exact_roc_auc_is_sklearns_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 50)
    scores = rng.integers(0, 6, 50) / 5.0  # many ties
    assert exact_roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert exact_roc_auc(np.ones(4), np.arange(4)) is None


def bunched():
    """A fixed two-class model whose validation scores all lie within 1e-4 of 0.5, and its data."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 1)).astype("float32")
    y = (x[:, 0] + rng.normal(scale=1.0, size=40) > 0).astype("int64")
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2, activation="softmax")])
    model.layers[0].set_weights([np.array([[-1e-4, 1e-4]], "float32"), np.zeros(2, "float32")])
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy",
                  metrics=[PositiveClassAUC()])
    return model, x, y


def test_logged_val_auc_is_the_exact_one_where_keras_interpolates_differently():
    model, x, y = bunched()
    scores = model.predict(x, verbose=0)[:, 1]
    exact = roc_auc_score(y, scores)
    interpolated = model.evaluate(x, y, verbose=0, return_dict=True)["auc"]
    assert abs(interpolated - exact) > 0.05  # the case of the issue: Keras's value is not the ROC-AUC
    class Peek(keras.callbacks.Callback):  # what a later callback (the best model, early stopping) sees
        seen: dict[int, float] = {}

        def on_epoch_end(self, epoch, logs=None):
            self.seen[epoch] = logs["val_auc"]

    for validation in ((x, y), __import__("tensorflow").data.Dataset.from_tensor_slices((x, y)).batch(8)):
        peek = Peek()
        peek.seen = {}
        history = model.fit(x, y, validation_data=validation, epochs=2, verbose=0,
                            callbacks=[ExactValidationAUC(validation), peek])
        assert history.history["val_auc"] == pytest.approx([exact, exact], abs=1e-6)
        assert peek.seen == pytest.approx({0: exact, 1: exact}, abs=1e-6)


@pytest.mark.parametrize("one_hot", [False, True])
def test_one_prediction_pass_gives_every_validation_log_as_evaluate_does(one_hot):
    # fit without validation_data: the callback's val_loss and val_accuracy are evaluate's
    # (label smoothing included), and val_auc is the exact one.
    model, x, y = bunched()
    model.layers[0].set_weights([np.array([[-2.0, 2.0]], "float32"), np.array([0.3, 0.0], "float32")])
    labels = keras.utils.to_categorical(y, 2) if one_hot else y
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=0.1) if one_hot else "sparse_categorical_crossentropy"
    model.compile(keras.optimizers.SGD(0.0), loss, metrics=["accuracy", PositiveClassAUC()])
    expected = model.evaluate(x, labels, verbose=0, return_dict=True)
    validation = __import__("tensorflow").data.Dataset.from_tensor_slices((x, labels)).batch(6)
    history = model.fit(x, labels, epochs=1, verbose=0,
                        callbacks=[ExactValidationAUC(validation, loss_and_accuracy=True)]).history
    assert history["val_loss"][0] == pytest.approx(expected["loss"], abs=1e-6)
    assert history["val_accuracy"][0] == pytest.approx(expected["accuracy"], abs=1e-6)
    assert 0.5 < expected["accuracy"] < 1.0
    assert history["val_auc"][0] == pytest.approx(roc_auc_score(y, model.predict(x, verbose=0)[:, 1]), abs=1e-9)


def test_the_best_epoch_is_chosen_by_the_exact_val_auc(tmp_path):
    # Head phase on cached features, fine-tuning end to end: every epoch's val_auc in
    # history.csv is the exact ROC-AUC, and the best epoch is the one with the highest.
    from kerasdl.training.engine import train

    # A head scaled down 1e4 times and rates near zero: the scores bunch within 1e-3 of 0.5,
    # where Keras's thresholds cannot tell them apart.
    recipe = tiny_recipe_module().recipe()
    recipe.phases[1].epochs = 2
    for phase in recipe.phases:
        phase.learning_rate = 1e-9
    folder = write_class_folder(tmp_path / "stripes", per_class=10, size=24)
    data, model = fresh(recipe, folder)
    kernel, bias = model.get_layer("predictions").get_weights()
    model.get_layer("predictions").set_weights([kernel * 1e-4, bias])
    result = train(model, data, recipe, run_dir=tmp_path, verbose=0)
    values = [row["val_auc"] for row in result.history]
    assert result.monitor == "val_auc"
    assert result.best_metric == max(values)
    best = [row for row in result.history if row["epoch"] == result.best_epoch][0]
    labels = np.concatenate([np.asarray(batch[1]) for batch in data.val])
    scores = model.predict(data.val, verbose=0)[:, 1]  # the best weights, restored
    assert best["val_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    evaluated = model.evaluate(data.val, verbose=0, return_dict=True)  # compiled by the last phase
    assert (best["val_loss"], best["val_accuracy"]) == pytest.approx((evaluated["loss"], evaluated["accuracy"]),
                                                                     abs=1e-5)
    interpolated = PositiveClassAUC()
    interpolated.update_state(labels, model.predict(data.val, verbose=0))
    assert abs(float(interpolated.result()) - best["val_auc"]) > 0.01  # Keras's value would differ
    saved = keras.saving.load_model(tmp_path / "model.keras")
    assert roc_auc_score(labels, saved.predict(data.val, verbose=0)[:, 1]) == pytest.approx(max(values), abs=1e-6)


SCRIPT = """
import numpy as np, keras, tensorflow as tf
from sklearn.metrics import roc_auc_score
from tests.training.test_exact_auc import bunched
from kerasdl.training.metrics import ExactValidationAUC
model, x, y = bunched()
validation = tf.data.Dataset.from_tensor_slices((x, keras.utils.to_categorical(y, 2))).batch(8)
history = model.fit(x, y, validation_data=(x, y), epochs=1, verbose=0, callbacks=[ExactValidationAUC(validation)])
print(abs(history.history["val_auc"][0] - roc_auc_score(y, model.predict(x, verbose=0)[:, 1])))
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_exact_val_auc_on_other_backends(backend):
    assert float(run_on_backend(SCRIPT, backend).split()[-1]) < 1e-6


def test_the_head_pooling_probe_scores_by_the_exact_val_auc():
    # One feature, scaled so a linear head's scores all lie within 1e-5 of 0.5: the probe's
    # best val_auc must be the exact ROC-AUC of that feature (or of its negative).
    from types import SimpleNamespace

    from kerasdl.app.head_choice import _best_validation

    recipe = tiny_recipe_module().recipe()
    recipe.phases[0].learning_rate = 1e-9
    rng = np.random.default_rng(1)
    split = {}
    for name, count in (("train", 16), ("val", 12)):
        labels = np.arange(count) % 2
        split[name] = SimpleNamespace(labels=labels, features=((labels + rng.normal(scale=0.8, size=count))
                                                               * 1e-5).astype("float32")[:, None])
    expected = roc_auc_score(split["val"].labels, split["val"].features[:, 0])
    assert abs(expected - 0.5) > 0.1
    value = _best_validation(split["train"], split["val"], slice(None), recipe, "val_auc")
    assert min(abs(value - expected), abs(value - (1 - expected))) < 1e-6
