"""Data-parallel training on an existing engine: tf.distribute or keras.distribution.

- `"mirrored"`: one process, every local GPU (or, with no GPU, the CPU split
  into `KERASDL_CPU_DEVICES` logical devices, for testing) holds a copy of
  the model; each step splits the batch across them and averages the
  gradients. TensorFlow backend: `tf.distribute.MirroredStrategy`; JAX
  backend: `keras.distribution.DataParallel` over the local devices.
- `"multi-worker"`: the same across several processes or machines, with
  `tf.distribute.MultiWorkerMirroredStrategy` configured by the `TF_CONFIG`
  environment variable of each worker (TensorFlow backend only). Keras 3's
  `fit` fails under that strategy with more than one worker
  (keras-team/keras#20585), so its phases train through
  `kerasdl.training.multi_worker.fit_distributed`, a distributed loop with the same
  epochs, callbacks and optimizer, whose steps are those of one process with
  the same global batch. `--resume`, `--jit-compile` and
  `--steps-per-execution` are refused there; the feature cache is off.

Launching multi-worker: run the same `kerasdl run ... --distribute
multi-worker` command on every machine (same recipe, data, seed and
options; the data must be readable on each), each with a `TF_CONFIG` naming
all workers and its own index::

    # on machine a ("index": 1 on machine b)
    export TF_CONFIG='{"cluster": {"worker": ["a:12345", "b:12345"]},
                       "task": {"type": "worker", "index": 0}}'
    kerasdl run RECIPE --data DIR --output runs/x --distribute multi-worker

On one machine, two processes with `127.0.0.1:PORT` addresses do the same.
The workers wait for each other at start-up and at every step.

Batch size and learning rate: the recipe's `batch_size` is the *global*
batch, split evenly over the replicas (a batch size that is not a multiple
of their number is refused under `mirrored`, and each epoch leaves out its
last `count % replicas` images, see `even_batches`); one step still sees
`batch_size` images, so the epoch has as many steps, the schedule as many steps, and the recipe's learning rate stays right. To use
more devices for a larger batch, raise `batch_size` and scale the learning
rate with it (linearly, with a few warmup epochs, is the usual rule: twice
the batch, twice the rate).

Every worker runs the same program; the first worker (the chief: `chief`,
or else `worker` 0) writes the run folder, the others write to a temporary
folder that is removed at the end. Each worker reads every image and keeps
its replicas' share of each batch, so that all see the same batches in the
same order (the recipe's seed); reading is not split across machines.
"""


from __future__ import annotations

import contextlib
import json
import logging
import math
import os

import keras

from kerasdl.errors import RecipeError

logger = logging.getLogger(__name__)

STRATEGIES = ("mirrored", "multi-worker")
CPU_DEVICES_ENV = "KERASDL_CPU_DEVICES"


def _split_cpu(count: int) -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    if tf.config.get_logical_device_configuration(cpu) == wanted:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError:
        raise RecipeError(
            f"Expected to split the CPU into {count} devices ({CPU_DEVICES_ENV}={count}) before "
            "TensorFlow starts. Received: TensorFlow had already started. Set the variable "
            "and start a new process."
        ) from None


def _cpu_device_count() -> int:
    text = os.environ.get(CPU_DEVICES_ENV, "")
    if not text:
        return 0
    if not text.isdigit() or int(text) < 1:
        raise RecipeError(f"Expected {CPU_DEVICES_ENV} to be a positive integer. Received: {text!r}.")
    return int(text)


def tf_config_task() -> tuple[str, int] | None:
    """The `(task type, index)` of this worker from `TF_CONFIG`, or `None`.

    Raises:
        RecipeError: for `TF_CONFIG` that is not JSON with a cluster listing
            this task's type and a task whose index is in that list.
    """
    text = os.environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        config = json.loads(text)
        task = config["task"]
        kind, index = str(task["type"]), int(task["index"])
        addresses = config["cluster"][kind]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise RecipeError(
            "Expected TF_CONFIG as JSON with cluster and task, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            f'"task": {{"type": "worker", "index": 0}}}}. Received: {text[:80]!r}.'
        ) from None
    if not isinstance(addresses, list) or not 0 <= index < len(addresses):
        raise RecipeError(
            f"Expected TF_CONFIG's task index to name one of the cluster's {kind} addresses. "
            f"Received: index {index} of {addresses!r}. Number the workers 0, 1, ... in list order."
        )
    return kind, index


def is_chief(distribute: str | None) -> bool:
    """Whether this process writes the run folder (always, unless multi-worker)."""
    if distribute != "multi-worker":
        return True
    task = tf_config_task()
    if task is None or task[0] == "chief":
        return True
    has_chief = bool(json.loads(os.environ["TF_CONFIG"]).get("cluster", {}).get("chief"))
    return task == ("worker", 0) and not has_chief


