"""Mini-batch gradient descent, visible: `model.fit` written out as a loop.

`model.fit` hides the loop the course teaches. For each epoch, for each
mini-batch of the training data: run the model forward, compute the loss,
compute the gradient of the loss with respect to every trainable weight,
and let the optimizer take one step. `fit_by_hand` is that loop, written
with Keras 3's API (`keras.ops`, `model(x, training=True)`,
`optimizer.apply`), and it gives the same weights as `model.fit` on the
same data, seed and batches (see tests/test_training_loop.py).

Only the gradient needs a backend's own autodiff: this module uses the
TensorFlow backend's `tf.GradientTape` (kerasdl's default backend). On JAX
the same step is `jax.value_and_grad` over `model.stateless_call`; on
PyTorch, `loss.backward()`.

The same training both ways (no shuffling, no dropout, so they match):

```python
import keras, numpy as np
from kerasdl.training_loop import fit_by_hand, minibatches

x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
y = (x.sum(axis=1) > 0).astype("int32")

def make_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    return model

# 1. The one-liner.
fitted = make_model()
fitted.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy())
fitted.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)

# 2. The loop it runs: forward, loss, gradients, optimizer step, per mini-batch.
by_hand = make_model()
fit_by_hand(by_hand, minibatches(x, y, batch_size=16), epochs=3,
            loss=keras.losses.SparseCategoricalCrossentropy(),
            optimizer=keras.optimizers.SGD(0.1))

for a, b in zip(fitted.get_weights(), by_hand.get_weights()):
    np.testing.assert_allclose(a, b, atol=1e-5)
```
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
import numpy as np

from kerasdl.errors import KerasdlError


def minibatches(x: np.ndarray, y: np.ndarray, *, batch_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cuts arrays into consecutive mini-batches, in order (as `fit(shuffle=False)`).

    Args:
        x: Inputs, first axis the examples.
        y: Targets, parallel to `x`.
        batch_size: Examples per batch; the last batch may be smaller.

    Returns:
        A list of `(x_batch, y_batch)` pairs.

    Example:
    ```python
    batches = minibatches(x, y, batch_size=32)
    ```
    """
    if batch_size <= 0:
        raise ValueError(f"Expected a positive batch size. Received: {batch_size}.")
    return [(x[start:start + batch_size], y[start:start + batch_size]) for start in range(0, len(x), batch_size)]


def train_step(
    model: keras.Model,
    x,
    y,
    *,
    loss: keras.losses.Loss,
    optimizer: keras.optimizers.Optimizer,
) -> float:
    """One step of mini-batch gradient descent on one batch.

    Forward pass in training mode, the loss (plus any regularization losses
    the layers add, as `fit` does), its gradient with respect to the
    trainable weights, and one optimizer update.

    Args:
        model: A built Keras model.
        x: A batch of inputs.
        y: Their targets.
        loss: The loss function.
        optimizer: The optimizer taking the step.

    Returns:
        The batch's loss before the step.

    Raises:
        KerasdlError: on a backend other than TensorFlow.
    """
    if keras.backend.backend() != "tensorflow":
        raise KerasdlError(
            "Expected the tensorflow Keras backend for fit_by_hand. Received: "
            f"{keras.backend.backend()}. Set KERAS_BACKEND=tensorflow."
        )
    import tensorflow as tf

    with tf.GradientTape() as tape:
        predictions = model(x, training=True)                # forward
        value = loss(y, predictions)                         # loss of the batch
        if model.losses:
            value = value + keras.ops.sum(keras.ops.stack(model.losses))
    weights = model.trainable_variables
    gradients = tape.gradient(value, weights)                # backward
    optimizer.apply(gradients, weights)                      # w <- w - lr * grad (SGD)
    return float(keras.ops.convert_to_numpy(value))


def fit_by_hand(
    model: keras.Model,
    batches: Iterable,
    *,
    loss: keras.losses.Loss,
    optimizer: keras.optimizers.Optimizer,
    epochs: int = 1,
) -> list[float]:
    """Trains `model` with an explicit loop over epochs and mini-batches.

    Args:
        model: A built Keras model.
        batches: `(x, y)` mini-batches, e.g. from `minibatches` or a
            `tf.data.Dataset`; iterated once per epoch.
        loss: The loss function, e.g. `SparseCategoricalCrossentropy()`.
        optimizer: The optimizer, e.g. `keras.optimizers.SGD(0.01)`.
        epochs: Passes over the data. Defaults to `1`.

    Returns:
        The mean training loss of each epoch.

    Raises:
        KerasdlError: on a backend other than TensorFlow.

    Example:
    ```python
    history = fit_by_hand(model, minibatches(x, y, batch_size=32), epochs=5,
                          loss=keras.losses.SparseCategoricalCrossentropy(),
                          optimizer=keras.optimizers.SGD(0.01))
    ```
    """
    history = []
    for _ in range(epochs):
        losses = [train_step(model, x, y, loss=loss, optimizer=optimizer) for x, y in batches]
        history.append(float(np.mean(losses)) if losses else float("nan"))
    return history
