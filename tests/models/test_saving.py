"""`save_model`: the shipped `.keras` holds the architecture and weights, no optimizer state (issue 27)."""

from __future__ import annotations

import zipfile

import h5py
import keras
import numpy as np

from kerasdl.models.saving import save_model


def test_the_saved_model_has_no_optimizer_state_and_trains_on(tmp_path):
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(512), keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = np.random.default_rng(0).normal(size=(8, 64)), np.arange(8) % 2
    model.fit(x, y, verbose=0)
    model.save(tmp_path / "keras.keras")  # Keras's own save keeps Adam's moments
    save_model(model, tmp_path / "model.keras")
    saved_predictions = model.predict(x, verbose=0)
    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        archive.extract("model.weights.h5", tmp_path)
    with h5py.File(tmp_path / "model.weights.h5") as weights:
        assert "optimizer" not in weights
    assert (tmp_path / "model.keras").stat().st_size < 0.6 * (tmp_path / "keras.keras").stat().st_size
    # the model in memory keeps its optimizer and trains on from where it was
    model.fit(x, y, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 2 and model.compiled
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), saved_predictions, atol=1e-6)
    loaded.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    assert np.isfinite(loaded.fit(x, y, verbose=0).history["loss"][0])
