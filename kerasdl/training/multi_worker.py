"""Training across worker processes: a distributed loop where Keras 3's `fit` fails.

Under `tf.distribute.MultiWorkerMirroredStrategy` with more than one worker,
Keras 3.15's `model.fit` fails (keras-team/keras#20585: it reduces a
per-replica batch across workers to build the model, then fails reducing
scalar metrics). So a phase under that strategy runs `fit_distributed`
instead: the same epochs, callbacks (history, best model, checkpoints, early
stopping, NaN stop) and optimizer as `fit`, with the step written out:

1. Every worker reads the same global batches, in the same order (the
   datasets shuffle with the recipe's seed), and each replica takes its own
   slice of each batch: replica `r` of `R` gets rows `[r*n//R, (r+1)*n//R)`
   of a batch of `n` images.
2. Each replica's loss is the sum of its examples' losses divided by the
   *global* batch size `n` (plus its share `1/R` of the layers'
   regularization losses), so the optimizer's all-reduce (a sum over
   replicas) gives exactly the gradient of the global batch's mean loss:
   the step `fit` would take on one machine with that batch.
3. The Keras optimizer applies it on every worker (same update everywhere,
   so the copies stay identical); loss and accuracy are summed over replicas.

Validation batches are shared out the same way, and the summed loss and
accuracy reach every worker, so all take the same decisions (best epoch,
early stopping, NaN stop).

Before each phase the workers compare their plans (batches per epoch,
epochs, trainable weights): workers started with different data or options
stop with one line instead of waiting on each other forever. When a worker
stops, the others' next collective op fails, and `peer_failures_reported`
says so in one line.

The options of `fit` this loop does not have are refused up front
(`check_multi_worker_run`): `resume` (the other workers have no copy of the
chief's checkpoint) and `jit_compile`/`steps_per_execution`.
"""


from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import time
from typing import Any

import keras
import numpy as np

from kerasdl.errors import RecipeError, TrainingError
from kerasdl.training.distribute import check_distribute, is_chief, multi_worker_strategy
from kerasdl.training.progress import epoch_line

logger = logging.getLogger(__name__)


def check_multi_worker_run(distribute: str | None, *, resume: bool, training_options) -> None:
    """Refuses the run options that multi-worker training does not support.

    Args:
        distribute: The `distribute` of `RuntimeOptions`.
        resume: Whether the run resumes from a checkpoint.
        training_options: The run's `TrainOptions`.

    Raises:
        RecipeError: for a missing or malformed `TF_CONFIG`, and for
            `resume`, `jit_compile` or `steps_per_execution` above 1
            with `distribute="multi-worker"`.
    """
    if distribute != "multi-worker":
        return
    check_distribute(distribute)
    if resume:
        raise RecipeError(
            "Expected a new run with distribute='multi-worker'. Received: resume=True, but only the "
            "chief holds the checkpoint. Resume on one machine (distribute=None) or start again.",
            argument="resume",
        )
    if training_options.jit_compile is True or training_options.steps_per_execution > 1:
        raise RecipeError(
            "Expected neither jit_compile=True nor steps_per_execution above 1 with "
            f"distribute='multi-worker'. Received: jit_compile={training_options.jit_compile}, "
            f"steps_per_execution={training_options.steps_per_execution}. Leave them out."
        )


@contextlib.contextmanager
def peer_failures_reported(distribute: str | None):
    """Turns a collective op failing because another worker stopped into one line.

    When one worker stops (bad input, a crash, Ctrl-C), the others' next
    collective op fails with a gRPC error; this says so instead of a
    TensorFlow traceback.

    Args:
        distribute: `RuntimeOptions.distribute` (a no-op unless `"multi-worker"`).

    Raises:
        TrainingError: for an `UnavailableError`, `CancelledError`,
            `AbortedError` or `DeadlineExceededError` from TensorFlow.
    """
    if distribute != "multi-worker":
        yield
        return
    import tensorflow as tf

    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.AbortedError,
            tf.errors.DeadlineExceededError) as error:
        detail = " ".join(str(error.message).split())[:200]
        raise TrainingError(
            "Expected every worker named in TF_CONFIG to keep running. Received: "
            f"{type(error).__name__} from a collective op ({detail}). Read the other workers' "
            "output for the first error, then start all of them again."
        ) from None


RUN_FINISHED_KEY = "kerasdl_run_finished"


@contextlib.contextmanager
def workers_leave_together(distribute: str | None):
    """Keeps the other workers running until the chief has finished its run.

    Only the chief evaluates and exports after training; a worker that exited
    meanwhile would stop sending heartbeats, and TensorFlow's coordination
    service would report it as crashed. The chief posts a key to the
    coordination service when it is done (also when it fails); the others
    wait for it before leaving. A chief that dies makes their wait fail,
    which `peer_failures_reported` reports in one line.

    Args:
        distribute: `RuntimeOptions.distribute` (a no-op unless `"multi-worker"`).
    """
    if distribute != "multi-worker":
        yield
        return
    from tensorflow.python.eager import context

    chief = is_chief(distribute)
    try:
        yield
        if not chief:
            context.context().get_config_key_value(RUN_FINISHED_KEY)
    finally:
        if chief:
            context.context().set_config_key_value(RUN_FINISHED_KEY, "done")


