"""How a run uses the machine: seeds, determinism, mixed precision.

These are process-wide settings of Keras and TensorFlow, set once before the
model is built (a dtype policy only affects layers made after it is set).
"""


from __future__ import annotations

import contextlib
import dataclasses
import logging
import random

import keras
import numpy as np

from kerasdl.errors import RecipeError

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class RuntimeOptions:
    """Process-wide settings of a run.

    Attributes:
        deterministic: Make TensorFlow ops deterministic
            (`tf.config.experimental.enable_op_determinism`), so two runs
            with the same seed on the same machine give identical numbers.
            Slower; some GPU ops then raise instead of running.
        mixed_precision: Compute in 16-bit floats with float32 variables:
            `mixed_float16` on a GPU, `mixed_bfloat16` on CPU (and TPU). The
            head's output layer stays float32.
        distribute: `None`, `"mirrored"` or `"multi-worker"` (see
            `kerasdl.training.distribute`).
    """

    deterministic: bool = False
    mixed_precision: bool = False
    distribute: str | None = None


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seeds Python, NumPy and the Keras backend; optionally makes ops deterministic.

    The data split and the shuffle order take the recipe's seed directly.

    Args:
        seed: The seed.
        deterministic: Also enable TensorFlow's op determinism. Defaults to
            `False`.

    Example:
    ```python
    seed_everything(0, deterministic=True)
    ```
    """
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)  # Python, NumPy and the backend's own seed
    if deterministic:
        try:
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()
        except ImportError:  # other backends: seeded ops are deterministic on CPU
            pass


def mixed_precision_policy() -> str:
    """The mixed-precision policy for this machine's accelerator.

    Returns:
        `"mixed_float16"` with a GPU, otherwise `"mixed_bfloat16"`.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            return "mixed_float16"
    elif keras.backend.backend() == "jax":
        import jax

        if any(device.platform == "gpu" for device in jax.devices()):
            return "mixed_float16"
    return "mixed_bfloat16"


@contextlib.contextmanager
def dtype_policy(mixed_precision: bool):
    """Sets the mixed-precision policy for the `with` block, then restores it.

    Args:
        mixed_precision: Whether to use mixed precision; `False` leaves the
            policy as it is.

    Yields:
        The policy name in force.

    Raises:
        RecipeError: if this backend or device cannot compute in it.
    """
    if not mixed_precision:
        yield keras.config.dtype_policy().name
        return
    previous = keras.config.dtype_policy()
    name = mixed_precision_policy()
    try:
        keras.config.set_dtype_policy(name)
    except ValueError as error:
        raise RecipeError(
            f"Expected a device that supports {name}. Received: {error}. Run without mixed_precision=True.",
            argument="mixed_precision",
        ) from None
    logger.info(f"Mixed precision: {name} (variables and the output layer stay float32).")
    try:
        yield name
    finally:
        keras.config.set_dtype_policy(previous)


def float32_copy(model: keras.Model, build) -> keras.Model:
    """A float32 copy of a mixed-precision model, with the same weights.

    Mixed precision only changes how layers compute; the variables are float32
    either way, so they copy across unchanged. The copy is what is saved and
    exported (the TFLite converter does not take bfloat16 ops).

    Args:
        model: The trained model.
        build: Builds the same architecture (called under the float32 policy).

    Returns:
        The float32 model.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        copy = build()
    finally:
        keras.config.set_dtype_policy(previous)
    copy.set_weights(model.get_weights())
    return copy

