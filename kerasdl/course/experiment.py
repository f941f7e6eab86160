"""Transfer vs. scratch, measured on the user's own data.

The course claims transfer learning works when data is scarce.
`transfer_vs_scratch` tests it: for growing stratified fractions of the
training images it trains the same network twice, from pretrained weights
(backbone frozen, new head trained: the course's "replace the output layer")
and from random weights (everything trains, BatchNorm included), with the
same optimizer, epochs and seed, and records the validation accuracy of
each. The subsets are nested: the images of a smaller fraction are part of
every larger one. Results go to a CSV, a markdown table and a plot of
validation accuracy against the number of training images.
"""


from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from kerasdl._util.files import atomic_path, write_text_atomically
from kerasdl._util.paths import check_output_folder
from kerasdl._util.plotting import pyplot
from kerasdl._util.run_folder import check_apart_from_data
from kerasdl.backbones.registry import check_backbone_options, default_image_size, get_backbone
from kerasdl.backbones.weights import check_weights_available, normalize_weights
from kerasdl.data.load import load_data
from kerasdl.data.pipeline import make_dataset
from kerasdl.data.sources import source_folders
from kerasdl.errors import RecipeError, WeightsError
from kerasdl.models.classifier import build_classifier
from kerasdl.recipe import BackboneConfig, Phase, Recipe
from kerasdl.training.engine import train

logger = logging.getLogger(__name__)

ARMS = ("transfer", "scratch")
RESULT_NAMES = ("transfer_vs_scratch.csv", "transfer_vs_scratch.md", "transfer_vs_scratch.png")


@dataclasses.dataclass
class ArmResult:
    """One trained network of the experiment.

    Attributes:
        arm: `"transfer"` or `"scratch"`.
        fraction: Fraction of the training images used.
        train_images: Number of training images used.
        val_images: Number of validation images.
        best_val_accuracy: Best validation accuracy over the epochs (the
            model kerasdl keeps).
        final_val_accuracy: Validation accuracy after the last epoch.
        trainable_parameters: Parameters that trained.
        seconds: Training time.
    """

    arm: str
    fraction: float
    train_images: int
    val_images: int
    best_val_accuracy: float
    final_val_accuracy: float
    trainable_parameters: int
    seconds: float


def parse_fractions(text: str) -> list[float]:
    """Parses `"0.1,0.25,1"` into sorted unique fractions in (0, 1].

    Raises:
        RecipeError: for a value that is not a number in (0, 1].
    """
    values = []
    for item in str(text).split(","):
        try:
            value = float(item)
        except ValueError:
            value = math.nan
        if not 0.0 < value <= 1.0:
            raise RecipeError(
                f"Expected fractions in (0, 1] separated by commas, e.g. 0.1,0.25,0.5,1.0. "
                f"Received: {item.strip()!r} in {text!r}."
            )
        values.append(value)
    return sorted(set(values))


def nested_stratified_indices(labels, fraction: float, *, seed: int) -> list[int]:
    """Indices of a stratified subset; subsets of one seed are nested.

    Each class is shuffled once by `seed` and its first
    `round(fraction * count)` images (at least one) are taken, so a larger
    fraction always contains a smaller one.

    Args:
        labels: Class index of each image.
        fraction: Fraction to keep, in (0, 1].
        seed: Seed of the per-class order.

    Returns:
        Sorted indices into `labels`.
    """
    labels = np.asarray(labels, dtype=int)
    chosen: list[int] = []
    for label in np.unique(labels):
        indices = np.flatnonzero(labels == label)
        order = np.random.default_rng([seed, int(label)]).permutation(indices)
        chosen += order[: max(1, round(fraction * len(indices)))].tolist()
    return sorted(chosen)