def local_tf_configs(workers: int = 2) -> list[str]:
    """`TF_CONFIG` values for `workers` processes on this machine (free 127.0.0.1 ports).

    For trying multi-worker training, and testing it, on one machine. A port
    is free when this returns; another program could take it before the
    workers start.

    Args:
        workers: How many worker processes. Defaults to `2`.

    Returns:
        One JSON string per worker, in index order (index 0 is the chief).

    Example:
    ```python
    for index, config in enumerate(local_tf_configs(2)):
        subprocess.Popen(["kerasdl", "run", ..., "--distribute", "multi-worker"],
                         env={**os.environ, "TF_CONFIG": config})
    ```
    """
    import json
    import socket

    sockets = [socket.socket() for _ in range(workers)]
    try:
        for each in sockets:  # all bound at once, so the ports differ
            each.bind(("127.0.0.1", 0))
        addresses = [f"127.0.0.1:{each.getsockname()[1]}" for each in sockets]
    finally:
        for each in sockets:
            each.close()
    return [json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})
            for index in range(workers)]


def weights_fingerprint(model: keras.Model) -> str:
    """A short hash of every weight of `model`: equal on workers holding the same weights."""
    digest = hashlib.sha256()
    for value in model.get_weights():
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()[:16]


def _per_example_loss(loss: keras.losses.Loss) -> keras.losses.Loss:
    """The same loss, returning one value per example (no reduction)."""
    return type(loss).from_config({**loss.get_config(), "reduction": "none"})


def _label_indices(labels):
    """Class indices of index labels or of one-hot (or mixed) label rows."""
    import tensorflow as tf

    if labels.shape.rank == 2 and labels.shape[-1] != 1:
        return tf.argmax(labels, axis=-1, output_type=tf.int32)
    return tf.cast(tf.reshape(labels, [-1]), tf.int32)


def _replica_share(images, labels):
    """This replica's rows of a global batch, a 0/1 weight per row, and the global batch size."""
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync
    replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
    count = tf.shape(images)[0]
    start, stop = replica * count // replicas, (replica + 1) * count // replicas
    # A last batch smaller than the replicas leaves some an empty slice, which the
    # model cannot take: those run one row of the batch with weight 0 instead.
    rows = tf.range(start, start + tf.maximum(stop - start, 1))
    present = tf.cast(rows < stop, tf.float32)
    rows = tf.minimum(rows, count - 1)
    return tf.gather(images, rows), tf.gather(labels, rows), present, tf.cast(count, tf.float32)


def _make_steps(model, strategy, loss, class_weights):
    """The distributed train and validation steps: each returns the global batch's
    mean loss and its number of correct predictions."""
    import tensorflow as tf

    per_example = _per_example_loss(loss)
    optimizer = model.optimizer

    def correct_count(predictions, indices, present):
        predicted = tf.argmax(predictions, axis=-1, output_type=tf.int32)
        return tf.reduce_sum(tf.cast(predicted == indices, tf.float32) * present)

    def replica_train(images, labels):
        images, labels, present, count = _replica_share(images, labels)
        indices = _label_indices(labels)
        with tf.GradientTape() as tape:
            predictions = model(images, training=True)
            values = per_example(labels, predictions) * tf.gather(class_weights, indices)
            values = tf.cast(values, tf.float32) * present
            value = tf.reduce_sum(values) / count
            if model.losses:
                value += tf.cast(tf.add_n(model.losses), tf.float32) / strategy.num_replicas_in_sync
            scaled = optimizer.scale_loss(value)
        weights = model.trainable_variables
        optimizer.apply(tape.gradient(scaled, weights), weights)
        return tf.stack([value, correct_count(predictions, indices, present)])

    def replica_validate(images, labels):
        images, labels, present, count = _replica_share(images, labels)
        predictions = model(images, training=False)
        values = tf.cast(per_example(labels, predictions), tf.float32) * present
        return tf.stack([tf.reduce_sum(values) / count,
                         correct_count(predictions, _label_indices(labels), present)])

    def distributed(replica_step):
        @tf.function(reduce_retracing=True)
        def step(images, labels):
            # Loss and correct count in one vector: one cross-worker reduction per step.
            totals = strategy.reduce(tf.distribute.ReduceOp.SUM,
                                     strategy.run(replica_step, args=(images, labels)), axis=None)
            return totals[0], totals[1]

        return step

    return distributed(replica_train), distributed(replica_validate)


PLAN = ("training batches", "validation batches", "first epoch", "last epoch",
        "trainable weights", "parameters")


