"""int8 that passes the parity check: every op int8 first, then the fewest ops kept in float.

Rounding a network to int8 can cost more accuracy than the parity check
allows (a small or briefly trained network, whose classes are close), while
keeping a few ops in float brings most of it back (bench/BENCHMARKS.md, "int8
investigation"). `search_int8` finds such a file, with real conversions only:

1. It calibrates once. `tf.lite.experimental.QuantizationDebugger` runs the
   representative images through the float model and keeps the calibrated
   model; its layer statistics name the ops the quantizer can make int8.
2. It quantizes the calibrated model with every op int8 (the `mlir_quantize`
   call the TFLite converter itself makes, with the same input and output
   types) and checks that file on the parity split. If it passes, that is the
   file.
3. Otherwise it ranks the ops: for each op, the calibrated model is quantized
   with that op alone kept in float and run on a few calibration images; the
   op's score is how much of the int8 file's divergence from the Keras model
   (mean Kullback-Leibler divergence of the class probabilities) that removes.
   Ops that remove less than `MIN_DIVERGENCE_SHARE` of it are not candidates.
4. It keeps the top 1, 2, 4, ... candidates in float (the quantizer's
   `denylisted_nodes`), checks each file on the parity split, and stops at the
   first that passes or after `max_steps` files.

Each file is quantized from the same calibration, so a step costs one
quantization and one parity check, not a conversion from the SavedModel.
The calibrated model carries the bias-corrected weights when
`ExportOptions.int8_bias_correction` is on, also for the ops kept in float;
the ranking measures each op in that model, so an op whose float version is
no closer to the Keras model is not chosen.
"""


from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kerasdl._util.native_output import held_stderr
from kerasdl.inference.runners import TFLiteModel

logger = logging.getLogger(__name__)

INT8_IO_TYPES = {"uint8": "uint8", "float": "float32"}
# An op is a candidate when keeping it alone in float removes at least this share of the
# int8 file's divergence: below it, differences are the noise of a few probe images.
MIN_DIVERGENCE_SHARE = 0.01
PROBE_IMAGES = 64


@dataclasses.dataclass
class Int8Step:
    """One file the search made and checked.

    Attributes:
        float_ops: How many ops it keeps in float (0: every op int8).
        size_bytes: The file's size.
        accuracy_change: Its accuracy minus the Keras model's, on the
            parity split (a fraction).
        top1_agreement: Share of the parity images where its top class is
            the Keras model's.
        passed: Whether it passed the parity check.
    """

    float_ops: int
    size_bytes: int
    accuracy_change: float
    top1_agreement: float
    passed: bool


@dataclasses.dataclass
class Int8Search:
    """What `search_int8` found, and how.

    Attributes:
        candidate: The chosen file, in the scratch folder: the first that
            passed, else the one that lost the least accuracy.
        check: Its parity check (the dict of the `evaluate` callable).
        passed: Whether `candidate` passed.
        quantizable_ops: How many ops the quantizer can make int8.
        float_ops: The output tensor names of the ops `candidate` keeps in
            float, with their op types and the divergence each removed.
        size_bytes: The size of `candidate`.
        float32_size_bytes: The size of the same model as a float32 file.
        steps: Every file made and checked, in order.
        seconds: Wall-clock time of the whole search, calibration included.
        stopped: Why the search stopped, in words.
    """

    candidate: Path
    check: dict[str, Any]
    passed: bool
    quantizable_ops: int
    float_ops: list[dict[str, Any]]
    size_bytes: int
    float32_size_bytes: int
    steps: list[Int8Step]
    seconds: float
    stopped: str

    def record(self) -> dict[str, Any]:
        """The search as plain JSON data, for parity.json and metadata.json."""
        return {
            "quantizable_ops": self.quantizable_ops,
            "float_ops": self.float_ops,
            "size_bytes": self.size_bytes,
            "float32_size_bytes": self.float32_size_bytes,
            "size_vs_float32": round(self.size_bytes / self.float32_size_bytes, 4),
            "steps": [dataclasses.asdict(step) for step in self.steps],
            "seconds": round(self.seconds, 2),
            "stopped": self.stopped,
        }


