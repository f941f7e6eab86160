"""The weights cache: Keras's file names, import/fetch/verify, offline imagenet, local files.

Keras's cache is pointed at a temporary folder and downloads are made to fail
at once (as on a machine without internet), so these tests never touch the
network or the real ~/.keras.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kerasdl._util.paths import file_hash
from kerasdl.backbones.build import build_backbone
from kerasdl.backbones.registry import BACKBONES, get_backbone
from kerasdl.backbones.weights import fetch_weights, import_weights, verify_cache, weight_file, weight_files
from kerasdl.cli.commands import main
from kerasdl.errors import WeightsError
from tests.support import (
    MOBILENET_025_NO_TOP,
    MOBILENET_025_WITH_TOP,
    MOBILENETV2_035_NO_TOP,
    requires_shared,
)


@pytest.fixture
def keras_home(tmp_path, monkeypatch) -> Path:
    """An empty Keras home, seen by Keras and kerasdl alike, with no network."""
    from keras.src.backend import config as keras_config
    from keras.src.utils import file_utils

    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(home))

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    return home


def cache_state(home: Path) -> dict[str, bytes]:
    folder = home / "models"
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.is_dir() else {}


def small_mobilenet_file(folder: Path, *, alpha=0.25, layout="keras3", include_top=False, seed=1) -> Path:
    """A MobileNet weights file with random weights, in Keras 3 or Keras 2 layout."""
    keras.utils.set_random_seed(seed)
    model = keras.applications.MobileNet(
        alpha=alpha, include_top=include_top, weights=None, input_shape=(32, 32, 3), classes=5
    )
    folder.mkdir(parents=True, exist_ok=True)
    if layout == "keras3":
        path = folder / f"mobilenet_{alpha}_{'top' if include_top else 'notop'}.weights.h5"
        model.save_weights(path)
    else:
        path = folder / f"mobilenet_{alpha}_{'top' if include_top else 'notop'}.h5"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy .h5 format is what Keras 2 wrote
            model.save(path)
    return path


def first_kernel(model: keras.Model) -> np.ndarray:
    return np.array(next(w for w in model.weights if w.name == "kernel"))


# --- The table of Keras's files ------------------------------------------------


def requested_file(monkeypatch, backbone: str, size: int, **options):
    """What Keras Applications itself asks `get_file` for: (name, url, hash)."""
    from keras.src.utils import file_utils

    asked = {}

    class Asked(Exception):
        pass

    def record(fname, origin, **kwargs):
        asked.update(fname=fname, origin=origin, file_hash=kwargs.get("file_hash"))
        raise Asked

    monkeypatch.setattr(file_utils, "get_file", record)
    spec = get_backbone(backbone)
    with pytest.raises(Asked), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MobileNet warns when it falls back to 224 px
        spec.constructor(include_top=False, weights="imagenet", input_shape=(size, size, 3), **options)
    return asked["fname"], asked["origin"], asked["file_hash"]


CHEAP_CASES = [
    ("mobilenet", 128, {"alpha": 0.25}),
    ("mobilenet", 100, {"alpha": 0.5}),  # Keras falls back to its 224 px file
    ("mobilenetv2", 96, {"alpha": 0.35}),
    ("mobilenetv2", 224, {"alpha": 1.3}),
    ("mobilenetv3small", 32, {"alpha": 0.75}),
    ("mobilenetv3small", 32, {"minimalistic": True}),
    ("efficientnetb0", 32, {}),
]


@pytest.mark.parametrize("backbone,size,options", CHEAP_CASES)
def test_weight_file_is_what_keras_asks_for(monkeypatch, backbone, size, options):
    entry = weight_file(backbone, options=options, image_size=size)
    assert requested_file(monkeypatch, backbone, size, **options) == (
        entry.file_name, entry.origin, entry.file_hash
    )


@pytest.mark.slow
def test_every_listed_file_is_what_keras_asks_for(monkeypatch):
    for entry in weight_files(all_sizes=True):
        if not entry.is_download:
            continue
        size = entry.image_size or max(get_backbone(entry.backbone).min_size, 75)
        asked = requested_file(monkeypatch, entry.backbone, size, **entry.options)
        assert asked == (entry.file_name, entry.origin, entry.file_hash), entry.describe()


def test_weight_file_refuses_widths_keras_has_no_weights_for():
    with pytest.raises(WeightsError, match=r"alpha in 0.25, 0.5, 0.75, 1.0 .* Received: alpha=0.3"):
        weight_file("mobilenet", options={"alpha": 0.3})


def test_every_backbone_with_imagenet_weights_has_a_listed_file():
    listed = {entry.backbone for entry in weight_files()}
    # Tests may register throwaway backbones of their own; only the package's count.
    with_weights = {name for name, spec in BACKBONES.items() if spec.imagenet_weights
                    and spec.constructor.__module__.split(".")[0] in ("keras", "kerasdl")}
    assert with_weights <= listed
    assert "resnet50" in listed and "alexnet" not in listed


def test_a_backbone_built_without_imagenet_weights_has_no_file():
    with pytest.raises(WeightsError, match="weights='none'"):
        weight_file("resnet18")


# --- Import, offline imagenet, verify ----------------------------------------


def test_imported_file_makes_offline_imagenet_work(keras_home, tmp_path):
    source = small_mobilenet_file(tmp_path / "files", alpha=0.25, layout="keras3")
    cached = import_weights("mobilenet", source, options={"alpha": 0.25})
    assert cached == keras_home / "models" / "mobilenet_2_5_224_tf_no_top.h5"
    assert oct(cached.stat().st_mode & 0o077) != "0o0"  # readable by others, like a download

    # Keras's own constructor finds the file without any network.
    base = build_backbone("mobilenet", image_size=64, weights="imagenet", options={"alpha": 0.25})
    reference = build_backbone("mobilenet", image_size=64, weights=str(source), options={"alpha": 0.25})
    assert np.array_equal(first_kernel(base), first_kernel(reference))
    assert [check.ok for check in verify_cache()] == [True]


def test_keras2_file_is_copied_byte_for_byte(keras_home, tmp_path):
    source = small_mobilenet_file(tmp_path / "files", alpha=0.5, layout="keras2")
    cached = import_weights("mobilenet", source, options={"alpha": 0.5}, image_size=128)
    assert cached.name == "mobilenet_5_0_128_tf_no_top.h5"
    assert cached.read_bytes() == source.read_bytes()


def test_offline_imagenet_without_cached_file_names_file_and_command(keras_home):
    with pytest.raises(WeightsError) as caught:
        build_backbone("mobilenetv2", image_size=96, weights="imagenet", options={"alpha": 0.35})
    message = str(caught.value)
    assert "\n" not in message
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5" in message
    assert "kerasdl weights import mobilenetv2 /path/to/" in message
    assert "--set alpha=0.35 --image-size 96" in message
    assert cache_state(keras_home) == {}


def test_fetch_offline_fails_with_one_line(keras_home):
    result = CliRunner().invoke(main, ["weights", "fetch", "mobilenet", "--set", "alpha=0.25"])
    assert result.exit_code == 1
    # Keras prints "Downloading data from URL"; the error is the one last line.
    assert result.output.strip().splitlines()[-1].startswith(
        "Error: Expected mobilenet_2_5_224_tf_no_top.h5 (ImageNet weights of mobilenet alpha=0.25"
    )
    assert cache_state(keras_home) == {}


def test_hash_checked_backbone_refuses_a_different_file(keras_home, tmp_path):
    source = small_mobilenet_file(tmp_path / "files")
    with pytest.raises(WeightsError, match="md5 d3e8ec802a04aa4fc771ee12a9a9b836"):
        import_weights("mobilenetv3small", source)
    assert cache_state(keras_home) == {}


def test_cached_file_with_wrong_hash_is_kept_and_reported(keras_home):
    entry = weight_file("efficientnetb0")
    entry.path.parent.mkdir(parents=True)
    entry.path.write_bytes(b"not the real file")
    with pytest.raises(WeightsError, match="kerasdl weights fetch efficientnetb0"):
        build_backbone("efficientnetb0", image_size=32, weights="imagenet")
    assert entry.path.read_bytes() == b"not the real file"  # Keras would have deleted it
    with pytest.raises(WeightsError, match="Received: neither"):
        fetch_weights("efficientnetb0")
    assert cache_state(keras_home) == {entry.file_name: b"not the real file"}


def test_broken_cached_file_without_hash_says_so(keras_home):
    entry = weight_file("mobilenet", options={"alpha": 0.25})
    entry.path.parent.mkdir(parents=True)
    entry.path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(WeightsError, match=r"Expected the cached .*mobilenet_2_5_224_tf_no_top.h5 to load"):
        build_backbone("mobilenet", image_size=32, weights="imagenet", options={"alpha": 0.25})


# --- Bad input leaves the cache as it was ---------------------------------------


@pytest.fixture
def cache_with_a_file(keras_home, tmp_path) -> dict[str, bytes]:
    import_weights("mobilenet", small_mobilenet_file(tmp_path / "good", alpha=0.25), options={"alpha": 0.25})
    return cache_state(keras_home)


def test_not_hdf5_is_refused(keras_home, cache_with_a_file, tmp_path):
    bad = tmp_path / "weights.h5"
    bad.write_text("<html>404 Not Found</html>")
    with pytest.raises(WeightsError, match="not an HDF5 file"):
        import_weights("mobilenet", bad, options={"alpha": 0.25})
    assert cache_state(keras_home) == cache_with_a_file


def test_truncated_file_is_refused(keras_home, cache_with_a_file, tmp_path):
    good = small_mobilenet_file(tmp_path / "files", alpha=0.25, layout="keras2")
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WeightsError, match="truncated"):
        import_weights("mobilenet", truncated, options={"alpha": 0.25})
    assert cache_state(keras_home) == cache_with_a_file


def test_file_for_another_alpha_is_refused(keras_home, cache_with_a_file, tmp_path):
    other = small_mobilenet_file(tmp_path / "files", alpha=0.5)
    with pytest.raises(WeightsError, match=r"Expected a weights file for mobilenet alpha=0.25\. .*must match"):
        import_weights("mobilenet", other, options={"alpha": 0.25})
    assert cache_state(keras_home) == cache_with_a_file


def test_file_for_another_backbone_is_refused(keras_home, cache_with_a_file, tmp_path):
    keras.utils.set_random_seed(0)
    other = tmp_path / "v2.weights.h5"
    keras.applications.MobileNetV2(alpha=0.35, include_top=False, weights=None,
                                   input_shape=(32, 32, 3)).save_weights(other)
    with pytest.raises(WeightsError, match="does not load"):
        import_weights("mobilenet", other, options={"alpha": 0.25})
    assert cache_state(keras_home) == cache_with_a_file


def test_unwritable_cache_is_refused(keras_home, tmp_path):
    (keras_home / "models").write_text("a file where the cache folder should be")
    source = small_mobilenet_file(tmp_path / "files")
    with pytest.raises(WeightsError, match="Expected a writable Keras cache folder"):
        import_weights("mobilenet", source, options={"alpha": 0.25})
    assert (keras_home / "models").read_text() == "a file where the cache folder should be"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_cache_is_refused(keras_home, cache_with_a_file, tmp_path):
    source = small_mobilenet_file(tmp_path / "files", alpha=0.5)
    (keras_home / "models").chmod(0o555)
    try:
        with pytest.raises(WeightsError, match="cannot be written"):
            import_weights("mobilenet", source, options={"alpha": 0.5})
    finally:
        (keras_home / "models").chmod(0o755)
    assert cache_state(keras_home) == cache_with_a_file


def test_verify_reports_a_broken_file(keras_home, cache_with_a_file):
    broken = keras_home / "models" / "mobilenet_5_0_224_tf_no_top.h5"
    broken.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    (keras_home / "models" / "notes.txt").write_text("not weights")
    result = CliRunner().invoke(main, ["weights", "verify"])
    assert result.exit_code == 1
    assert "ok      mobilenet_2_5_224_tf_no_top.h5" in result.output
    assert "FAILED  mobilenet_5_0_224_tf_no_top.h5" in result.output
    assert "skipped notes.txt" in result.output


def test_list_shows_cached_files(keras_home, cache_with_a_file):
    result = CliRunner().invoke(main, ["weights", "list", "mobilenet", "resnet50"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    cached = next(line for line in lines if "mobilenet_2_5_224_tf_no_top.h5" in line)
    assert " yes " in cached
    sha256 = file_hash(keras_home / "models" / "mobilenet_2_5_224_tf_no_top.h5")
    assert f"cached file sha256 {sha256}" in result.output
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in result.output
    assert "md5 4d473c1dd8becc155b73f8504c6f6626" in result.output
    assert "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" in result.output


def test_import_cli_round_trip(keras_home, tmp_path):
    source = small_mobilenet_file(tmp_path / "files", alpha=0.75, layout="keras2")
    result = CliRunner().invoke(
        main, ["weights", "import", "mobilenet", str(source), "--set", "alpha=0.75", "--image-size", "160"]
    )
    assert result.exit_code == 0, result.output
    assert (keras_home / "models" / "mobilenet_7_5_160_tf_no_top.h5").is_file()


# --- Local files (--weights FILE) ------------------------------------------------


def test_keras2_file_with_top_loads_into_backbone_by_name(tmp_path):
    with_top = small_mobilenet_file(tmp_path, alpha=0.25, layout="keras2", include_top=True)
    base = build_backbone("mobilenet", image_size=32, weights=str(with_top), options={"alpha": 0.25})
    reference = keras.applications.MobileNet(alpha=0.25, include_top=True, weights=None,
                                             input_shape=(32, 32, 3), classes=5)
    reference.load_weights(with_top)
    assert np.array_equal(first_kernel(base), first_kernel(reference))


def test_keras3_file_named_h5_is_loaded(tmp_path):
    source = small_mobilenet_file(tmp_path, alpha=0.25)
    renamed = tmp_path / "renamed.h5"
    shutil.copyfile(source, renamed)
    base = build_backbone("mobilenet", image_size=32, weights=str(renamed), options={"alpha": 0.25})
    reference = build_backbone("mobilenet", image_size=32, weights=str(source), options={"alpha": 0.25})
    assert np.array_equal(first_kernel(base), first_kernel(reference))


def test_file_covering_only_part_of_the_backbone_is_refused(tmp_path):
    # A Keras 2 file whose one layer is named like MobileNet's first: loading by
    # name would succeed and leave every other layer random.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="conv1")(inputs)
    partial = tmp_path / "one_conv.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keras.Model(inputs, outputs).save(partial)
    with pytest.raises(WeightsError, match="no weights for 26 of 27 layers"):
        build_backbone("mobilenet", image_size=32, weights=str(partial), options={"alpha": 0.25})


@pytest.mark.slow
@requires_shared(MOBILENET_025_NO_TOP, MOBILENET_025_WITH_TOP, MOBILENETV2_035_NO_TOP)
def test_real_files_load_at_another_size():
    no_top = build_backbone("mobilenet", image_size=96, weights=str(MOBILENET_025_NO_TOP),
                            options={"alpha": 0.25})
    from_top = build_backbone("mobilenet", image_size=96, weights=str(MOBILENET_025_WITH_TOP),
                              options={"alpha": 0.25})
    assert np.array_equal(first_kernel(no_top), first_kernel(from_top))  # the same ImageNet weights
    build_backbone("mobilenetv2", image_size=96, weights=str(MOBILENETV2_035_NO_TOP), options={"alpha": 0.35})
    with pytest.raises(WeightsError, match="mobilenetv2 alpha=0.5"):
        build_backbone("mobilenetv2", image_size=96, weights=str(MOBILENETV2_035_NO_TOP),
                       options={"alpha": 0.5})


@pytest.mark.slow
@requires_shared(MOBILENET_025_NO_TOP, MOBILENET_025_WITH_TOP, MOBILENETV2_035_NO_TOP)
def test_real_files_import_and_work_offline(keras_home):
    import_weights("mobilenet", MOBILENET_025_NO_TOP, options={"alpha": 0.25})
    assert (keras_home / "models" / "mobilenet_2_5_224_tf_no_top.h5").read_bytes() == \
        MOBILENET_025_NO_TOP.read_bytes()
    # The with-top file serves as the 128 px no-top file; the Teachable Machine file as MobileNetV2's.
    import_weights("mobilenet", MOBILENET_025_WITH_TOP, options={"alpha": 0.25}, image_size=128)
    import_weights("mobilenetv2", MOBILENETV2_035_NO_TOP, options={"alpha": 0.35})
    a = build_backbone("mobilenet", image_size=224, weights="imagenet", options={"alpha": 0.25})
    b = build_backbone("mobilenet", image_size=128, weights="imagenet", options={"alpha": 0.25})
    assert np.array_equal(first_kernel(a), first_kernel(b))
    build_backbone("mobilenetv2", image_size=100, weights="imagenet", options={"alpha": 0.35})
    assert all(check.ok for check in verify_cache())


def test_run_fails_before_reading_data_when_weights_are_missing(keras_home, tiny_recipe, image_folder, tmp_path,
                                                                monkeypatch):
    """The weights come after the cheap checks (the data's path), before any image is read."""
    import kerasdl.data.load as load
    from kerasdl.app.run import run_recipe

    def no_scan(*args, **kwargs):
        raise AssertionError("images were read before the weights were checked")

    monkeypatch.setattr(load, "scan_images", no_scan)
    tiny_recipe.backbone.weights = "imagenet"
    with pytest.raises(WeightsError, match=r"kerasdl weights import mobilenetv2 .* --set alpha=0.35"):
        run_recipe(tiny_recipe, str(image_folder), output_dir=tmp_path / "run", export=[])
    assert not (tmp_path / "run").exists()


def test_keras2_file_with_top_is_imported_without_top(keras_home, tmp_path):
    with_top = small_mobilenet_file(tmp_path / "files", alpha=0.25, layout="keras2", include_top=True)
    cached = import_weights("mobilenet", with_top, options={"alpha": 0.25}, image_size=192)
    base = build_backbone("mobilenet", image_size=192, weights="imagenet", options={"alpha": 0.25})
    reference = build_backbone("mobilenet", image_size=32, weights=str(with_top), options={"alpha": 0.25})
    assert cached.read_bytes() != with_top.read_bytes()
    assert np.array_equal(first_kernel(base), first_kernel(reference))
