"""The explicit mini-batch loop gives the same weights as model.fit, on each Keras backend."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from kerasdl.course.training_loop import fit_by_hand, minibatches, train_step
from kerasdl.errors import KerasdlError
from tests.support import run_on_backend

_OPTIMIZERS = {
    "sgd": lambda: keras.optimizers.SGD(0.1),
    "adam": lambda: keras.optimizers.Adam(0.01),
}


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")
    return x, y


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((5,)),
        keras.layers.Dense(8, activation="tanh", kernel_regularizer=keras.regularizers.L2(1e-3)),
        keras.layers.Dense(2, activation="softmax"),
    ])


def check_fit_by_hand_matches_model_fit(optimizer_name: str) -> None:
    """Trains two copies of one model, by `fit` and by `fit_by_hand`, and compares them.

    Module-level (not only a test) so that the other-backend tests can run it
    in a subprocess with another KERAS_BACKEND.
    """
    make_optimizer = _OPTIMIZERS[optimizer_name]
    x, y = _data()
    fitted = _model()
    by_hand = _model()
    by_hand.set_weights(fitted.get_weights())
    start = [w.copy() for w in fitted.get_weights()]

    fitted.compile(make_optimizer(), keras.losses.SparseCategoricalCrossentropy())
    history = fitted.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    losses = fit_by_hand(by_hand, minibatches(x, y, batch_size=8), epochs=2,
                         loss=keras.losses.SparseCategoricalCrossentropy(), optimizer=make_optimizer())

    for a, b, before in zip(fitted.get_weights(), by_hand.get_weights(), start, strict=True):
        assert not np.allclose(a, before)  # both really trained
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(losses, history.history["loss"], rtol=1e-4)


@pytest.mark.parametrize("optimizer_name", sorted(_OPTIMIZERS))
def test_fit_by_hand_matches_model_fit(optimizer_name):
    check_fit_by_hand_matches_model_fit(optimizer_name)


# The backend is fixed when Keras is first imported, so each other backend
# gets a fresh interpreter with KERAS_BACKEND set, running the same check.
_CHECK_EVERY_OPTIMIZER = f"""
import sys
sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(Path(__file__).parents[2])!r}]
import keras
assert keras.backend.backend() == sys.argv[1], keras.backend.backend()
import test_training_loop
for name in {sorted(_OPTIMIZERS)!r}:
    test_training_loop.check_fit_by_hand_matches_model_fit(name)
print("fit_by_hand matches model.fit on", keras.backend.backend())
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_fit_by_hand_matches_model_fit_on_other_backends(backend):
    assert f"matches model.fit on {backend}" in run_on_backend(_CHECK_EVERY_OPTIMIZER, backend)


def test_train_step_refuses_an_unsupported_backend(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "numpy")
    x, y = _data()
    with pytest.raises(KerasdlError, match="Received: numpy"):
        train_step(_model(), x[:8], y[:8], loss=keras.losses.SparseCategoricalCrossentropy(),
                   optimizer=keras.optimizers.SGD(0.1))


def test_minibatches_cover_the_data_in_order():
    x, y = _data()
    batches = minibatches(x, y, batch_size=16)
    assert [len(b[0]) for b in batches] == [16, 16, 8]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
