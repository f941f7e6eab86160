"""What the TensorBoard logs cost: `kerasdl run` with and without `--tensorboard`.

Runs the same small run alternately with `--tensorboard` and
`--no-tensorboard`, each in a fresh process, and reports per run the wall
time, the training time of each phase (from config.json) and the size of
`logs/`. Alternating spreads the shared machine's noise over both arms.

Usage:
    python bench/bench_tensorboard.py [--repeats 3] [--workdir DIR] [-- RUN OPTIONS...]
    python bench/bench_tensorboard.py --in-process [--repeats 4]

`--in-process` times only `model.fit` with and without the callback, in one
process on the sample data (MobileNetV2 alpha 0.35, 96 px, 3 epochs,
end to end), alternating: the machine's noise then hits both arms alike.
It also times the callback's own hooks (the time fit spends inside the
TensorBoard callback), which a busy machine inflates far less than it
inflates a whole fit.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_RUN = ["mobilenetv2-transfer", "--data", "sample", "--image-size", "96", "--epochs", "5",
               "--fine-tune-epochs", "2", "--weights", "none", "--export", "none", "--quiet"]


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def one_run(run_args: list[str], output: Path, tensorboard: bool) -> dict:
    command = [sys.executable, "-m", "kerasdl.cli", "run", *run_args, "--output", str(output),
               "--overwrite", "--tensorboard" if tensorboard else "--no-tensorboard"]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    config = json.loads((output / "config.json").read_text())
    phases = {phase["name"]: phase["seconds"] for phase in config["training"]["phases"]}
    return {"tensorboard": tensorboard, "wall_s": round(wall, 2), "train_s": round(sum(phases.values()), 2),
            "phases_s": phases, "logs_bytes": folder_bytes(output / "logs")}


HOOKS = ("set_model", "on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
         "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end")


def timed_hooks(callback, total: list[float]):
    """Wraps the callback's hooks so `total[0]` adds up the seconds spent in them."""
    for name in HOOKS:
        hook = getattr(callback, name)

        def timed(*args, _hook=hook, **kwargs):
            started = time.perf_counter()
            try:
                return _hook(*args, **kwargs)
            finally:
                total[0] += time.perf_counter() - started

        setattr(callback, name, timed)
    return callback


def in_process(repeats: int, workdir: Path) -> None:
    import keras

    from kerasdl.data.load import load_data
    from kerasdl.models.classifier import build_classifier
    from kerasdl.training.engine import tensorboard_callback

    data = load_data("sample", image_size=96, batch_size=16)
    times: dict[bool, list[float]] = {True: [], False: []}
    hooks: list[float] = []
    for repeat in range(repeats):
        for tensorboard in (True, False) if repeat % 2 == 0 else (False, True):
            keras.utils.set_random_seed(0)
            model = build_classifier("mobilenetv2", 2, image_size=96, weights=None,
                                     backbone_options={"alpha": 0.35}, trainable="all")
            model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
            callbacks, inside = [], [0.0]
            if tensorboard:
                callbacks = [timed_hooks(tensorboard_callback(workdir / f"r{repeat}", "phase"), inside)]
            started = time.perf_counter()
            model.fit(data.train, validation_data=data.val, epochs=3, verbose=0, callbacks=callbacks)
            times[tensorboard].append(time.perf_counter() - started)
            if tensorboard:
                hooks.append(inside[0])
            print(f"tensorboard={tensorboard}: fit {times[tensorboard][-1]:.2f} s"
                  + (f", inside the callback {inside[0]:.3f} s" if tensorboard else ""), flush=True)
    for tensorboard in (True, False):
        print(f"tensorboard={tensorboard}: median fit {statistics.median(times[tensorboard]):.2f} s "
              f"(min {min(times[tensorboard]):.2f}) over {repeats}")
    print(f"inside the TensorBoard callback: median {statistics.median(hooks):.3f} s per 3-epoch fit "
          f"(max {max(hooks):.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--in-process", action="store_true", help="time model.fit alone (see above)")
    parser.add_argument("run_args", nargs="*", help="kerasdl run arguments (after --)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_tb_"))
    if args.in_process:
        in_process(args.repeats, workdir)
        return
    run_args = args.run_args or DEFAULT_RUN
    env_note = os.getloadavg()
    results = []
    for repeat in range(args.repeats):
        for tensorboard in (True, False) if repeat % 2 == 0 else (False, True):
            result = one_run(run_args, workdir / f"run_{int(tensorboard)}", tensorboard)
            results.append(result)
            print(json.dumps(result), flush=True)
    for tensorboard in (True, False):
        arm = [r for r in results if r["tensorboard"] == tensorboard]
        print(f"tensorboard={tensorboard}: median wall {statistics.median(r['wall_s'] for r in arm):.2f} s, "
              f"median training {statistics.median(r['train_s'] for r in arm):.2f} s, "
              f"logs {arm[0]['logs_bytes'] / 1e3:.0f} KB")
    print(f"load average before: {env_note[0]:.1f}")


if __name__ == "__main__":
    main()
