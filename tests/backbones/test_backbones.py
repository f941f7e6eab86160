"""The backbone registry, its preprocessing, and building backbones."""

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kerasdl.backbones.build import build_backbone
from kerasdl.backbones.registry import BACKBONES, get_backbone
from kerasdl.cli.commands import main
from kerasdl.errors import RecipeError
from kerasdl.models.classifier import preprocessing_layer

REQUIRED = [
    "resnet50", "resnet101", "resnet152", "mobilenet", "mobilenetv2", "mobilenetv3small",
    "mobilenetv3large", *[f"efficientnetb{i}" for i in range(8)], "efficientnetv2b0",
    "efficientnetv2b1", "efficientnetv2b2", "efficientnetv2b3", "efficientnetv2s",
    "convnext_tiny", "convnext_small", "densenet121", "xception", "inceptionv3",
]


def test_registry_has_every_required_backbone_with_size_and_preprocessing():
    for name in REQUIRED:
        spec = get_backbone(name)
        assert spec.default_size >= 224
        assert spec.preprocessing in ("tf", "torch", "caffe", "none")
    assert get_backbone("efficientnetb7").default_size == 600
    assert get_backbone("inceptionv3").default_size == 299
    assert "alpha" in get_backbone("mobilenetv2").options


def test_unknown_backbone_lists_the_valid_names():
    with pytest.raises(RecipeError, match="resnet50") as caught:
        get_backbone("resnet5O")
    assert "Received: 'resnet5O'" in str(caught.value)


def test_backbones_command_lists_every_backbone():
    result = CliRunner().invoke(main, ["backbones"])
    assert result.exit_code == 0
    for name in BACKBONES:
        assert name in result.output


@pytest.mark.parametrize(
    "mode, reference",
    [
        ("caffe", keras.applications.resnet50.preprocess_input),
        ("tf", keras.applications.mobilenet_v2.preprocess_input),
        ("torch", keras.applications.densenet.preprocess_input),
    ],
)
def test_preprocessing_layer_matches_keras_preprocess_input(mode, reference):
    images = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    expected = reference(images.copy())
    received = keras.ops.convert_to_numpy(preprocessing_layer(mode)(images))
    np.testing.assert_allclose(received, expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(
    "name, options",
    [("mobilenetv2", {"alpha": 0.35}), ("mobilenet", {"alpha": 0.25}),
     ("mobilenetv3small", {}), ("efficientnetb0", {}), ("resnet50", {})],
)
def test_backbones_build_without_weights_at_small_sizes(name, options):
    backbone = build_backbone(name, image_size=32, weights=None, options=options)
    assert backbone.output_shape[-1] > 0
    assert backbone.output_shape[0] is None


def test_unknown_backbone_option_is_refused():
    with pytest.raises(RecipeError, match="alpha"):
        build_backbone("resnet50", image_size=32, weights=None, options={"alpha": 0.5})


def test_registering_again_is_silent_and_replacing_warns():
    import warnings

    from kerasdl.backbones.registry import BACKBONES, register_backbone
    from kerasdl.models.activations import ACTIVATIONS, register_activation

    def tiny(**kwargs):
        raise AssertionError("never built here")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            register_backbone("tiny_registry_test", default_size=32, preprocessing="tf")(tiny)
            register_backbone("tiny_registry_test", default_size=32, preprocessing="tf")(tiny)
        with pytest.warns(UserWarning, match="Replacing the backbone 'tiny_registry_test'"):
            register_backbone("tiny_registry_test", default_size=64, preprocessing="tf")(tiny)
        with pytest.warns(UserWarning, match="Replacing the activation 'relu'"):
            original = ACTIVATIONS["relu"]
            register_activation("relu")(lambda **kwargs: None)
    finally:
        BACKBONES.pop("tiny_registry_test", None)
        ACTIVATIONS["relu"] = original
