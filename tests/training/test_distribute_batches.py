"""Mirrored training with batches that do not split evenly over the replicas."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from kerasdl.errors import RecipeError
from kerasdl.training.distribute import check_batch_splits, even_batches, fit_replicas
from tests.support import TINY_RECIPE_FILE, write_class_folder

RECIPE = str(TINY_RECIPE_FILE)


def batched(count: int, batch_size: int, *, weights: bool = False):
    images = np.arange(count, dtype="float32").reshape(count, 1)
    labels = np.arange(count) % 2
    items = (images, labels, np.ones(count, "float32")) if weights else (images, labels)
    return tf.data.Dataset.from_tensor_slices(items).batch(batch_size)


@pytest.mark.parametrize("count, sizes", [(9, [4, 4]), (11, [4, 4, 2]), (8, [4, 4]), (1, [])])
def test_even_batches_trim_the_last_batch_to_a_multiple_of_the_replicas(count, sizes):
    trimmed = even_batches(batched(count, 4), 2, count=count, batch_size=4)
    assert [len(x) for x, _ in trimmed] == sizes
    assert int(trimmed.cardinality()) == len(sizes)
    kept = np.concatenate([x[:, 0] for x, _ in trimmed]) if sizes else np.array([])
    np.testing.assert_array_equal(kept, np.arange(sum(sizes)))  # the first images, in order


def test_even_batches_keep_every_part_of_a_batch_and_pass_through_one_replica():
    trimmed = even_batches(batched(7, 4, weights=True), 2, count=7, batch_size=4)
    assert [tuple(len(part) for part in batch) for batch in trimmed] == [(4, 4, 4), (2, 2, 2)]
    plain = batched(7, 4)
    assert even_batches(plain, 1, count=7, batch_size=4) is plain
    assert even_batches(None, 2, count=0, batch_size=4) is None
    assert fit_replicas() == 1  # no strategy in this process


def test_a_batch_that_does_not_split_is_refused_in_one_line():
    check_batch_splits(8, 2)
    check_batch_splits(3, 1)
    with pytest.raises(RecipeError, match="multiple of the 2 replicas.*Received: batch_size=3. Use 2 or 4"):
        check_batch_splits(3, 2)


@pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
    reason="KERASDL_CPU_DEVICES splits TensorFlow's CPU into replicas; JAX's data parallelism is "
           "tests/cli/test_training_cli.py::test_jax_backend_data_parallel_over_two_cpu_devices")
def test_mirrored_run_with_odd_split_sizes(tmp_path):
    # 9 training and 3 validation images, batch 4, 2 replicas: without trimming,
    # Keras 3's fit fails on the last batches (AddN of unequal per-replica shapes).
    data = write_class_folder(tmp_path / "images", per_class=7, size=24)
    for name in ("cat_0.png", "cat_1.png"):
        (data / "cat" / name).unlink()
    env = {**os.environ, "KERASDL_CPU_DEVICES": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "kerasdl.cli", "run", RECIPE, "--data", str(data), "--quiet",
               "--distribute", "mirrored", "--epochs", "1", "--fine-tune-epochs", "1",
               "--set", "data.val_split=0.25", "--export", "none"]
    done = subprocess.run([*command, "--batch-size", "4", "--output", str(tmp_path / "run")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "leaves out the last 1 training and 1 validation images" in done.stdout
    assert "Done: accuracy" in done.stdout and "on 3 val images" in done.stdout

    refused = subprocess.run([*command, "--batch-size", "3", "--output", str(tmp_path / "refused")],
                             capture_output=True, text=True, env=env, timeout=600)
    assert refused.returncode == 1
    assert "Error: --batch-size: Expected a batch size that is a multiple of the 2 replicas" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "refused").exists()
