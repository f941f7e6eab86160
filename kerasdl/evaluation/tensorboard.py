"""The evaluation's numbers and pictures as TensorBoard summaries.

`kerasdl run` writes the training scalars with Keras's TensorBoard callback
(`<run_dir>/logs/<phase>/`); after evaluation, `write_evaluation_summaries`
adds `<run_dir>/logs/evaluation/` with the final metrics as scalars and the
confusion matrix, ROC and precision-recall pictures as images, so
`tensorboard --logdir RUN_DIR/logs` shows the whole run.
"""


from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# Picture file -> image tag, in the order TensorBoard lists them.
PICTURES = {
    "confusion_matrix.png": "evaluation/confusion_matrix",
    "roc.png": "evaluation/roc",
    "precision_recall.png": "evaluation/precision_recall",
}
# metrics.json key -> scalar tag.
SCALARS = {
    "accuracy": "evaluation/accuracy",
    "loss": "evaluation/loss",
    "auc": "evaluation/roc_auc",
    "average_precision": "evaluation/average_precision",
}


def write_evaluation_summaries(
    log_dir: str | os.PathLike,
    pictures_dir: str | os.PathLike,
    metrics: dict[str, Any],
    *,
    step: int,
) -> list[str]:
    """Writes the final metrics and the evaluation pictures to a TensorBoard log.

    Args:
        log_dir: The log folder to write, e.g. `<run_dir>/logs/evaluation`.
        pictures_dir: Where `write_evaluation` put `confusion_matrix.png`,
            `roc.png` and `precision_recall.png` (those present are written).
        metrics: The contents of metrics.json.
        step: The step to log at: the run's last epoch, so the numbers line
            up with the training curves.

    Returns:
        The tags written.

    Example:
    ```python
    write_evaluation_summaries("run/logs/evaluation", "run", metrics, step=7)
    ```
    """
    import tensorflow as tf

    tags = []
    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default(step=step):
        for key, tag in SCALARS.items():
            value = metrics.get(key)
            if isinstance(value, (int, float)):
                tf.summary.scalar(tag, float(value))
                tags.append(tag)
        for name, tag in PICTURES.items():
            path = Path(pictures_dir) / name
            if path.is_file():
                image = tf.io.decode_png(tf.io.read_file(str(path)), channels=3)
                tf.summary.image(tag, image[tf.newaxis], max_outputs=1)
                tags.append(tag)
    writer.close()
    return tags
