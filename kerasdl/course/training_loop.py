"""Mini-batch gradient descent, visible: `model.fit` written out as a loop.

`model.fit` hides the loop the course teaches. For each epoch, for each
mini-batch of the training data:

1. **forward**: run the model on the batch in training mode;
2. **loss**: compare its predictions with the targets (plus any
   regularization losses the layers add, as `fit` does);
3. **gradients**: differentiate the loss with respect to every trainable
   weight;
4. **optimizer step**: let the optimizer move the weights, e.g.
   `w <- w - learning_rate * gradient` for plain SGD.

`fit_by_hand` is that loop, written with Keras 3's backend-neutral API
(`model(x, training=True)`, the Keras loss, `keras.optimizers`), and it
gives the same weights as `model.fit` on the same data, seed and batches.

Only step 3 needs the backend's own automatic differentiation, so
`train_step` picks it by `keras.backend.backend()`, as Keras's guides
"Writing a training loop from scratch" do for each backend:

```python
# TensorFlow: record the forward pass on a tape, then ask it for gradients.
with tf.GradientTape() as tape:
    predictions = model(x, training=True)                              # 1
    loss_value = loss(y, predictions) + sum(model.losses)              # 2
gradients = tape.gradient(loss_value, model.trainable_variables)       # 3
optimizer.apply(gradients, model.trainable_variables)                  # 4

# JAX: arrays are immutable, so the forward pass is a pure function of the
# weight values (`stateless_call`); jax.value_and_grad differentiates it,
# and the optimizer returns new values instead of changing variables.
def loss_of(trainable, non_trainable):
    predictions, non_trainable, layer_losses = model.stateless_call(
        trainable, non_trainable, x, training=True, return_losses=True)  # 1
    return loss(y, predictions) + sum(layer_losses), non_trainable      # 2
(loss_value, non_trainable), gradients = jax.value_and_grad(
    loss_of, has_aux=True)(trainable, non_trainable)                   # 3
trainable, optimizer_values = optimizer.stateless_apply(
    optimizer_values, gradients, trainable)                            # 4
# ... then assign the new values back into the model's variables.

# PyTorch: backward() leaves each gradient on its weight's .grad.
predictions = model(x, training=True)                                  # 1
loss_value = loss(y, predictions) + sum(model.losses)                  # 2
model.zero_grad()
loss_value.backward()                                                  # 3
gradients = [w.value.grad for w in model.trainable_weights]
with torch.no_grad():
    optimizer.apply(gradients, model.trainable_weights)                # 4
```

Tested (tests/course/test_training_loop.py: same weights and losses as
`model.fit`, SGD and Adam, with an L2-regularized layer) on the TensorFlow
backend (kerasdl's default) and the JAX backend (jax 0.10.2, CPU, in a
subprocess with `KERAS_BACKEND=jax`). The PyTorch path follows Keras's
guide and Keras's own torch trainer; its test runs only where `torch` is
installed, and it was not installed where kerasdl was developed, so the
PyTorch path is untested. Other backends are refused with a clear error.

The same training both ways (no shuffling, no dropout, so they match):

```python
import keras, numpy as np
from kerasdl.course.training_loop import fit_by_hand, minibatches

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

from collections.abc import Callable, Iterable

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


# Step 3 (the gradient) is the one part each backend does its own way: one
# function per backend, each doing a whole step (forward, loss, gradients,
# optimizer step) and returning the batch's loss before the step.
_GRADIENT_STEPS: dict[str, Callable] = {}


def _gradient_step(backend: str) -> Callable[[Callable], Callable]:
    """Registers the function doing one training step on `backend`."""
    def register(step: Callable) -> Callable:
        _GRADIENT_STEPS[backend] = step
        return step
    return register


def _batch_loss(loss: keras.losses.Loss, y, predictions, layer_losses):
    """Step 2: the loss of the batch plus the layers' regularization losses, as `fit` adds them."""
    value = loss(y, predictions)
    if layer_losses:
        value = value + keras.ops.sum(keras.ops.stack(layer_losses))
    return value