def int8_summary(record: dict[str, Any], accuracy_change: float) -> str:
    """One line for a person: `int8, 4 of 65 ops kept in float, 31% of float32, -0.6 pt`.

    Args:
        record: An `Int8Search.record()`.
        accuracy_change: The file's accuracy change (a fraction).

    Returns:
        The line.
    """
    kept = len(record["float_ops"])
    ops = "every op int8" if not kept else f"{kept} of {record['quantizable_ops']} ops kept in float"
    return f"int8, {ops}, {record['size_vs_float32']:.0%} of float32, {accuracy_change * 100:+.1f} pt"


class _Quantizer:
    """One calibration of a SavedModel, quantized as many times as asked."""

    def __init__(self, saved_model_dir: Path, representative_dataset: Callable, *, int8_io: str):
        import tensorflow as tf

        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # float ops allowed
        first_image = next(iter(representative_dataset()))
        with _quiet_converter():
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=lambda: iter([first_image]))
            debugger.run()
            table = io.StringIO()
            debugger.layer_statistics_dump(table)
        self.calibrated_model: bytes = debugger.calibrated_model
        rows = list(csv.DictReader(io.StringIO(table.getvalue())))
        self.op_names = [row["tensor_name"] for row in rows]
        self.op_types = {row["tensor_name"]: row["op_name"] for row in rows}
        self.io_type = getattr(tf, INT8_IO_TYPES[int8_io])
        self.saved_model_dir = saved_model_dir

    def quantize(self, float_ops: Sequence[str] = ()) -> bytes:
        """The int8 file with `float_ops` (output tensor names) kept in float."""
        # The converter's own call (lite.py `_quantize`); QuantizationDebugger's
        # get_nondebug_quantized_model makes the same one, but with float input and output only.
        from tensorflow.lite.python import convert

        with _quiet_converter():
            return convert.mlir_quantize(self.calibrated_model, input_data_type=self.io_type,
                                         output_data_type=self.io_type,
                                         denylisted_nodes=list(float_ops) or None)

    def float32_size(self) -> int:
        """The size of the plain float32 file of the same SavedModel."""
        import tensorflow as tf

        converter = tf.lite.TFLiteConverter.from_saved_model(str(self.saved_model_dir))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        with _quiet_converter():
            return len(converter.convert())


@contextlib.contextmanager
def _quiet_converter():
    """Holds the quantizer's native notes and the debugger's deprecation warnings."""
    with held_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation; numpy overflow in unused stats
        yield


