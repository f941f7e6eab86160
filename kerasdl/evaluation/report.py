"""The run report people read (report.md) and the side-by-side run comparison.

Both are built only from the files a run folder holds (config.json,
metrics.json, skipped.csv, the pictures, export/), so `kerasdl report` can
rebuild a report and `kerasdl compare` can line up runs long after training.
A folder written by `kerasdl evaluate` (metrics.json and pictures, no
config.json) gets a shorter report and compares like a run.
"""


from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from kerasdl._util.console import format_duration
from kerasdl._util.files import write_text_atomically
from kerasdl.errors import RunFolderError

PICTURES = (
    ("curves.png", "Learning curves (all phases; dotted line = phase boundary)"),
    ("confusion_matrix.png", "Confusion matrix"),
    ("roc.png", "ROC curve"),
    ("precision_recall.png", "Precision-recall curve"),
    ("misclassified.png", "Most confidently wrong images"),
    ("cam_wrong.png", "Where the model looked (Grad-CAM): the most confidently wrong images"),
    ("cam_right.png", "Where the model looked (Grad-CAM): the most confidently right images of each class"),
)
SKIPPED_LISTED = 10


def load_run(run_dir: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """Reads `(config, metrics)` of a run or evaluation folder.

    `config` is `{}` for a folder written by `kerasdl evaluate`.

    Raises:
        RunFolderError: if the folder has no metrics.json, or a file is not JSON.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.json").is_file():
        raise RunFolderError(
            f"Expected a run folder with metrics.json (from kerasdl run or evaluate). Received: "
            f"{run_dir}, which has none. Pass a finished run's folder."
        )
    loaded = []
    for name in ("config.json", "metrics.json"):
        path = run_dir / name
        try:
            loaded.append(json.loads(path.read_text()) if path.is_file() else {})
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise RunFolderError(
                f"Expected {name} to hold JSON. Received: {path} ({error}). Rerun the job that wrote it."
            ) from None
    return loaded[0], loaded[1]


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
    return path.stat().st_size


def _human_size(size: int) -> str:
    if size < 1e3:
        return f"{size} B"
    return f"{size / 1e3:.1f} kB" if size < 1e6 else f"{size / 1e6:.2f} MB"


def _data_lines(config: dict[str, Any], metrics: dict[str, Any], run_dir: Path) -> list[str]:
    data = config.get("data", {})
    class_names = metrics.get("class_names") or data.get("class_names", [])
    lines = ["## Data", f"- source: `{data.get('source', '?')}`",
             f"- classes ({len(class_names)}): {', '.join(class_names)}", ""]
    counts = data.get("class_counts", {})
    if counts:
        lines += ["| split | " + " | ".join(class_names) + " | total |",
                  "|---" * (len(class_names) + 2) + "|"]
        for split, per_class in counts.items():
            values = [per_class.get(name, 0) for name in class_names]
            lines.append(f"| {split} | " + " | ".join(str(v) for v in values) + f" | {sum(values)} |")
        lines.append("")
    skipped = data.get("skipped_files", metrics.get("skipped_files", 0))
    lines.append(f"- skipped files: {skipped}" + (" (all listed in skipped.csv)" if skipped else ""))
    skipped_csv = run_dir / "skipped.csv"
    if skipped and skipped_csv.is_file():
        with open(skipped_csv, newline="") as handle:
            rows = list(csv.DictReader(handle))
        lines += [f"  - `{row['path']}`: {row['reason']}" for row in rows[:SKIPPED_LISTED]]
        if len(rows) > SKIPPED_LISTED:
            lines.append(f"  - ... and {len(rows) - SKIPPED_LISTED} more")
    return lines + [""]


def _model_lines(config: dict[str, Any]) -> list[str]:
    recipe = config.get("recipe", {})
    backbone, head = recipe.get("backbone", {}), recipe.get("head", {})
    options = ", ".join(f"{k}={v}" for k, v in (backbone.get("options") or {}).items())
    hidden = head.get("hidden_units") or 0
    lines = [
        "## Model",
        f"- backbone: {backbone.get('name', '?')}" + (f" ({options})" if options else ""),
        f"- weights: {backbone.get('weights') or 'none (random initialisation)'}",
        f"- head: {_pooling_text(head.get('pooling', 'top'))}, dropout {head.get('dropout', '?')}"
        + (f", dense {hidden} {head.get('activation', '')}" if hidden else "")
        + ", softmax" + _pooling_choice_text(config.get("head_pooling")),
        f"- input: {config.get('image_size', '?')} px, batch {recipe.get('batch_size', '?')}, "
        f"augmentation {_augmentation_text(recipe)}, seed {config.get('seed', recipe.get('seed', '?'))}",
    ]
    phases = config.get("training", {}).get("phases", [])
    if phases:
        lines.append("- trainable parameters per phase: " + "; ".join(
            f"{phase['name']} {phase['trainable_parameters']:,}" for phase in phases))
    return lines + [""]


def _pooling_text(pooling: str) -> str:
    """What the head saw, in words (`head.pooling` as it ran)."""
    return {"top": "global average pooling of the backbone's last feature map",
            "blocks": "global average pooling of each block output at the backbone's two coarsest "
                      "resolutions, side by side"}.get(pooling, f"pooling {pooling}")


def _pooling_choice_text(record: dict[str, Any] | None) -> str:
    """How `head.pooling="auto"` chose, from config.json's `head_pooling` record."""
    if not record:
        return ""
    if "best" not in record:
        return f" (head.pooling auto chose {record.get('chosen', '?')}: {record.get('reason', '')})"
    best, monitor = record["best"], record.get("monitor", "?")
    return (f" (head.pooling auto chose {record.get('chosen', '?')}: best {monitor} of a head on the "
            f"top feature map {_number(best.get('top'))}, on the pooled blocks {_number(best.get('blocks'))}; "
            f"the blocks must win by more than {_number(record.get('margin'))})")


def _augmentation_text(recipe: dict[str, Any]) -> str:
    """The recipe's augmentation, with the phases that have their own."""
    own = [f"{phase['name']}: {phase['augment']}" for phase in recipe.get("phases", [])
           if phase.get("augment") is not None]
    return f"{recipe.get('augment', '?')}" + (f" ({', '.join(own)})" if own else "")


def _training_lines(config: dict[str, Any]) -> list[str]:
    training = config.get("training")
    if not training:
        return ["## Training", f"- status: {config.get('status', 'unknown')} (no training summary)", ""]
    recipe_phases = {phase["name"]: phase for phase in config.get("recipe", {}).get("phases", [])}
    monitor = training.get("monitor", "val_accuracy")
    lines = [
        "## Training",
        f"| phase | trainable | optimizer, lr | epochs | seconds | images/s | trainable params | best {monitor} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for phase in training.get("phases", []):
        planned = recipe_phases.get(phase["name"], {})
        lines.append(
            f"| {phase['name']} | {planned.get('trainable', '')} | "
            f"{planned.get('optimizer', '')} {planned.get('learning_rate', '')} | {phase['epochs']} | "
            f"{phase['seconds']} | {phase['images_per_second']} | {phase['trainable_parameters']:,} | "
            f"{_number(phase.get('best_metric'))} |"
        )
    lines += [
        "",
        f"- best {monitor}: {_number(training.get('best_metric'))} at epoch {training.get('best_epoch', '-')}"
        " (model.keras holds that epoch's weights; the best model is picked by this metric)",
        f"- total time: {config.get('seconds', '?')} s (training, evaluation and export)",
        *_backend_lines(config.get("environment") or {}),
        *_budget_lines(config.get("time_budget")),
        "",
    ]
    return lines


def _scored(values: dict[str, Any] | None, key: str) -> str:
    """`0.9123 (0.871 to 0.948)`: a metric and its 95% CI, or `-`."""
    if not values or values.get(key) is None:
        return "-"
    ci = values.get(f"{key}_ci95")
    return f"{values[key]:.4f}" + (f" ({ci[0]:.3f} to {ci[1]:.3f})" if ci else "")


def _fold_lines(config: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    """A k-fold run's folds: each fold's own scores, and the ensemble's on the test split."""
    folds = metrics.get("fold_metrics", [])
    key = "auc" if any((fold.get("val") or {}).get("auc") is not None for fold in folds) else "accuracy"
    name = "ROC-AUC" if key == "auc" else "accuracy"
    with_test = any(fold.get("test") for fold in folds)
    lines = [
        "## Folds",
        f"{config.get('folds')}-fold cross-validation: each fold's model trained on the other folds and was "
        "validated on its own (its run folder holds its report). The metrics below are out of fold: every "
        "image predicted by the model that never trained on it, and so are the pictures: each image's "
        "Grad-CAM heatmap is that fold model's. `kerasdl explain` and `kerasdl evaluate` of model.keras "
        "show the averaged model's heatmap, the mean of its members'.",
        "",
        f"| fold | run folder | val images | best epoch | val {name} (95% CI)"
        + (f" | test {name} (95% CI)" if with_test else "") + " | seconds |",
        "|---|---|---|---|---" + ("|---" if with_test else "") + "|---|",
    ]
    for fold in folds:
        lines.append(
            f"| {fold['fold']} | [{fold['folder']}]({fold['folder']}/report.md) | {fold['num_val']} | "
            f"{_number(fold.get('best_epoch'))} | {_scored(fold.get('val'), key)}"
            + (f" | {_scored(fold.get('test'), key)}" if with_test else "")
            + f" | {_number(fold.get('seconds'), 1)} |")
    ensemble = metrics.get("ensemble_test")
    if ensemble:
        lines += ["", f"- the {ensemble['num_models']} fold models averaged, on the test split "
                      f"({ensemble['num_samples']} images): {name} {_scored(ensemble, key)}"]
    seconds = config.get("seconds")
    took = format_duration(seconds) if isinstance(seconds, (int, float)) else "?"
    lines += [f"- total time: {took} (all folds, evaluation and export)", ""]
    return lines


def _backend_lines(environment: dict[str, Any]) -> list[str]:
    """Which Keras backend trained the model (exports are always TensorFlow's)."""
    backend = environment.get("backend")
    if not backend:
        return []
    line = f"- trained on the {backend} backend (Keras {environment.get('keras', '?')})"
    if backend != "tensorflow":
        line += "; exported files are made by a TensorFlow-backend process from the same weights"
    return [line]


def _environment_lines(environment: dict[str, Any] | None) -> list[str]:
    """config.json's `environment` as words: versions, the package versions, the devices."""
    if not environment:
        return []
    plain = ", ".join(f"{key} {value}" for key, value in environment.items()
                      if not isinstance(value, (dict, list)))
    lines = ["## Environment", f"- {plain}"]
    for key, value in environment.items():
        if isinstance(value, dict):
            lines.append(f"- {key}: " + ", ".join(f"{name} {version}" for name, version in value.items()))
        elif isinstance(value, list):
            lines.append(f"- {key}: " + (", ".join(str(item) for item in value) or "none"))
    return lines + [""]


def _budget_lines(plan: dict[str, Any] | None) -> list[str]:
    if not plan:
        return []
    chosen = ", ".join(f"{name} {epochs}" for name, epochs in plan["epochs"].items())
    recipe = ", ".join(f"{name} {epochs}" for name, epochs in plan.get("recipe_epochs", {}).items())
    return [
        f"- time budget: {format_duration(plan['budget_s'])}; epochs chosen: {chosen}"
        + (f" (recipe: {recipe})" if recipe else "")
        + f", from an estimated {format_duration(plan['estimated_epoch_s'])} per end-to-end epoch; a phase ends"
        " sooner when its measured epochs show another would overrun (the table gives the epochs run)"
    ]


def metric_rows(metrics: dict[str, Any]) -> list[tuple[str, Any]]:
    """The headline metrics of a metrics.json as `(name, value)` pairs."""
    rows: list[tuple[str, Any]] = [
        ("accuracy", metrics.get("accuracy")),
        ("loss (cross-entropy)", metrics.get("loss")),
        ("macro F1", metrics.get("macro_avg", {}).get("f1")),
        ("weighted F1", metrics.get("weighted_avg", {}).get("f1")),
    ]
    if "top5_accuracy" in metrics:
        rows.append(("top-5 accuracy", metrics["top5_accuracy"]))
    if "auc" in metrics:
        rows += [("ROC-AUC", metrics.get("auc")), ("average precision", metrics.get("average_precision")),
                 ("equal-error rate", metrics.get("equal_error_rate"))]
    return rows


def _interval(bounds: list[float] | None) -> str:
    return f"{bounds[0]:.3f} to {bounds[1]:.3f}" if bounds else ""


def _metrics_lines(metrics: dict[str, Any]) -> list[str]:
    where = f"{metrics.get('split', 'val')} split" if "split" in metrics else "evaluation data"
    lines = [f"## Metrics ({where}, {metrics['num_samples']} images"
             + (", test-time augmentation: " + metrics["tta"] if metrics.get("tta", "none") != "none" else "")
             + ")", "", "| metric | value | 95% CI |", "|---|---|---|"]
    intervals = {"accuracy": metrics.get("accuracy_ci95"), "ROC-AUC": metrics.get("auc_ci95")}
    lines += [f"| {name} | {_number(value)} | {_interval(intervals.get(name))} |"
              for name, value in metric_rows(metrics)]
    if metrics.get("ci95"):
        lines += ["", f"95% CI: {metrics['ci95']['method']}, {metrics['ci95']['resamples']} resamples of "
                  "these images (seeded). A difference well inside it is not a real difference."]
    at = metrics.get("threshold")
    if at:
        positive = metrics["class_names"][1]
        lines += [
            "",
            f"At decision threshold {at['threshold']:.4f} on P({positive}) (chosen by {at['chosen_by']}): "
            f"accuracy {at['accuracy']:.4f}, balanced accuracy {at['balanced_accuracy']:.4f}, "
            f"precision {at['precision']:.4f}, recall {at['recall']:.4f}, "
            f"specificity {at['specificity']:.4f}, F1 {at['f1']:.4f}. The other metrics use the most "
            "probable class.",
        ]
    lines += ["", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for name, values in metrics["per_class"].items():
        lines.append(f"| {name} | {values['precision']:.3f} | {values['recall']:.3f} | "
                     f"{values['f1']:.3f} | {values['support']} |")
    names = metrics["class_names"]
    lines += ["", "Confusion matrix (rows: true class, columns: predicted):", "",
              "| true \\ predicted | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for name, row in zip(names, metrics["confusion_matrix"], strict=False):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    return lines + [""]


def _picture_lines(run_dir: Path) -> list[str]:
    lines = ["## Pictures", ""]
    for picture, title in PICTURES:
        for folder in ("", "evaluation/"):
            if (run_dir / folder / picture).is_file():
                lines += [f"### {title}", f"![{title}]({folder}{picture})", ""]
                break
    return lines


def _export_lines(run_dir: Path) -> list[str]:
    lines = ["## Files", "| file | size |", "|---|---|"]
    for name in ("model.keras",):
        if (run_dir / name).is_file():
            lines.append(f"| {name} | {_human_size(_size(run_dir / name))} |")
    export_dir = run_dir / "export"
    if export_dir.is_dir():
        for item in sorted(export_dir.iterdir()):
            label = f"export/{item.name}" + ("/" if item.is_dir() else "")
            lines.append(f"| {label} | {_human_size(_size(item))} |")
        parity = export_dir / "parity.json"
        if parity.is_file():
            lines += ["", "Parity of exported files with the Keras model (validation split):", ""]
            for name, check in json.loads(parity.read_text()).items():
                lines.append(
                    f"- {name}: top-1 agreement {check['top1_agreement']:.4f}, accuracy "
                    f"{check['accuracy']:.4f} (Keras {check['keras_accuracy']:.4f}), max |Δp| "
                    f"{check['max_abs_probability_difference']:.4f}"
                    + (f" — REJECTED, kept as export/{check.get('file', name)}" if check.get("rejected") else "")
                )
    return lines + [""]


def _reproduce_lines(config: dict[str, Any]) -> list[str]:
    command = config.get("command", "")
    if command.startswith("kerasdl "):
        return ["Reproduce this run (same data, seed and package versions):", "", "```bash", command, "```", ""]
    return [f"Started from Python (`{command}`); the resolved recipe is in config.json.", ""]


def write_report(run_dir: str | os.PathLike) -> Path:
    """Writes `report.md` from the files of a run folder.

    Sections: data (source, class counts per split, skipped files), model
    (backbone, weights, head, trainable parameters per phase), training
    (phases, epochs, time, images/s), metrics, pictures, files with sizes,
    and the command that reproduces the run. An evaluation folder (no
    config.json) gets the metrics and pictures only.

    Args:
        run_dir: A run folder with metrics.json (and config.json).

    Returns:
        The report's path.

    Raises:
        RunFolderError: if metrics.json is missing or unreadable.

    Example:
    ```python
    write_report("runs/mobilenetv2-transfer/20260101-120000")
    ```
    """
    run_dir = Path(run_dir)
    config, metrics = load_run(run_dir)
    if config:
        recipe = config.get("recipe", {})
        lines = [f"# {recipe.get('name', run_dir.name)}", ""]
        if recipe.get("description"):
            lines += [recipe["description"], ""]
        lines += [f"Run folder `{run_dir}`, started {config.get('started', '?')}, status "
                  f"{config.get('status', '?')}.", ""]
        lines += _reproduce_lines(config)
        lines += _data_lines(config, metrics, run_dir) + _model_lines(config)
        lines += _fold_lines(config, metrics) if config.get("folds") else _training_lines(config)
    else:
        lines = [f"# Evaluation of `{metrics.get('model', run_dir)}`", ""]
        if metrics.get("data"):
            lines += [f"Data: `{metrics['data']}`, skipped files: {metrics.get('skipped_files', 0)}.", ""]
    lines += _metrics_lines(metrics) + _picture_lines(run_dir) + _export_lines(run_dir)
    lines += _environment_lines(config.get("environment"))
    path = run_dir / "report.md"
    write_text_atomically("\n".join(lines), path)
    return path


# ---------------------------------------------------------------- compare


def _total_epochs(config: dict[str, Any]) -> int | None:
    phases = config.get("training", {}).get("phases")
    return sum(phase["epochs"] for phase in phases) if phases else None


def _tflite_size(run_dir: Path) -> int | None:
    model = run_dir / "export" / "model.tflite"
    return model.stat().st_size if model.is_file() else None


def compare_runs(run_dirs: list[str | os.PathLike]) -> list[tuple[str, list[str]]]:
    """Lines several runs up, one value per run for each row.

    Args:
        run_dirs: Run or evaluation folders.

    Returns:
        `(row name, [value per run])` pairs, values formatted for printing.

    Raises:
        RunFolderError: if a folder has no metrics.json.

    Example:
    ```python
    print(format_comparison(["runs/a/1", "runs/b/1"]))
    ```
    """
    loaded = [(Path(d), *load_run(d)) for d in run_dirs]
    fields: list[tuple[str, Any]] = [
        ("recipe", lambda d, c, m: c.get("recipe", {}).get("name", "(evaluation)")),
        ("backbone", lambda d, c, m: c.get("recipe", {}).get("backbone", {}).get("name")),
        ("weights", lambda d, c, m: (c["recipe"]["backbone"].get("weights") or "none") if c else None),
        ("image size", lambda d, c, m: c.get("image_size")),
        ("data", lambda d, c, m: c.get("data", {}).get("source", m.get("data"))),
        ("epochs", lambda d, c, m: _total_epochs(c)),
        ("seconds", lambda d, c, m: c.get("seconds")),
        ("evaluated on", lambda d, c, m: f"{m.get('split', '?')} ({m['num_samples']})"),
    ]
    every_metric = []
    for _, _, metrics in loaded:
        every_metric += [name for name, _ in metric_rows(metrics) if name not in every_metric]
    rows = []
    for name, get in fields:
        rows.append((name, [_number(get(d, c, m), 2) for d, c, m in loaded]))
    for name in every_metric:
        rows.append((name, [_number(dict(metric_rows(m)).get(name)) for _, _, m in loaded]))
    rows.append(("model.keras", [_human_size(_size(d / "model.keras")) if (d / "model.keras").is_file()
                                 else "-" for d, _, _ in loaded]))
    rows.append(("model.tflite", [_human_size(s) if (s := _tflite_size(d)) is not None else "-"
                                  for d, _, _ in loaded]))
    return rows


def format_comparison(run_dirs: list[str | os.PathLike]) -> str:
    """Formats `compare_runs` as a plain-text table, one column per run."""
    rows = compare_runs(run_dirs)
    header = [f"[{i}]" for i in range(1, len(run_dirs) + 1)]
    legend = [f"[{i}] {d}" for i, d in enumerate(run_dirs, 1)]
    name_width = max(len(name) for name, _ in rows)
    widths = [max(len(h), *(len(values[i]) for _, values in rows)) for i, h in enumerate(header)]

    def line(name, values):
        return f"{name:<{name_width}}  " + "  ".join(f"{v:>{w}}" for v, w in zip(values, widths, strict=False))

    table = [line("", header)] + [line(name, values) for name, values in rows]
    return "\n".join(legend + [""] + table)

