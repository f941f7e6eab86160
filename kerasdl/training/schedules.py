"""Learning-rate schedules of the phases beyond Keras's own."""


from __future__ import annotations

import keras

__all__ = ["BudgetCosineDecay"]


@keras.saving.register_keras_serializable(package="kerasdl")
class BudgetCosineDecay(keras.optimizers.schedules.CosineDecay):
    """Keras's warmup + cosine decay, whose end a time budget can bring forward.

    `decay_steps` is a variable that the compiled train step reads, so
    `end_by` shortens the schedule during `fit`: a phase that a time budget
    cuts short still anneals its learning rate instead of stopping at a high
    one. JAX's compiled step reads the value it was traced with, so there
    `DeadlineStop` traces the step again after `end_by` changes it.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.decay_steps = keras.Variable(float(self.decay_steps), dtype="float32", trainable=False,
                                          name="budget_decay_steps")

    def end_by(self, total_steps: int) -> bool:
        """Makes the schedule reach its end at `total_steps` (warmup included), if sooner.

        Returns:
            Whether the end moved.
        """
        decay_steps = max(1.0, float(total_steps - (self.warmup_steps or 0)))
        if decay_steps >= float(self.decay_steps.numpy()):
            return False
        self.decay_steps.assign(decay_steps)
        return True

    def has_ended(self, step: int) -> bool:
        """Whether `step` is at or past the end, where the rate stays at its floor."""
        return step >= (self.warmup_steps or 0) + float(self.decay_steps.numpy())

    def get_config(self):
        return {**super().get_config(), "decay_steps": int(self.decay_steps.numpy())}