def _divergence(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Mean KL divergence of `candidate`'s class probabilities from `reference`'s."""
    reference = np.clip(reference, 1e-6, 1.0)
    candidate = np.clip(candidate, 1e-6, 1.0)
    return float(np.mean(np.sum(reference * np.log(reference / candidate), axis=-1)))


def _run_on_probe(flatbuffer: bytes, probe_images: np.ndarray, scratch: Path) -> np.ndarray:
    path = scratch / "probe.tflite"
    path.write_bytes(flatbuffer)
    return TFLiteModel(path).predict_batch(probe_images)


def rank_ops(quantizer: _Quantizer, probe_images: np.ndarray, probe_reference: np.ndarray,
             scratch: Path) -> list[tuple[str, float]]:
    """Ops ordered by how much of the int8 file's divergence keeping each alone in float removes.

    Args:
        quantizer: The calibrated model.
        probe_images: A few [0, 255] calibration images.
        probe_reference: The Keras model's probabilities on them.
        scratch: A folder for the probe files.

    Returns:
        `(output tensor name, divergence removed)` of the candidate ops, the
        most helpful first.
    """
    whole = _divergence(probe_reference, _run_on_probe(quantizer.quantize(), probe_images, scratch))
    removed = []
    for name in quantizer.op_names:
        alone = _run_on_probe(quantizer.quantize([name]), probe_images, scratch)
        removed.append((name, whole - _divergence(probe_reference, alone)))
    helpful = [(name, gain) for name, gain in removed if gain > MIN_DIVERGENCE_SHARE * whole]
    return sorted(helpful, key=lambda item: -item[1])


def float_set_sizes(candidates: int, max_steps: int) -> list[int]:
    """How many ops each search step keeps in float: 1, 2, 4, ... up to all candidates.

    Example:
    ```python
    float_set_sizes(11, 5)  # [1, 2, 4, 8, 11]
    float_set_sizes(40, 5)  # [1, 2, 4, 8, 16]
    ```
    """
    sizes: list[int] = []
    for index in range(max_steps):
        size = min(2 ** index, candidates)
        if size > 0 and size not in sizes:
            sizes.append(size)
    return sizes


def search_int8(
    saved_model_dir: Path,
    *,
    representative_dataset: Callable,
    probe: tuple[np.ndarray, np.ndarray],
    evaluate: Callable[[Path], dict[str, Any]],
    scratch: Path,
    int8_io: str = "uint8",
    max_steps: int = 5,
) -> Int8Search:
    """Makes int8 files until one passes `evaluate`: every op int8, then the fewest ops in float.

    Args:
        saved_model_dir: The SavedModel to convert (bias-corrected when wanted).
        representative_dataset: The converter's calibration generator.
        probe: `(images, Keras probabilities)` of a few calibration images,
            for the ranking.
        evaluate: Checks a `.tflite` file on the parity split; returns the
            parity dict, with `"rejected"` and `"accuracy_change"`.
        scratch: A folder for the files made (the chosen one stays there).
        int8_io: `"uint8"` or `"float"` input and output tensors. Defaults
            to `"uint8"`.
        max_steps: Most files made after the all-int8 one. Defaults to `5`.

    Returns:
        The `Int8Search`.

    Example:
    ```python
    found = search_int8(saved_model, representative_dataset=generate, probe=(images, probabilities),
                        evaluate=check_file, scratch=Path(scratch))
    ```
    """
    started = time.monotonic()
    quantizer = _Quantizer(saved_model_dir, representative_dataset, int8_io=int8_io)
    steps, tried = [], []

    def attempt(float_ops: Sequence[str]) -> bool:
        path = scratch / f"int8_{len(float_ops)}_float.tflite"
        path.write_bytes(quantizer.quantize(float_ops))
        check = evaluate(path)
        steps.append(Int8Step(len(float_ops), path.stat().st_size, check["accuracy_change"],
                              check["top1_agreement"], not check["rejected"]))
        tried.append((path, check, list(float_ops)))
        ops = f"{len(float_ops)} of {len(quantizer.op_names)} ops kept in float" if float_ops else "every op int8"
        logger.info(f"int8, {ops}: accuracy change {check['accuracy_change'] * 100:+.2f} pt, top-1 agreement "
                    f"{check['top1_agreement']:.4f}: {'passes' if steps[-1].passed else 'fails'} the parity check")
        return steps[-1].passed

    stopped = "every op int8 passed"
    ranked: list[tuple[str, float]] = []
    if not attempt(()) and max_steps == 0:
        stopped = "every op int8 failed, and max_steps=0 keeps no op in float"
    elif not steps[0].passed:
        logger.info(f"Ranking {len(quantizer.op_names)} ops by what keeping each in float recovers ...")
        ranked = rank_ops(quantizer, *probe, scratch)
        stopped = _search_float_sets(attempt, [name for name, _ in ranked], max_steps)
    passing = [item for item in tried if not item[1]["rejected"]]
    path, check, float_ops = passing[0] if passing else max(tried, key=lambda item: item[1]["accuracy_change"])
    for other, _, _ in tried:
        if other != path:
            other.unlink(missing_ok=True)
    gains = dict(ranked)
    return Int8Search(
        candidate=path, check=check, passed=bool(passing), quantizable_ops=len(quantizer.op_names),
        float_ops=[{"tensor": name, "op": quantizer.op_types[name], "divergence_removed": round(gains[name], 6)}
                   for name in float_ops],
        size_bytes=path.stat().st_size, float32_size_bytes=quantizer.float32_size(), steps=steps,
        seconds=time.monotonic() - started,
        stopped=stopped,
    )


def _search_float_sets(attempt: Callable[[Sequence[str]], bool], ranked: list[str], max_steps: int) -> str:
    """Tries the growing float sets; returns why it stopped."""
    if not ranked:
        return "every op int8 failed, and no op brought the file closer to the Keras model when kept in float"
    sizes = float_set_sizes(len(ranked), max_steps)
    for size in sizes:
        if attempt(ranked[:size]):
            ops = "1 op" if size == 1 else f"{size} ops"
            return f"passed with {ops} in float (step {sizes.index(size) + 1} of at most {len(sizes)})"
    return (f"every file failed, up to {sizes[-1]} ops in float "
            f"({len(ranked)} ops helped, at most {max_steps} steps)")
