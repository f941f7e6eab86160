"""Benchmark TFLite export: size, single-image latency and accuracy per quantization.

A real backbone (by default MobileNetV2 alpha 0.35, ImageNet weights from
../shared/weights; `--backbone efficientnetlite0` takes EfficientNet-Lite0 with
the ImageNet weights of the `lite0` extra) is fine-tuned on ../shared/data/flowers128, then exported by kerasdl as float32,
float16, dynamic-range and int8 TFLite (and ONNX when the `onnx` extra is
installed). For each file: its size, its latency on one image with the LiteRT
interpreter at 1 and 2 threads, and its accuracy on the validation split
(kerasdl's parity check), next to the Keras model (`predict` and a direct
`model(x)` call) measured in the same run.

Training is kept short: the head is trained on backbone features computed
once (a few epochs in seconds), then one fine-tuning epoch of the last two
blocks runs on the images.

Run:
    python bench/bench_export.py --output /tmp/bench_export
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerasdl  # noqa: E402
from kerasdl.data.pipeline import make_dataset  # noqa: E402
from kerasdl.errors import ExportError, ExportRejectedError  # noqa: E402
from kerasdl.export.exporter import export_model
from kerasdl.export.options import ExportOptions, check_export_requirements, parse_export_list
from kerasdl.export.tflite import representative_files
from kerasdl.inference.runners import OnnxModel, TFLiteModel
from kerasdl.models.classifier import get_backbone_layer, set_trainable  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
WEIGHTS = SHARED / "weights" / "mobilenet_v2_0.35_224_no_top_from_teachable_machine.weights.h5"
# name -> (kerasdl backbone, weights, backbone options, fine-tuned layers)
BACKBONE_CHOICES = {
    "mobilenetv2-0.35": ("mobilenetv2", str(WEIGHTS), {"alpha": 0.35}, "blocks:2"),
    "efficientnetlite0": ("efficientnetlite0", "imagenet", {}, "blocks:2"),
}
DATA = SHARED / "data" / "flowers128"


def median_ms(function, *, runs: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def train_model(data, *, head_epochs: int, fine_tune_epochs: int, seed: int,
                backbone: str = "mobilenetv2-0.35"):
    """Head on features computed once, then fine-tuning of the last two blocks."""
    keras.utils.set_random_seed(seed)
    name, weights, options, fine_tuned = BACKBONE_CHOICES[backbone]
    model = kerasdl.build_classifier(name, len(data.class_names), weights=weights,
                                     image_size=data.image_size, backbone_options=options)
    features = keras.Model(model.input, model.get_layer("avg_pool").output)
    started = time.perf_counter()
    # data.train reshuffles every iteration: compute features and labels in one pass.
    pairs = [(features.predict_on_batch(x), y.numpy()) for x, y in data.train]
    train_x = np.concatenate([p for p, _ in pairs])
    train_y = np.concatenate([y for _, y in pairs])
    val_x = features.predict(data.val.map(lambda x, y: x), verbose=0)
    val_y = np.concatenate([y for _, y in data.val])
    head = keras.Sequential([keras.Input(train_x.shape[1:]), keras.layers.Dropout(0.2),
                             keras.layers.Dense(len(data.class_names), activation="softmax")])
    head.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                 metrics=["accuracy"])
    head.fit(train_x, train_y, epochs=head_epochs, batch_size=32, validation_data=(val_x, val_y), verbose=2)
    model.get_layer("predictions").set_weights(head.layers[-1].get_weights())
    head_seconds = time.perf_counter() - started

    started = time.perf_counter()
    if fine_tune_epochs:
        set_trainable(model, fine_tuned)
        model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(data.train, epochs=fine_tune_epochs, validation_data=data.val, verbose=2)
    get_backbone_layer(model).trainable = False
    return model, {"head_seconds": round(head_seconds, 1),
                   "fine_tune_seconds": round(time.perf_counter() - started, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="/tmp/bench_export", help="Folder for the exported files.")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--head-epochs", type=int, default=5)
    parser.add_argument("--fine-tune-epochs", type=int, default=1)
    parser.add_argument("--representative-size", type=int, default=300)
    parser.add_argument("--runs", type=int, default=50, help="Timed single-image calls per runtime.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backbone", choices=sorted(BACKBONE_CHOICES), default="mobilenetv2-0.35")
    args = parser.parse_args()

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    data = kerasdl.load_data(DATA, image_size=args.image_size, batch_size=32, val_split=0.2, seed=args.seed)
    print(f"train {len(data.files['train'])} / val {len(data.files['val'])} images, {args.image_size} px")
    model, training = train_model(data, head_epochs=args.head_epochs,
                                  fine_tune_epochs=args.fine_tune_epochs, seed=args.seed,
                                  backbone=args.backbone)

    model.save(output / "model.keras")  # for `kerasdl export` experiments on the same model
    formats = parse_export_list("tflite,tflite:float16,tflite:dynamic,tflite:int8")
    try:
        check_export_requirements([("onnx", "none")])
        formats.append(("onnx", "none"))
    except ExportError as error:
        print(f"ONNX left out: {error}")
    sample = representative_files(data.files["train"], size=args.representative_size, seed=args.seed)
    representative = make_dataset(sample, image_size=args.image_size, batch_size=32, cache=False)
    started = time.perf_counter()
    try:
        parity = export_model(model, output, formats=formats, class_names=data.class_names,
                              parity_data=data.val, representative_images=(x for x, _ in representative),
                              options=ExportOptions(representative_size=args.representative_size))
    except ExportRejectedError as error:
        print(f"REJECTED: {error}")
        parity = error.parity
    export_seconds = time.perf_counter() - started

    image = np.asarray(next(iter(data.val))[0][:1])
    keras_predict = median_ms(lambda: model.predict(image, verbose=0), runs=max(10, args.runs // 2))
    keras_call = median_ms(lambda: model(image, training=False), runs=args.runs)
    rows = []
    float_size = (output / "model.tflite").stat().st_size
    for check in parity.values():
        path = output / check["file"]
        runner_class = OnnxModel if check["format"] == "onnx" else TFLiteModel
        latency = {}
        for threads in (1, 2):
            runner = runner_class(path, num_threads=threads)
            latency[threads] = median_ms(lambda r=runner: r.predict_batch(image), runs=args.runs)
        rows.append({
            "file": check["file"], "quantization": check["quantization"], "format": check["format"],
            "size_mb": path.stat().st_size / 1e6, "size_vs_float32": path.stat().st_size / float_size,
            "ms_1_thread": latency[1], "ms_2_threads": latency[2], "accuracy": check["accuracy"],
            "keras_accuracy": check["keras_accuracy"], "accuracy_change": check["accuracy_change"],
            "top1_agreement": check["top1_agreement"],
            "max_abs_probability_difference": check["max_abs_probability_difference"],
            "rejected": check["rejected"],
        })
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "backbone": args.backbone,
        "load_average_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "image_size": args.image_size, "val_images": len(data.files["val"]),
        "training": training, "export_seconds_all_formats": round(export_seconds, 1),
        "keras_predict_ms": keras_predict, "keras_call_ms": keras_call, "files": rows,
    }
    (output / "bench_export.json").write_text(json.dumps(result, indent=2))

    print(f"\nKeras model: predict {keras_predict:.1f} ms, model(x) {keras_call:.1f} ms per image; "
          f"val accuracy {rows[0]['keras_accuracy']:.4f} on {len(data.files['val'])} images")
    print("| file | size MB | vs fp32 | LiteRT/ORT 1 thread ms | 2 threads ms | accuracy | change | "
          "top-1 agreement | max abs dp | rejected |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['file']} | {row['size_mb']:.2f} | {row['size_vs_float32']:.0%} | "
              f"{row['ms_1_thread']:.2f} | {row['ms_2_threads']:.2f} | {row['accuracy']:.4f} | "
              f"{row['accuracy_change']:+.4f} | {row['top1_agreement']:.4f} | "
              f"{row['max_abs_probability_difference']:.4f} | {row['rejected']} |")
    print(json.dumps({k: v for k, v in result.items() if k != "files"}))


if __name__ == "__main__":
    main()