def check_distribute(distribute: str | None) -> None:
    """Checks a `distribute` value against the backend and environment.

    Raises:
        RecipeError: for an unknown name, multi-worker without `TF_CONFIG`,
            or multi-worker on a backend other than TensorFlow.
    """
    if distribute is None:
        return
    if distribute not in STRATEGIES:
        raise RecipeError(
            f"Expected distribute from: {', '.join(STRATEGIES)}. Received: distribute={distribute!r}.",
            argument="distribute",
        )
    if distribute == "multi-worker":
        if keras.backend.backend() != "tensorflow":
            raise RecipeError(
                "Expected the tensorflow backend for distribute='multi-worker'. Received: "
                f"KERAS_BACKEND={keras.backend.backend()}. Use KERAS_BACKEND=tensorflow.",
                argument="distribute",
            )
        if tf_config_task() is None:
            raise RecipeError(
                "Expected TF_CONFIG to describe the cluster for distribute='multi-worker'. "
                "Received: no TF_CONFIG. Set it on every worker (see kerasdl.training.distribute).",
                argument="distribute",
            )


@contextlib.contextmanager
def distribution_scope(distribute: str | None):
    """Builds the strategy and enters its scope; build and train the model inside.

    Args:
        distribute: `None` (no-op), `"mirrored"` or `"multi-worker"`.

    Yields:
        The number of replicas the global batch is split over.

    Raises:
        RecipeError: see `check_distribute`.

    Example:
    ```python
    with distribution_scope("mirrored") as replicas:
        model = build_classifier("mobilenetv2", 5)
        train(model, data, recipe)
    ```
    """
    check_distribute(distribute)
    if distribute is None:
        yield 1
        return
    if keras.backend.backend() == "jax":
        devices = keras.distribution.list_devices()
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        logger.info(f"Distributing (keras.distribution.DataParallel) over {len(devices)} devices.")
        try:
            yield len(devices)
        finally:
            keras.distribution.set_distribution(previous)
        return
    if keras.backend.backend() != "tensorflow":
        raise RecipeError(
            "Expected the tensorflow or jax backend for distribute. Received: "
            f"KERAS_BACKEND={keras.backend.backend()}.",
            argument="distribute",
        )
    import tensorflow as tf

    if distribute == "multi-worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        count = _cpu_device_count()
        if count and not tf.config.list_physical_devices("GPU"):
            _split_cpu(count)
            strategy = tf.distribute.MirroredStrategy(
                [f"/cpu:{i}" for i in range(count)],
                cross_device_ops=tf.distribute.ReductionToOneDevice(),
            )
        else:
            strategy = tf.distribute.MirroredStrategy()
    logger.info(f"Distributing ({distribute}) over {strategy.num_replicas_in_sync} replicas: "
                "each step splits the global batch (batch_size) between them.")
    with strategy.scope():
        yield strategy.num_replicas_in_sync


def multi_worker_strategy():
    """The active `MultiWorkerMirroredStrategy`, or `None` outside one."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    return strategy if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) else None


def fit_replicas() -> int:
    """Replicas that Keras's `fit` splits each batch over in the current scope.

    1 outside a tf.distribute strategy, on other backends, and under
    multi-worker training (kerasdl's own loop handles uneven batches there).
    """
    if keras.backend.backend() != "tensorflow" or multi_worker_strategy() is not None:
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def check_batch_splits(batch_size: int, replicas: int) -> None:
    """Refuses a global batch that does not split evenly over the replicas.

    Raises:
        RecipeError: when `batch_size` is not a multiple of `replicas`.
    """
    if replicas > 1 and batch_size % replicas:
        raise RecipeError(
            f"Expected a batch size that is a multiple of the {replicas} replicas it is split over. "
            f"Received: batch_size={batch_size}. Use {batch_size - batch_size % replicas or replicas} or "
            f"{batch_size + replicas - batch_size % replicas}.",
            argument="batch_size",
        )


def even_batches(dataset, replicas: int, *, count: int, batch_size: int):
    """Trims each batch of `dataset` to a multiple of `replicas`, dropping empty ones.

    Keras 3's `fit` under MirroredStrategy fails on a batch that does not split
    evenly over the replicas ("Inputs to operation AddN ... must have the same
    size and shape"), which is what the last batch of an epoch usually is. So
    under it each epoch leaves out its last `count % replicas` images (fewer
    than the number of replicas; a different few each epoch when the data is
    shuffled). The final evaluation runs outside the strategy, on every image.

    Args:
        dataset: A batched `tf.data.Dataset` of `(images, labels[, weights])`.
        replicas: From `fit_replicas()`.
        count: The images one pass of `dataset` holds, and
        batch_size: its batch size, so the trimmed dataset can state its
            number of batches (Keras warns of running out of data otherwise).

    Returns:
        The dataset, unchanged when `replicas` is 1 or it is `None`.
    """
    if replicas <= 1 or dataset is None:
        return dataset
    import tensorflow as tf

    def trim(*batch):
        size = tf.shape(tf.nest.flatten(batch)[0])[0]
        keep = size - size % replicas
        return tf.nest.map_structure(lambda tensor: tensor[:keep], batch)

    def not_empty(*batch):
        return tf.shape(tf.nest.flatten(batch)[0])[0] > 0

    batches = math.ceil((count - count % replicas) / batch_size)
    return dataset.map(trim).filter(not_empty).apply(tf.data.experimental.assert_cardinality(batches))