def transfer_vs_scratch(
    data_source: str,
    *,
    backbone: str,
    output_dir: str | os.PathLike,
    fractions: list[float] = (0.1, 0.25, 0.5, 1.0),
    weights: str = "imagenet",
    backbone_options: dict[str, Any] | None = None,
    image_size: int | None = None,
    epochs: int = 5,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    seed: int = 0,
    verbose: int | str = 2,
) -> list[ArmResult]:
    """Trains one network from pretrained and from random weights on growing data.

    Both arms use Adam at `learning_rate` for `epochs` epochs, no
    augmentation, the same seed and the same head (dropout 0.2). The
    transfer arm trains the new head on the frozen pretrained backbone; the
    scratch arm trains every layer from random weights, the backbone in
    training mode (`trainable="scratch"`).

    Args:
        data_source: A class-folder tree (with or without val/).
        backbone: A registered backbone name.
        output_dir: Folder for the CSV, markdown table and plot.
        fractions: Fractions of the training images, each in (0, 1].
            Defaults to `(0.1, 0.25, 0.5, 1.0)`.
        weights: Pretrained weights of the transfer arm: `"imagenet"` or a
            local weights file. Defaults to `"imagenet"`.
        backbone_options: Backbone options such as `{"alpha": 0.25}`.
            Defaults to `None`.
        image_size: Square image size. Defaults to the backbone's own.
        epochs: Epochs per training. Defaults to `5`.
        batch_size: Mini-batch size. Defaults to `16`.
        learning_rate: Adam's learning rate. Defaults to `1e-3`.
        seed: Seed of the split, the subsets and the initial weights.
            Defaults to `0`.
        verbose: `model.fit` verbosity. Defaults to `2`.

    Returns:
        One `ArmResult` per fraction and arm.

    Raises:
        RecipeError: for bad fractions, epochs, or a backbone/option error.
        WeightsError: for missing or unfitting weights, or `weights` none.
        DataError: for a bad data source.
        RunFolderError: for an output folder that cannot be written or
            overlaps the data.

    Example:
    ```python
    results = transfer_vs_scratch("hymenoptera/", backbone="mobilenet", image_size=96,
                                  weights="mobilenet_2_5_224_tf_no_top.h5",
                                  backbone_options={"alpha": 0.25}, output_dir="tvs")
    ```
    """
    fractions = parse_fractions(",".join(str(f) for f in fractions))
    options = dict(backbone_options or {})
    _check_experiment(backbone, options, weights, epochs)
    image_size = image_size or default_image_size(backbone, options)
    output_dir = Path(output_dir)
    check_output_folder(output_dir)
    check_apart_from_data(output_dir, source_folders(data_source), data_source=data_source)

    data = load_data(data_source, image_size=image_size, batch_size=batch_size, seed=seed)
    all_train = data.files["train"]
    val_images = len(data.files["val"])
    majority = max(data.files["val"].class_counts(len(data.class_names))) / val_images
    described = backbone + "".join(f" {key}={value}" for key, value in sorted(options.items()))
    title = (f"{described}, {image_size} px, {epochs} epochs, Adam {learning_rate:g}\n"
             f"transfer from {Path(str(weights)).name} vs. random weights")
    results: list[ArmResult] = []
    output_dir.mkdir(parents=True, exist_ok=True)
    for fraction in fractions:
        subset = all_train.subset(nested_stratified_indices(all_train.labels, fraction, seed=seed))
        train_batches = make_dataset(subset, image_size=image_size, batch_size=batch_size,
                                     training=True, seed=seed)
        subset_data = dataclasses.replace(data, train=train_batches, files={**data.files, "train": subset})
        for arm in ARMS:
            logger.info(f"== {arm}: {len(subset)} training images ({fraction:g} of {len(all_train)})")
            recipe = Recipe(
                name=f"{arm}-{fraction:g}", backbone=BackboneConfig(name=backbone, options=options),
                image_size=image_size, batch_size=batch_size, seed=seed,
                monitor="val_accuracy",  # the experiment compares accuracies, also for two classes
                phases=[Phase(name=arm, epochs=epochs, learning_rate=learning_rate,
                              trainable="head" if arm == "transfer" else "scratch")],
            )
            results.append(_train_arm(arm, fraction, recipe, subset_data, weights=weights, verbose=verbose))
        write_results(results, output_dir, title=title, majority_baseline=majority)
    return results


