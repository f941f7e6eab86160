"""int8 export with and without bias correction, on the same model, calibration samples and images.

For a trained kerasdl `.keras` model and its data folder, exports full-integer
int8 TFLite (uint8 I/O) with `--int8-bias-correction` on and off, for several
seeded calibration samples, and reports on the validation split the accuracy
change against the Keras model and the top-1 agreement with it (kerasdl's
parity check).

Run (the model from bench/bench_export.py):
    python bench/bench_bias_correction.py --model /tmp/bench_export/model.keras \\
        --data ../shared/data/flowers128 --output /tmp/bench_bias --seeds 0 1 2
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

import kerasdl  # noqa: E402
from kerasdl.app.export_file import export_file  # noqa: E402
from kerasdl.errors import ExportRejectedError  # noqa: E402
from kerasdl.export.options import ExportOptions  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="A trained .keras classifier.")
    parser.add_argument("--data", required=True, help="Its data folder (same split as training).")
    parser.add_argument("--output", default="/tmp/bench_bias", help="Folder for the int8 files.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Calibration sample seeds.")
    parser.add_argument("--representative-size", type=int, default=300)
    args = parser.parse_args()

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    rows = []
    for corrected in (False, True):
        for seed in args.seeds:
            name = f"int8_{'corrected' if corrected else 'plain'}_seed{seed}.tflite"
            options = ExportOptions(representative_size=args.representative_size, seed=seed,
                                    int8_bias_correction=corrected, max_accuracy_drop=1.0)
            started = time.perf_counter()
            try:
                parity = export_file(args.model, output / name, export_format="tflite", quantize="int8",
                                     data_source=args.data, overwrite=True, options=options)
            except ExportRejectedError as error:  # not expected with max_accuracy_drop=1
                parity = error.parity
            check = parity[name]
            rows.append({"bias_correction": corrected, "seed": seed, "seconds": round(time.perf_counter() - started, 1),
                         "keras_accuracy": round(check["keras_accuracy"], 4), "accuracy": round(check["accuracy"], 4),
                         "accuracy_change": round(check["accuracy_change"], 4),
                         "top1_agreement": round(check["top1_agreement"], 4)})
            print(json.dumps(rows[-1]), flush=True)
    summary = {}
    for corrected in (False, True):
        chosen = [r for r in rows if r["bias_correction"] is corrected]
        summary["corrected" if corrected else "plain"] = {
            "mean_accuracy_change": round(statistics.mean(r["accuracy_change"] for r in chosen), 4),
            "worst_accuracy_change": min(r["accuracy_change"] for r in chosen),
            "mean_top1_agreement": round(statistics.mean(r["top1_agreement"] for r in chosen), 4)}
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "model": args.model,
              "kerasdl": kerasdl.__version__, "rows": rows, "summary": summary}
    (output / "bench_bias_correction.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
