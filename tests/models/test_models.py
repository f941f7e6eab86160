"""build_classifier, trainable policies, weights sources, and plain model.fit."""

import keras
import numpy as np
import pytest

from kerasdl.errors import RecipeError, WeightsError
from kerasdl.models.classifier import (
    build_classifier,
    count_parameters,
    get_backbone_layer,
    set_trainable,
)
from tests.support import MOBILENET_025_NO_TOP, MOBILENETV2_035_NO_TOP, requires_shared, write_class_folder


def tiny_classifier(num_classes=2, **kwargs):
    kwargs.setdefault("weights", None)
    return build_classifier(
        "mobilenetv2", num_classes, image_size=32, backbone_options={"alpha": 0.35}, **kwargs
    )


def test_classifier_is_a_plain_keras_model_with_stable_head_names():
    model = tiny_classifier(3)
    assert type(model) is keras.Model or isinstance(model, keras.Model)
    names = [layer.name for layer in model.layers]
    for name in ("image", "preprocessing", "backbone", "avg_pool", "head_dropout", "predictions"):
        assert name in names
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    probabilities = keras.ops.convert_to_numpy(model(images))
    assert probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_model_fit_works_in_a_users_own_script():
    model = tiny_classifier(2, trainable="all")
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    labels = np.array([0, 1] * 4)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    before = model.get_layer("predictions").get_weights()[0].copy()
    history = model.fit(images, labels, batch_size=4, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert not np.array_equal(before, model.get_layer("predictions").get_weights()[0])


def test_head_policy_freezes_the_whole_backbone():
    model = tiny_classifier()
    assert get_backbone_layer(model).trainable_weights == []
    head_parameters = count_parameters(model)["trainable"]
    assert head_parameters == model.get_layer("predictions").count_params()


def test_unfreezing_keeps_every_batchnorm_frozen():
    model = tiny_classifier()
    for spec in ("all", "top:10", "blocks:2"):
        set_trainable(model, spec)
        base = get_backbone_layer(model)
        batch_norms = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
        assert batch_norms and not any(layer.trainable for layer in batch_norms)
        assert base.trainable_weights


def test_top_and_blocks_policies_unfreeze_only_the_end():
    model = tiny_classifier()
    set_trainable(model, "all")
    everything = len(get_backbone_layer(model).trainable_weights)
    set_trainable(model, "top:3")
    top_three = [layer for layer in get_backbone_layer(model).layers if layer.trainable and layer.weights]
    assert len(top_three) <= 3
    set_trainable(model, "blocks:1")
    last_block = {layer.name for layer in get_backbone_layer(model).layers if layer.trainable and layer.weights}
    assert last_block and len(get_backbone_layer(model).trainable_weights) < everything
    assert all(not name.startswith("block_1_") for name in last_block)


def test_bad_trainable_spec_is_refused():
    with pytest.raises(RecipeError, match="top:N"):
        set_trainable(tiny_classifier(), "top")


def test_batchnorm_statistics_do_not_move_during_fine_tuning():
    model = tiny_classifier(trainable="all")
    base = get_backbone_layer(model)
    batch_norm = next(layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization))
    before = [w.copy() for w in batch_norm.get_weights()]
    images = np.random.default_rng(1).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(images, np.array([0, 1] * 4), batch_size=4, epochs=1, verbose=0)
    for expected, received in zip(before, batch_norm.get_weights()):
        np.testing.assert_array_equal(expected, received)


def test_too_few_classes_and_too_small_images_are_refused():
    with pytest.raises(RecipeError, match="at least 2 classes"):
        tiny_classifier(1)
    with pytest.raises(RecipeError, match="at least 71"):
        build_classifier("xception", 2, weights=None, image_size=40)


def test_imagenet_offline_fails_fast_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    with pytest.raises(WeightsError) as caught:
        build_classifier("mobilenetv2", 2, image_size=96, backbone_options={"alpha": 0.35})
    message = str(caught.value)
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5" in message
    assert "weights='none'" in message and "\n" not in message