def _check_same_plan(strategy, model, train_data, validation_data, initial_epoch, epochs) -> None:
    """Refuses to start unless every worker plans the same steps.

    Workers started with different data or options would wait on each other's
    collective ops forever, or mix unrelated batches; one gather of a few
    numbers per phase catches that.
    """
    import tensorflow as tf

    def batches(dataset) -> int:
        cardinality = getattr(dataset, "cardinality", None)
        return int(cardinality()) if cardinality else (len(dataset) if dataset is not None else 0)

    plan = [batches(train_data), batches(validation_data), initial_epoch, epochs,
            len(model.trainable_weights), model.count_params()]
    local = strategy.run(lambda: tf.constant([plan], dtype=tf.int64))
    plans = strategy.gather(local, axis=0).numpy()
    differing = [name for name, column in zip(PLAN, plans.T) if len(set(column)) > 1]
    if differing:
        raise RecipeError(
            "Expected every worker to run the same job (same recipe, data and options). Received: "
            + "; ".join(f"{name} {sorted(set(plans[:, PLAN.index(name)].tolist()))}"
                        for name in differing)
            + " across the replicas. Start all workers with the same command."
        )


def _run_epoch(step, dataset) -> tuple[float, float]:
    """Mean loss (weighted by batch size, as `fit` reports it) and accuracy of one pass."""
    total_loss, correct, count = 0.0, 0.0, 0
    for images, labels in dataset:
        batch = int(images.shape[0])
        loss_value, batch_correct = step(images, labels)
        total_loss += float(loss_value) * batch
        correct += float(batch_correct)
        count += batch
    return total_loss / max(count, 1), correct / max(count, 1)


def fit_distributed(
    model: keras.Model,
    train_data,
    *,
    validation_data=None,
    initial_epoch: int = 0,
    epochs: int = 1,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int | str = "auto",
    class_weight: dict[int, float] | None = None,
    **_fit_arguments: Any,
) -> None:
    """`model.fit` for a compiled model under `MultiWorkerMirroredStrategy`.

    Every worker calls it with the same data; see the module docstring for
    the step. The per-epoch logs (`loss`, `accuracy`, `val_loss`,
    `val_accuracy`) and the callbacks are those of `fit`.

    Args:
        model: A model compiled (optimizer and loss) inside the strategy's scope.
        train_data: Batches of `(images, labels)`, the same on every worker.
        validation_data: Validation batches. Defaults to `None`.
        initial_epoch: The 0-based epoch to start at. Defaults to `0`.
        epochs: The epoch to stop before (as in `fit`). Defaults to `1`.
        callbacks: Keras callbacks. Defaults to `None`.
        verbose: `0` prints nothing; otherwise one line per epoch. Defaults
            to `"auto"`.
        class_weight: Loss weight per class index, as in `fit`. Defaults to
            `None`.
        **_fit_arguments: Other `fit` arguments (`shuffle`), ignored.

    Raises:
        RecipeError: outside a `MultiWorkerMirroredStrategy` scope.

    Example:
    ```python
    with distribution_scope("multi-worker"):
        model = build_classifier("mobilenetv2", 5)
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
        fit_distributed(model, data.train, validation_data=data.val, epochs=3)
    ```
    """
    import tensorflow as tf

    strategy = multi_worker_strategy()
    if strategy is None:
        raise RecipeError(
            "Expected fit_distributed inside a MultiWorkerMirroredStrategy scope. Received: "
            f"{type(tf.distribute.get_strategy()).__name__}. Use model.fit there."
        )
    num_classes = int(model.output_shape[-1])
    weights = np.ones(num_classes, dtype=np.float32)
    for index, value in (class_weight or {}).items():
        weights[int(index)] = value
    with strategy.scope():
        _check_same_plan(strategy, model, train_data, validation_data, initial_epoch, epochs)
        train_step, eval_step = _make_steps(model, strategy, model.loss, tf.constant(weights))
    callback_list = keras.callbacks.CallbackList(callbacks or [], model=model, epochs=epochs)
    model.stop_training = False
    callback_list.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        started = time.perf_counter()
        callback_list.on_epoch_begin(epoch)
        loss_value, accuracy = _run_epoch(train_step, train_data)
        logs = {"loss": loss_value, "accuracy": accuracy}
        if validation_data is not None:
            val_loss, val_accuracy = _run_epoch(eval_step, validation_data)
            regularization = float(sum(keras.ops.convert_to_numpy(v) for v in model.losses))
            logs.update({"val_loss": val_loss + regularization, "val_accuracy": val_accuracy})
        if verbose:
            logger.info(epoch_line(epoch, epochs, time.perf_counter() - started, logs))
        callback_list.on_epoch_end(epoch, logs)
        # TerminateOnNaN watches batches, which this loop does not report: stop here instead.
        if model.stop_training or not math.isfinite(loss_value):
            break
    callback_list.on_train_end()