def _check_experiment(backbone: str, options: dict[str, Any], weights, epochs: int) -> None:
    """The experiment's inputs, checked before any image is read."""
    if epochs <= 0:
        raise RecipeError(f"Expected a positive number of epochs. Received: epochs={epochs}.",
                          argument="epochs")
    spec = get_backbone(backbone)
    check_backbone_options(spec, options)
    if normalize_weights(weights) is None:
        raise WeightsError(
            "Expected pretrained weights for the transfer arm (imagenet or a weights file). "
            f"Received: weights={weights}. Pass imagenet or a weights file.",
            argument="weights",
        )
    check_weights_available(spec, weights)


def _train_arm(arm: str, fraction: float, recipe, data, *, weights, verbose) -> ArmResult:
    """Trains one arm (transfer: pretrained, head only; scratch: random, all layers) from the same seed."""
    import keras

    phase = recipe.phases[0]
    keras.utils.set_random_seed(recipe.seed)
    model = build_classifier(
        recipe.backbone.name, len(data.class_names), weights=weights if arm == "transfer" else None,
        image_size=recipe.image_size, backbone_options=recipe.backbone.options, trainable=phase.trainable,
    )
    started = time.perf_counter()
    outcome = train(model, data, recipe, verbose=verbose)
    keras.backend.clear_session()
    return ArmResult(
        arm=arm, fraction=fraction, train_images=len(data.files["train"]), val_images=len(data.files["val"]),
        best_val_accuracy=round(float(outcome.best_metric), 4),
        final_val_accuracy=round(float(outcome.history[-1]["val_accuracy"]), 4),
        trainable_parameters=outcome.phases[0].trainable_parameters,
        seconds=round(time.perf_counter() - started, 1),
    )


def write_results(
    results: list[ArmResult],
    output_dir: str | os.PathLike,
    *,
    title: str = "",
    majority_baseline: float | None = None,
) -> None:
    """Writes the CSV, the markdown table and the plot (each atomically).

    Args:
        results: The `ArmResult`s so far.
        output_dir: An existing folder.
        title: Lines describing the setup. Defaults to `""`.
        majority_baseline: Validation accuracy of always predicting the
            most common class, drawn and noted for reference. Defaults to
            `None`.
    """
    output_dir = Path(output_dir)
    csv_path, markdown_path, plot_path = (output_dir / name for name in RESULT_NAMES)
    columns = [field.name for field in dataclasses.fields(ArmResult)]
    with atomic_path(csv_path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(dataclasses.asdict(result) for result in results)

    by_fraction: dict[float, dict[str, ArmResult]] = {}
    for result in results:
        by_fraction.setdefault(result.fraction, {})[result.arm] = result
    notes = title.replace("\n", "; ")
    if majority_baseline is not None:
        notes += f"; always predicting the most common class scores {majority_baseline:.3f}"
    lines = [f"{notes}\n" if notes else "",
             "| fraction | training images | transfer val acc (best / last) | scratch val acc (best / last) "
             "| transfer - scratch (best) |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    for fraction, arms in sorted(by_fraction.items()):
        transfer, scratch = arms.get("transfer"), arms.get("scratch")
        images = (transfer or scratch).train_images
        cells = [f"{a.best_val_accuracy:.3f} / {a.final_val_accuracy:.3f}" if a else "-" for a in (transfer, scratch)]
        gap = f"{transfer.best_val_accuracy - scratch.best_val_accuracy:+.3f}" if transfer and scratch else "-"
        lines.append(f"| {fraction:g} | {images} | {cells[0]} | {cells[1]} | {gap} |")
    write_text_atomically("\n".join(line for line in lines if line) + "\n", markdown_path)


    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    for arm, marker in zip(ARMS, ("o", "s"), strict=True):
        points = sorted((r.train_images, r.best_val_accuracy) for r in results if r.arm == arm)
        if points:
            axis.plot(*zip(*points, strict=True), marker=marker, label=f"{arm} (best val accuracy)")
    if majority_baseline is not None:
        axis.axhline(majority_baseline, color="gray", linestyle=":", label="most common class")
    axis.set_xlabel("training images")
    axis.set_ylabel("validation accuracy")
    axis.set_title(title or "Transfer vs. scratch", fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    with atomic_path(plot_path) as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)

