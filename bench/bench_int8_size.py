"""Where the bytes of an int8 TFLite file go, for narrow and standard-width backbones.

Builds kerasdl classifiers (5 classes, random weights: file sizes do not depend
on the weight values) for several backbones and widths, exports float32 and
full-integer int8 TFLite with kerasdl, and splits each int8 file into: int8
weights, int32 biases, quantization parameters (a float32 scale and an int64
zero point per channel of every per-channel tensor), tensor names, and the
rest (graph, metadata). Answers: why is int8 of MobileNetV2 alpha 0.35 40% of
its float32 size instead of about 25%?

Run:
    python bench/bench_int8_size.py --output /tmp/bench_int8_size
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

import numpy as np  # noqa: E402
from tensorflow.lite.python import schema_py_generated as schema  # noqa: E402

import kerasdl  # noqa: E402
from kerasdl.export.tflite import export_tflite  # noqa: E402

BACKBONES = (
    ("mobilenet", {"alpha": 0.25}),
    ("mobilenetv2", {"alpha": 0.35}),
    ("mobilenetv2", {"alpha": 1.0}),
    ("efficientnetlite0", {}),
    ("efficientnetb0", {}),
    ("resnet50", {}),
)
TYPE_NAMES = {value: name for name, value in vars(schema.TensorType).items() if not name.startswith("_")}


def breakdown(path: Path) -> dict[str, int]:
    """Bytes of a .tflite file by what they hold."""
    data = path.read_bytes()
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    parts: collections.Counter = collections.Counter()
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            buffer = model.buffers[tensor.buffer].data
            if buffer is not None:
                kind = TYPE_NAMES[tensor.type]
                parts["int8 weights" if kind == "INT8" else "int32 biases" if kind == "INT32"
                      else f"{kind.lower()} constants"] += len(buffer)
            quantization = tensor.quantization
            if quantization is not None and quantization.scale is not None:
                parts["quantization parameters"] += 4 * len(quantization.scale)
                parts["quantization parameters"] += 8 * len(quantization.zeroPoint if quantization.zeroPoint
                                                            is not None else [])
            parts["tensor names"] += len(tensor.name) if tensor.name is not None else 0
    parts["graph and the rest"] = len(data) - sum(parts.values())
    return dict(parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="/tmp/bench_int8_size")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--only", nargs="*", default=None, help="Backbone names to measure (default: all).")
    args = parser.parse_args()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    calibration = [np.random.default_rng(0).uniform(0, 255, (8, args.image_size, args.image_size, 3))]
    rows = []
    for backbone, options in BACKBONES:
        if args.only and backbone not in args.only:
            continue
        label = backbone + "".join(f" {k}={v}" for k, v in options.items())
        model = kerasdl.build_classifier(backbone, 5, weights=None, image_size=args.image_size,
                                         backbone_options=options)
        stem = output / label.replace(" ", "_").replace("=", "")
        float_size = export_tflite(model, stem.with_suffix(".float32.tflite")).stat().st_size
        int8_path = export_tflite(model, stem.with_suffix(".int8.tflite"), quantize="int8",
                                  representative_images=calibration)
        parts = breakdown(int8_path)
        row = {"backbone": label, "parameters": model.count_params(), "float32_bytes": float_size,
               "int8_bytes": int8_path.stat().st_size,
               "int8_vs_float32": round(int8_path.stat().st_size / float_size, 4),
               "parts_vs_float32": {k: round(v / float_size, 4) for k, v in parts.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "image_size": args.image_size,
              "rows": rows}
    (output / "bench_int8_size.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
