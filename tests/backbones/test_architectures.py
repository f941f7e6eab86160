"""AlexNet and ResNet18/34 from Keras layers, as backbones of the classifier pipeline."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kerasdl.backbones.classic import alexnet, alexnet_first_convolution, resnet18, resnet34
from kerasdl.backbones.registry import get_backbone
from kerasdl.cli.commands import main
from kerasdl.errors import RecipeError, WeightsError
from kerasdl.models.classifier import build_classifier, count_parameters, set_trainable


def _alexnet_parameters(classes: int) -> int:
    # The 2012 paper's layers, one tower: conv weights + biases, then fc6-fc8.
    convs = [(3, 96, 11), (96, 256, 5), (256, 384, 3), (384, 384, 3), (384, 256, 3)]
    total = sum(k * k * cin * cout + cout for cin, cout, k in convs)
    return total + (6 * 6 * 256 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * classes + classes)


def test_alexnet_at_227_px_is_the_papers_network():
    model = alexnet(include_top=True)
    layers = {layer.name: layer for layer in model.layers}
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    pools = [layer.name for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [c.filters for c in convs] == [96, 256, 384, 384, 256]
    assert convs[0].kernel_size == (11, 11) and convs[0].strides == (4, 4)
    assert pools == ["pool1", "pool2", "pool5"]
    assert [d.units for d in dense] == [4096, 4096, 1000]
    assert all(c.get_config()["activation"] == "relu" for c in convs + dense[:2])
    assert layers["conv1"].output.shape[1:] == (55, 55, 96)
    assert layers["pool5"].output.shape[1:] == (6, 6, 256)
    assert sum(isinstance(layer, keras.layers.Dropout) for layer in model.layers) == 2
    assert model.count_params() == _alexnet_parameters(1000)


@pytest.mark.parametrize("size", [32, 48, 64, 96, 128, 160])
def test_alexnet_scales_down_for_small_images(size):
    kernel, stride = alexnet_first_convolution(size)
    assert kernel % 2 == 1 and 3 <= kernel <= 11 and 1 <= stride <= 4
    model = alexnet(input_shape=(size, size, 3), fc_units=8)
    assert model.output_shape == (None, 8)
    assert min(model.get_layer("pool5").output.shape[1:3]) >= 1


def test_alexnet_too_small_image_is_refused():
    with pytest.raises(RecipeError, match="larger image for alexnet: pool5 .* 16x16 px"):
        alexnet(input_shape=(16, 16, 3), fc_units=8)


def test_alexnet_classifier_uses_fc7_vector_and_trains_in_training_mode():
    keras.utils.set_random_seed(0)
    model = build_classifier("alexnet", 3, weights=None, image_size=32, dropout=0.5, trainable="scratch",
                             backbone_options={"fc_units": 32})
    names = [layer.name for layer in model.layers]
    assert "avg_pool" not in names and names[-2:] == ["head_dropout", "predictions"]
    assert model.output_shape == (None, 3)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    # fc6's dropout runs when the classifier trains (it would not inside base(x, training=False)).
    features = keras.Model(model.input, model.get_layer("head_dropout").input)
    first, second = (keras.ops.convert_to_numpy(features(x, training=True)) for _ in range(2))
    assert not np.allclose(first, second)
    np.testing.assert_allclose(features(x, training=False), features(x, training=False))
    assert count_parameters(model)["trainable"] == count_parameters(model)["total"]


def test_imagenet_weights_for_our_networks_are_refused_in_one_line():
    for name in ("alexnet", "resnet18", "resnet34", "efficientnet_compound"):
        with pytest.raises(WeightsError, match=f"Keras has no ImageNet weights for {name}") as error:
            build_classifier(name, 2, weights="imagenet", image_size=32)
        assert "\n" not in str(error.value)


def test_run_alexnet_scratch_with_imagenet_weights_exits_1_before_reading_data(tmp_path):
    result = CliRunner().invoke(main, ["run", "alexnet-scratch", "--weights", "imagenet",
                                       "--data", str(tmp_path / "missing"), "--output", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "Keras has no ImageNet weights for alexnet" in result.output
    assert not (tmp_path / "run").exists()


def _trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_resnet18_and_34_have_the_papers_parameter_counts():
    # torchvision's resnet18/resnet34 (the course's timm models) count 11,689,512 and
    # 21,797,672 parameters; Keras also keeps BatchNorm's moving statistics as weights.
    assert _trainable_count(resnet18(include_top=True)) == 11_689_512
    assert _trainable_count(resnet34(include_top=True)) == 21_797_672


def test_resnet18_blocks_follow_keras_names_for_fine_tuning():
    model = build_classifier("resnet18", 2, weights=None, image_size=32)
    backbone = model.get_layer("backbone")
    assert backbone.output_shape == (None, 1, 1, 512)
    set_trainable(model, "blocks:1")
    trained = {layer.name for layer in backbone.layers if layer.trainable and layer.weights}
    assert trained == {"conv5_block2_1_conv", "conv5_block2_2_conv"}  # BatchNorm stays frozen


def test_resnet18_from_scratch_learns_batchnorm_statistics():
    keras.utils.set_random_seed(0)
    model = build_classifier("resnet18", 2, weights=None, image_size=32, trainable="scratch")
    batchnorm = model.get_layer("backbone").get_layer("conv1_bn")
    assert batchnorm.trainable and batchnorm.momentum <= 0.9
    before = keras.ops.convert_to_numpy(batchnorm.moving_mean).copy()
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    model(x, training=False)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(batchnorm.moving_mean), before)
    model(x, training=True)  # what fit does: the nested backbone follows the training flag
    assert not np.allclose(keras.ops.convert_to_numpy(batchnorm.moving_mean), before)
    transfer = build_classifier("resnet18", 2, weights=None, image_size=32, trainable="head")
    frozen = transfer.get_layer("backbone").get_layer("conv1_bn")
    before = keras.ops.convert_to_numpy(frozen.moving_mean).copy()
    transfer(x, training=True)  # a transfer classifier keeps its backbone in inference mode
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(frozen.moving_mean), before)


def test_resnet18_loads_weights_from_a_local_file(tmp_path):
    keras.utils.set_random_seed(1)
    source = resnet18(input_shape=(32, 32, 3))
    path = tmp_path / "resnet18_no_top.weights.h5"
    source.save_weights(path)
    model = build_classifier("resnet18", 2, weights=str(path), image_size=64)
    for mine, theirs in zip(model.get_layer("backbone").get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_unknown_backbone_lists_ours():
    with pytest.raises(RecipeError, match="Expected a backbone name from: alexnet, .*resnet18, resnet34"):
        get_backbone("resnet19")


def test_show_alexnet_scratch_gives_layer_table_and_parameter_count():
    result = CliRunner().invoke(main, ["show", "alexnet-scratch", "--set", "image_size=64",
                                       "--set", "backbone.fc_units=64"])
    assert result.exit_code == 0, result.output
    text = result.output
    json_part, _, table = text.partition("\n\nalexnet-scratch: alexnet at 64 px")
    assert json.loads(json_part)["backbone"]["name"] == "alexnet"
    rows = [line.split()[0] for line in table.splitlines()[1:-1]]
    for name in ("conv1", "conv5", "pool5", "fc6", "fc7", "predictions"):
        assert name in rows
    model = build_classifier("alexnet", 2, weights=None, image_size=64, dropout=0.5, trainable="scratch",
                             backbone_options={"fc_units": 64})
    assert f"Total parameters: {count_parameters(model)['total']:,}" in table


def test_show_transfer_recipe_stays_plain_json():
    result = CliRunner().invoke(main, ["show", "mobilenetv2-transfer"])
    assert result.exit_code == 0
    assert json.loads(result.output)["name"] == "mobilenetv2-transfer"


def test_run_alexnet_scratch_end_to_end(image_folder, tmp_path):
    result = CliRunner().invoke(main, [
        "run", "alexnet-scratch", "--data", str(image_folder), "--image-size", "32", "--epochs", "1",
        "--batch-size", "4", "--set", "backbone.fc_units=16", "--export", "none", "--quiet",
        "--output", str(tmp_path / "run"),
    ])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["num_samples"] > 0
    loaded = keras.saving.load_model(tmp_path / "run" / "model.keras")
    assert loaded.output_shape == (None, 2)