def test_weights_file_for_another_width_is_refused(tmp_path):
    path = tmp_path / "alpha035.weights.h5"
    tiny_classifier().get_layer("backbone").save_weights(path)
    with pytest.raises(WeightsError, match="does not load"):
        build_classifier("mobilenetv2", 2, image_size=32, weights=str(path),
                         backbone_options={"alpha": 1.0})


def test_a_file_that_is_not_weights_is_refused(tmp_path):
    path = tmp_path / "notes.weights.h5"
    path.write_text("not hdf5")
    with pytest.raises(WeightsError, match="Expected a Keras weights file"):
        tiny_classifier(weights=str(path))
    with pytest.raises(WeightsError, match="no such file"):
        tiny_classifier(weights=str(tmp_path / "missing.h5"))


def test_local_weights_file_loads_into_the_backbone(tmp_path):
    source = tiny_classifier()
    path = tmp_path / "backbone.weights.h5"
    source.get_layer("backbone").save_weights(path)
    loaded = tiny_classifier(weights=str(path))
    for a, b in zip(source.get_layer("backbone").get_weights(), loaded.get_layer("backbone").get_weights()):
        np.testing.assert_array_equal(a, b)


@requires_shared(MOBILENET_025_NO_TOP, MOBILENETV2_035_NO_TOP)
def test_real_imagenet_files_load_at_another_size():
    mobilenet = build_classifier("mobilenet", 2, image_size=96, weights=str(MOBILENET_025_NO_TOP),
                                 backbone_options={"alpha": 0.25})
    mobilenet_v2 = build_classifier("mobilenetv2", 2, image_size=96, weights=str(MOBILENETV2_035_NO_TOP),
                                    backbone_options={"alpha": 0.35})
    for model in (mobilenet, mobilenet_v2):
        kernel = get_backbone_layer(model).layers[2].get_weights()[0]
        assert np.abs(kernel).sum() > 0 and model.output_shape == (None, 2)


def test_python_errors_name_the_argument_and_the_cli_names_the_flag(tmp_path):
    from click.testing import CliRunner

    from kerasdl.cli.commands import main
    from kerasdl.errors import RecipeError

    with pytest.raises(RecipeError, match="Received: image_size=20") as raised:
        build_classifier("mobilenetv2", 2, weights=None, image_size=20)
    assert raised.value.argument == "image_size"
    images = write_class_folder(tmp_path / "images", per_class=3, size=16)
    result = CliRunner().invoke(main, ["run", "mobilenetv2-transfer", "--data", str(images), "--weights", "none",
                                       "--image-size", "20", "--output", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    assert "Error: --image-size: Expected an image size of at least 32 px" in result.output


def test_block_pooling_sees_every_block_at_the_two_coarsest_resolutions(tmp_path):
    from kerasdl.models.classifier import coarse_block_outputs

    model = build_classifier("efficientnetlite0", 2, image_size=64, weights=None, pooling="blocks")
    taps = coarse_block_outputs(get_backbone_layer(model))
    assert taps == ["block4a_project_bn", "block4b_add", "block4c_add", "block5a_project_bn", "block5b_add",
                    "block5c_add", "block6a_project_bn", "block6b_add", "block6c_add", "block6d_add",
                    "block7a_project_bn", "top_activation"]
    assert model.get_layer("avg_pool").output.shape[-1] == 3 * 80 + 3 * 112 + 4 * 192 + 320 + 1280
    top = build_classifier("efficientnetlite0", 2, image_size=64, weights=None)
    assert top.get_layer("avg_pool").output.shape[-1] == 1280
    set_trainable(model, "all")  # the backbone's own layers: BatchNorm stays frozen
    assert not any(layer.trainable for layer in get_backbone_layer(model).layers
                   if isinstance(layer, keras.layers.BatchNormalization))
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    model.save(tmp_path / "blocks.keras")
    loaded = keras.saving.load_model(tmp_path / "blocks.keras")
    np.testing.assert_allclose(loaded.predict_on_batch(images), model.predict_on_batch(images), atol=1e-6)
    with pytest.raises(RecipeError, match="head.pooling from: top, blocks"):
        tiny_classifier(pooling="levels")
