"""The explicit mini-batch loop gives the same weights as model.fit."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasdl.training_loop import fit_by_hand, minibatches


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


@pytest.mark.parametrize("make_optimizer", [
    lambda: keras.optimizers.SGD(0.1),
    lambda: keras.optimizers.Adam(0.01),
], ids=["sgd", "adam"])
def test_fit_by_hand_matches_model_fit(make_optimizer):
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


def test_minibatches_cover_the_data_in_order():
    x, y = _data()
    batches = minibatches(x, y, batch_size=16)
    assert [len(b[0]) for b in batches] == [16, 16, 8]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