@_gradient_step("tensorflow")
def _tensorflow_step(model, x, y, loss, optimizer):
    import tensorflow as tf

    # The tape records the forward pass so that it can run it backwards.
    with tf.GradientTape() as tape:
        predictions = model(x, training=True)                           # 1. forward
        value = _batch_loss(loss, y, predictions, model.losses)         # 2. loss
    weights = model.trainable_variables
    gradients = tape.gradient(value, weights)                           # 3. gradients
    optimizer.apply(gradients, weights)                                 # 4. w <- w - lr * grad (SGD)
    return value


@_gradient_step("jax")
def _jax_step(model, x, y, loss, optimizer):
    import jax

    # JAX differentiates pure functions of arrays, not code that changes
    # variables: so the forward pass takes the weight values as arguments
    # (`stateless_call`) and returns the updated non-trainable values (e.g.
    # batch-norm statistics) instead of assigning them.
    def loss_of(trainable_values, non_trainable_values):
        predictions, non_trainable_values, layer_losses = model.stateless_call(
            trainable_values, non_trainable_values, x, training=True, return_losses=True,
        )                                                               # 1. forward
        return _batch_loss(loss, y, predictions, layer_losses), non_trainable_values  # 2. loss

    if not optimizer.built:  # `apply` builds it on the other backends; `stateless_apply` does not
        optimizer.build(model.trainable_variables)
    trainable_values = [v.value for v in model.trainable_variables]
    non_trainable_values = [v.value for v in model.non_trainable_variables]
    (value, non_trainable_values), gradients = jax.value_and_grad(loss_of, has_aux=True)(
        trainable_values, non_trainable_values,
    )                                                                   # 3. gradients
    trainable_values, optimizer_values = optimizer.stateless_apply(
        [v.value for v in optimizer.variables], gradients, trainable_values,
    )                                                                   # 4. optimizer step
    # The step returned new values; write them back so the model (and the
    # optimizer's state, e.g. Adam's moments and step count) holds them.
    for variables, values in (
        (model.trainable_variables, trainable_values),
        (model.non_trainable_variables, non_trainable_values),
        (optimizer.variables, optimizer_values),
    ):
        for variable, new_value in zip(variables, values, strict=True):
            variable.assign(new_value)
    return value


@_gradient_step("torch")
def _torch_step(model, x, y, loss, optimizer):
    import torch

    predictions = model(x, training=True)                               # 1. forward
    value = _batch_loss(loss, y, predictions, model.losses)             # 2. loss
    model.zero_grad()  # PyTorch adds gradients up across backward() calls: clear the last batch's
    value.backward()                                                    # 3. gradients, left on each .grad
    weights = model.trainable_weights
    gradients = [w.value.grad for w in weights]
    with torch.no_grad():  # the update itself is not part of what is differentiated
        optimizer.apply(gradients, weights)                             # 4. optimizer step
    return value.detach()


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
    trainable weights, and one optimizer update. The gradient comes from the
    current Keras backend's autodiff: `tf.GradientTape` on TensorFlow,
    `jax.value_and_grad` over `model.stateless_call` on JAX,
    `loss.backward()` on PyTorch.

    Args:
        model: A built Keras model.
        x: A batch of inputs.
        y: Their targets.
        loss: The loss function.
        optimizer: The optimizer taking the step.

    Returns:
        The batch's loss before the step.

    Raises:
        KerasdlError: on a backend other than tensorflow, jax or torch.

    Example:
    ```python
    batch_loss = train_step(model, x_batch, y_batch,
                            loss=keras.losses.SparseCategoricalCrossentropy(),
                            optimizer=keras.optimizers.SGD(0.01))
    ```
    """
    backend = keras.backend.backend()
    step = _GRADIENT_STEPS.get(backend)
    if step is None:
        raise KerasdlError(
            f"Expected a Keras backend among {sorted(_GRADIENT_STEPS)} for fit_by_hand. "
            f"Received: {backend}. Set KERAS_BACKEND to one of them."
        )
    # Backend tensors (not NumPy arrays), as `fit` feeds the model.
    x, y = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)
    return float(keras.ops.convert_to_numpy(step(model, x, y, loss, optimizer)))


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
        KerasdlError: on a backend other than tensorflow, jax or torch.

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

