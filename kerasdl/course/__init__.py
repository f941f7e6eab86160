"""The course's demonstrations: a training loop by hand and transfer vs. scratch."""

from kerasdl.course.experiment import ArmResult, transfer_vs_scratch
from kerasdl.course.training_loop import fit_by_hand, minibatches, train_step

__all__ = [
    "ArmResult",
    "fit_by_hand",
    "minibatches",
    "train_step",
    "transfer_vs_scratch",
]
