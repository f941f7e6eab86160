"""The phase engine over `model.fit`: callbacks, checkpoints, feature cache, distribution."""

from kerasdl.training.checkpoints import TrainingState
from kerasdl.training.distribute import distribution_scope
from kerasdl.training.engine import TrainingResult, TrainOptions, train
from kerasdl.training.multi_worker import fit_distributed, local_tf_configs, weights_fingerprint
from kerasdl.training.runtime import RuntimeOptions, seed_everything

__all__ = [
    "RuntimeOptions",
    "TrainOptions",
    "TrainingResult",
    "TrainingState",
    "distribution_scope",
    "fit_distributed",
    "local_tf_configs",
    "seed_everything",
    "train",
    "weights_fingerprint",
]
