"""Where does full-integer int8 lose accuracy, and does kerasdl's int8 search find a file that ships?

With `--search` (issue 21): kerasdl's `int8` export (every op int8, else the
fewest ops kept in float that pass the parity check) against one strict
`int8-full` conversion with its parity check, on the same model, data,
calibration sample and Keras predictions, in one process: the file found, its
size against float32, its accuracy change, each step, and the cost of each
(CPU seconds of this process, and wall-clock seconds). Writes int8_search.json.

Without `--search`, the investigation of issue 7:

Takes a trained kerasdl `.keras` model (the one bench/bench_export.py saves) and
its data folder, and measures on the validation split, each against the Keras
model:

1. TFLite converter settings: kerasdl's int8 (per-channel weights, uint8 I/O),
   float I/O, per-tensor weights (`_experimental_disable_per_channel`), int16
   activations with int8 weights (`EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8`),
   a class-stratified calibration sample, and int8 with a few early layers kept
   in float (`tf.lite.experimental.QuantizationDebugger` denylist).
2. Weights only: the Keras model with its kernels rounded the way the converter
   rounds them (symmetric int8 per output channel; BatchNorm folding scales each
   output channel, so rounding before folding is the same), activations in
   float, for all kernels and for groups of layers.

Run:
    python bench/bench_int8.py --model /tmp/bench_export_run3/out/model.keras \
        --data ../shared/data/flowers128 --output /tmp/int8_work/bench
    python bench/bench_int8.py --search --model r/model.keras --data ../shared/data/flowers128 \
        --output /tmp/int8_work/search
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kerasdl  # noqa: E402
from kerasdl.data.pipeline import make_dataset  # noqa: E402
from kerasdl.errors import ExportRejectedError  # noqa: E402
from kerasdl.export.exporter import export_model  # noqa: E402
from kerasdl.export.int8_search import int8_summary  # noqa: E402
from kerasdl.export.model_file import load_model_for_export  # noqa: E402
from kerasdl.export.options import ExportOptions  # noqa: E402
from kerasdl.export.saved_model import export_saved_model  # noqa: E402
from kerasdl.export.tflite import representative_files  # noqa: E402
from kerasdl.inference.batches import batch_predictor, collect_predictions  # noqa: E402
from kerasdl.inference.runners import TFLiteModel  # noqa: E402

EARLY_BLOCKS = ("expanded_conv", "block_1_", "block_2_")


def images_of(files, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    dataset = make_dataset(files, image_size=image_size, batch_size=32, cache=False)
    pairs = [(np.clip(np.round(x), 0, 255).astype(np.uint8), y.numpy()) for x, y in dataset]
    return np.concatenate([x for x, _ in pairs]), np.concatenate([y for _, y in pairs])


def stratified_files(files, *, size: int, num_classes: int, seed: int):
    labels = np.asarray(files.labels)
    rng = np.random.default_rng(seed)
    per_class = size // num_classes
    picked = np.concatenate([rng.permutation(np.flatnonzero(labels == k))[:per_class] for k in range(num_classes)])
    return files.subset(sorted(picked.tolist()))


def converter_for(saved_model: Path, calibration: np.ndarray, *, ops, uint8_io: bool = True,
                  per_tensor: bool = False):
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([image[None].astype(np.float32)] for image in calibration)
    converter.target_spec.supported_ops = ops
    if uint8_io:
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    if per_tensor:
        converter._experimental_disable_per_channel = True
    return converter


def score(probabilities: np.ndarray, keras_probabilities: np.ndarray, labels: np.ndarray) -> dict:
    predicted, reference = probabilities.argmax(-1), keras_probabilities.argmax(-1)
    accuracy = float((predicted == labels).mean())
    return {"accuracy": round(accuracy, 4), "change": round(accuracy - float((reference == labels).mean()), 4),
            "agreement": round(float((predicted == reference).mean()), 4)}


def round_kernel(kernel: np.ndarray, axis: int) -> np.ndarray:
    """Symmetric int8 per output channel, as the TFLite converter quantizes weights."""
    others = tuple(i for i in range(kernel.ndim) if i != axis)
    scale = np.abs(kernel).max(axis=others, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    return np.clip(np.round(kernel / scale), -127, 127) * scale


def weights_only(model, images: np.ndarray, keras_probabilities: np.ndarray, labels: np.ndarray) -> dict:
    backbone = model.get_layer("backbone")
    kernels = [layer for layer in backbone.layers if isinstance(layer, (keras.layers.Conv2D,
                                                                         keras.layers.DepthwiseConv2D))]
    kernels.append(model.get_layer("predictions"))
    original = {layer.name: layer.get_weights() for layer in kernels}
    groups = {
        "all kernels": lambda name: True,
        "Conv1 (stem) only": lambda name: name == "Conv1",
        "expanded_conv only": lambda name: name.startswith("expanded_conv"),
        "block_1 only": lambda name: name.startswith("block_1_"),
        "block_2 only": lambda name: name.startswith("block_2_"),
        "blocks 3-5 only": lambda name: name.startswith(("block_3_", "block_4_", "block_5_")),
        "blocks 6-16, Conv_1, head": lambda name: re.match(r"block_([6-9]|1\d)_|Conv_1|predictions", name),
        "all but expanded_conv, block_1, block_2": lambda name: not name.startswith(EARLY_BLOCKS),
    }
    results = {}
    for group, chosen in groups.items():
        for layer in kernels:
            weights = [w.copy() for w in original[layer.name]]
            if chosen(layer.name):
                axis = 2 if isinstance(layer, keras.layers.DepthwiseConv2D) else weights[0].ndim - 1
                weights[0] = round_kernel(weights[0], axis)
            layer.set_weights(weights)
        probabilities = model.predict(images.astype(np.float32), verbose=0, batch_size=64)
        results[group] = score(probabilities, keras_probabilities, labels)
        print(f"weights only, {group}: {results[group]}", flush=True)
    for layer in kernels:
        layer.set_weights(original[layer.name])
    return results


def timed_export(model, output: Path, quantize: str, *, data, representative, reference,
                 options: ExportOptions) -> dict:
    """One `export_model` of a TFLite quantization, with its CPU and wall-clock seconds."""
    cpu, wall = time.process_time(), time.monotonic()
    try:
        parity = export_model(model, output, formats=[("tflite", quantize)], class_names=data.class_names,
                              parity_data=data.val, representative_images=representative, reference=reference,
                              options=options)
    except ExportRejectedError as error:
        parity = error.parity
    check = next(iter(parity.values()))
    return {"cpu_seconds": round(time.process_time() - cpu, 1), "wall_seconds": round(time.monotonic() - wall, 1),
            **check}


def search(args) -> None:
    """kerasdl's int8 (the search) against one strict int8-full conversion."""
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    model = load_model_for_export(args.model)
    size = int(model.input_shape[1])
    data = kerasdl.load_data(args.data, image_size=size, batch_size=32, val_split=0.2, seed=args.seed)
    sample = representative_files(data.files["train"], size=args.representative_size, seed=args.seed)
    representative = [np.asarray(x) for x, _ in make_dataset(sample, image_size=size, batch_size=32, cache=False)]
    reference = collect_predictions(batch_predictor(model), data.val)  # shared: both would compute it once
    load = os.getloadavg()[0]
    options = ExportOptions(seed=args.seed, max_accuracy_drop=args.max_accuracy_drop,
                            int8_bias_correction=not args.no_bias_correction)
    strict = timed_export(model, output / "full", "int8-full", data=data, representative=representative,
                          reference=reference, options=options)
    found = timed_export(model, output / "search", "int8", data=data, representative=representative,
                         reference=reference, options=options)
    record = found["int8_search"]
    results = {"model": args.model, "options": vars(args), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "load_average_before": round(load, 2), "load_average_after": round(os.getloadavg()[0], 2),
               "int8_full": strict, "int8": found, "summary": int8_summary(record, found["accuracy_change"]),
               "cost_vs_int8_full": {"cpu": round(found["cpu_seconds"] / strict["cpu_seconds"], 2),
                                     "wall": round(found["wall_seconds"] / strict["wall_seconds"], 2)}}
    (output / "int8_search.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"int8-full: accuracy change {strict['accuracy_change'] * 100:+.2f} pt, "
          f"{'rejected' if strict['rejected'] else 'passed'}, {strict['cpu_seconds']} s CPU, "
          f"{strict['wall_seconds']} s wall")
    for step in record["steps"]:
        print(f"  step: {step['float_ops']} ops in float, {step['size_bytes'] / 1e6:.2f} MB, "
              f"{step['accuracy_change'] * 100:+.2f} pt, agreement {step['top1_agreement']:.4f}")
    print(f"int8: {results['summary']}; {record['stopped']}; {found['cpu_seconds']} s CPU, "
          f"{found['wall_seconds']} s wall; cost vs int8-full {results['cost_vs_int8_full']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="A kerasdl .keras model.")
    parser.add_argument("--data", required=True, help="Its image folder (split as bench_export.py splits it).")
    parser.add_argument("--output", required=True, help="Folder for the .tflite files and int8.json.")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--representative-size", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--search", action="store_true",
                        help="Measure kerasdl's int8 search against one int8-full conversion (issue 21).")
    parser.add_argument("--max-accuracy-drop", type=float, default=0.01, help="With --search: the parity gate.")
    parser.add_argument("--no-bias-correction", action="store_true", help="With --search: int8 without it.")
    args = parser.parse_args()
    if args.search:
        search(args)
        return

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    data = kerasdl.load_data(args.data, image_size=args.image_size, batch_size=32, val_split=0.2, seed=args.seed)
    val_images, val_labels = images_of(data.files["val"], args.image_size)
    calibration, _ = images_of(representative_files(data.files["train"], size=args.representative_size,
                                                    seed=args.seed), args.image_size)
    stratified, _ = images_of(stratified_files(data.files["train"], size=args.representative_size,
                                               num_classes=len(data.class_names), seed=args.seed),
                              args.image_size)
    model = load_model_for_export(args.model)
    keras_probabilities = model.predict(val_images.astype(np.float32), verbose=0, batch_size=64)
    results = {"keras": score(keras_probabilities, keras_probabilities, val_labels), "tflite": {}}

    int8 = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    int16 = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    with tempfile.TemporaryDirectory(prefix="bench_int8_") as scratch:
        saved_model = export_saved_model(model, Path(scratch) / "saved_model")
        settings = {
            "float32 (no quantization)": lambda: tf.lite.TFLiteConverter.from_saved_model(str(saved_model)),
            "int8, kerasdl default (per-channel, uint8 io)": lambda: converter_for(saved_model, calibration, ops=int8),
            "int8, float io": lambda: converter_for(saved_model, calibration, ops=int8, uint8_io=False),
            "int8, per-tensor weights": lambda: converter_for(saved_model, calibration, ops=int8, per_tensor=True),
            "int8, stratified calibration": lambda: converter_for(saved_model, stratified, ops=int8),
            "int16 activations, int8 weights": lambda: converter_for(saved_model, calibration, ops=int16,
                                                                     uint8_io=False),
            "int8, expanded_conv and blocks 1-5 in float": lambda: selective(saved_model, calibration),
        }
        sizes = {}
        for index, (name, make) in enumerate(settings.items()):
            made = make()
            flatbuffer = made if isinstance(made, bytes) else made.convert()
            path = output / f"variant_{index}.tflite"
            path.write_bytes(flatbuffer)
            runner = TFLiteModel(path)
            probabilities = np.concatenate([runner.predict_batch(val_images[i:i + 1])
                                            for i in range(len(val_images))])
            sizes[name] = len(flatbuffer)
            results["tflite"][name] = {"file": path.name, "bytes": len(flatbuffer),
                                       "vs_float32": round(len(flatbuffer) / sizes["float32 (no quantization)"], 4),
                                       "input": runner.tensor_info()["input"],
                                       **score(probabilities, keras_probabilities, val_labels)}
            print(name, results["tflite"][name], flush=True)
    results["weights_only"] = weights_only(model, val_images, keras_probabilities, val_labels)
    (output / "int8.json").write_text(json.dumps(results, indent=1, default=str))


def selective(saved_model: Path, calibration: np.ndarray) -> bytes:
    """int8 everywhere except the ops of the early narrow blocks, which stay float."""
    from ai_edge_litert.interpreter import Interpreter

    # The denylist names op output tensors; read them from the plain int8 file (a
    # QuantizationDebugger probe in the same process made the denylist a no-op).
    plain = Interpreter(model_content=converter_for(saved_model, calibration,
                                                    ops=[tf.lite.OpsSet.TFLITE_BUILTINS_INT8]).convert())
    tensor_names = {tensor["index"]: tensor["name"] for tensor in plain.get_tensor_details()}
    names = [tensor_names[index] for op in plain._get_ops_details() for index in op["outputs"]]
    names = [name for name in names if re.search(r"/(expanded_conv|block_[1-5])_", name)]
    print(f"kept in float: {len(names)} ops", flush=True)
    converter = converter_for(saved_model, calibration, ops=[tf.lite.OpsSet.TFLITE_BUILTINS])
    debug_images = lambda: ([image[None].astype(np.float32)] for image in calibration[:2])  # noqa: E731
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=names)
    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=debug_images,
                                                         debug_options=options)
    return debugger.get_nondebug_quantized_model()

if __name__ == "__main__":
    main()
