"""Grad-CAM on tiny models: the feature map found, heatmaps' shape and range, and `explain`'s files."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

import tests.support.training_tiny_recipe  # noqa: F401 - registers the tiny_cnn backbone
from kerasdl.errors import DataError, ModelFileError, RunFolderError
from kerasdl.evaluation.explain import explain_images, keras_model_path, write_cam_grids
from kerasdl.evaluation.gradcam import GradCam
from kerasdl.models.classifier import build_classifier
from tests.support import run_on_backend, write_class_folder


def tiny_classifier(num_classes=3, **options):
    keras.utils.set_random_seed(0)
    return build_classifier("tiny_cnn", num_classes, weights=None, image_size=24, **options)


def images(count=3, size=24, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype("float32")


def check_heatmaps_of_a_tiny_model() -> None:
    """Shape, range, probabilities and the class explained; module-level for the other backends."""
    model = tiny_classifier()
    cam = GradCam(model)
    explanation = cam(images())
    assert cam.layer == "backbone"  # the nested backbone's output: 6x6x16 at 24 px
    assert explanation.heatmaps.shape == (3, 6, 6) and explanation.heatmaps.dtype == np.float32
    assert explanation.heatmaps.min() >= 0.0 and explanation.heatmaps.max() <= 1.0
    assert np.isclose(explanation.heatmaps.max(axis=(1, 2)), 1.0).any()
    probabilities = keras.ops.convert_to_numpy(model(images(), training=False))
    np.testing.assert_allclose(explanation.probabilities, probabilities, atol=1e-5)
    np.testing.assert_array_equal(explanation.class_indices, probabilities.argmax(axis=1))
    assert list(cam(images(), class_index=2).class_indices) == [2, 2, 2]


def test_heatmaps_have_the_feature_maps_shape_and_lie_in_zero_one():
    check_heatmaps_of_a_tiny_model()


def test_a_linear_head_gives_the_class_activation_map():
    """With pooling and one Dense layer on top, Grad-CAM is CAM: the feature
    channels weighted by the class's weights (Selvaraju et al., section 3.1)."""
    model = tiny_classifier()
    explanation = GradCam(model)(images())
    backbone = model.get_layer("backbone")
    features = keras.ops.convert_to_numpy(backbone(model.get_layer("preprocessing")(images())))
    kernel = keras.ops.convert_to_numpy(model.get_layer("predictions").kernel)
    maps = np.maximum(np.einsum("nhwk,kn->nhw", features, kernel[:, explanation.class_indices]), 0)
    peaks = maps.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(explanation.heatmaps, np.divide(maps, peaks, where=peaks > 0,
                                                               out=np.zeros_like(maps)), atol=1e-5)


def test_a_head_on_several_blocks_spreads_each_blocks_map_over_the_finest_cells():
    """head.pooling="blocks": each block's class activation map (its channels weighted by the class's
    kernel rows for it, over its cells), a coarse cell shared by the fine cells it covers, summed."""
    model = tiny_classifier(pooling="blocks")  # tiny_cnn's block_1 (12 px, 8 ch) and block_2 (6 px, 16 ch)
    explanation = GradCam(model)(images())
    assert explanation.heatmaps.shape == (3, 12, 12)
    fine, coarse = (keras.ops.convert_to_numpy(t)
                    for t in model.get_layer("backbone")(model.get_layer("preprocessing")(images())))
    kernel = keras.ops.convert_to_numpy(model.get_layer("predictions").kernel)[:, explanation.class_indices]
    fine_map = np.einsum("nhwk,kn->nhw", fine, kernel[:8]) / 144
    coarse_map = np.einsum("nhwk,kn->nhw", coarse, kernel[8:]) / 36
    maps = np.maximum(fine_map + np.repeat(np.repeat(coarse_map, 2, axis=1), 2, axis=2) / 4, 0)
    peaks = maps.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(explanation.heatmaps, np.divide(maps, peaks, where=peaks > 0,
                                                               out=np.zeros_like(maps)), atol=1e-5)


def test_a_hidden_layer_in_the_head_still_explains():
    explanation = GradCam(tiny_classifier(hidden_units=8))(images())
    assert explanation.heatmaps.shape == (3, 6, 6)


def test_a_backbone_that_ends_in_a_vector_is_explained_at_its_last_feature_map(tmp_path):
    build_classifier("alexnet", 2, weights=None, image_size=32, trainable="scratch").save(tmp_path / "a.keras")
    cam = GradCam(keras.saving.load_model(tmp_path / "a.keras"))  # loaded: its layers' graphs rebuilt
    assert cam.layer == "backbone/pool5"
    assert cam(images(2, 32)).heatmaps.shape == (2, 2, 2)


def test_a_loaded_sequential_model_is_explained(tmp_path):
    keras.Sequential([keras.Input((24, 24, 3)), keras.layers.Rescaling(1 / 255), keras.layers.Conv2D(4, 3, name="conv"),
                      keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")]
                     ).save(tmp_path / "s.keras")
    model = keras.saving.load_model(tmp_path / "s.keras")
    explanation = GradCam(model)(images(2))
    assert explanation.layer == "conv" and explanation.heatmaps.shape == (2, 22, 22)
    np.testing.assert_allclose(explanation.probabilities, keras.ops.convert_to_numpy(model(images(2))), atol=1e-5)


def test_a_model_without_a_feature_map_is_refused_in_one_line():
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs))
    with pytest.raises(ModelFileError, match="convolutional feature map"):
        GradCam(keras.Model(inputs, outputs))


def check_an_ensemble_is_its_members_mean(folder: str) -> None:
    """A k-fold ensemble (saved and loaded, as a run keeps it): the mean of its members' heatmaps, each
    at its own feature map for the ensemble's class, and the ensemble's probabilities; module-level for
    the other backends."""
    from kerasdl.models.ensemble import average_models

    members = [tiny_classifier(2, hidden_units=8 * k) for k in (1, 2, 3)]  # differing heads, one class set
    average_models(members).save(Path(folder) / "ensemble.keras")
    ensemble = keras.saving.load_model(Path(folder) / "ensemble.keras")
    cam = GradCam(ensemble)
    assert cam.layer == "fold_1..fold_3/backbone", cam.layer
    explanation = cam(images(4))
    probabilities = keras.ops.convert_to_numpy(ensemble(images(4), training=False))
    np.testing.assert_allclose(explanation.probabilities, probabilities, atol=1e-5)
    np.testing.assert_array_equal(explanation.class_indices, probabilities.argmax(axis=1))
    own = [GradCam(ensemble.get_layer(f"fold_{k}"))(images(4), explanation.class_indices) for k in (1, 2, 3)]
    assert explanation.heatmaps.shape == (4, 6, 6)
    np.testing.assert_allclose(explanation.heatmaps, np.mean([one.heatmaps for one in own], axis=0), atol=1e-5)
    chosen = cam(images(4), class_index=1)
    assert list(chosen.class_indices) == [1] * 4
    np.testing.assert_allclose(chosen.heatmaps, np.mean([GradCam(ensemble.get_layer(f"fold_{k}"))(
        images(4), 1).heatmaps for k in (1, 2, 3)], axis=0), atol=1e-5)
    alone = GradCam(average_models([tiny_classifier(2)]))  # export.folds="all" of a 1-model ensemble
    assert alone.layer == "fold_1/backbone" and alone(images(2)).heatmaps.shape == (2, 6, 6)


def test_a_kfold_ensemble_is_explained_as_the_mean_of_its_members_heatmaps(tmp_path):
    check_an_ensemble_is_its_members_mean(str(tmp_path))


def test_members_with_maps_of_different_sizes_are_averaged_on_the_finest_cells():
    from kerasdl.models.ensemble import average_models

    fine, coarse = tiny_classifier(2, pooling="blocks"), tiny_classifier(2)  # 12x12 and 6x6 heatmaps
    explanation = GradCam(average_models([fine, coarse]))(images(2), class_index=1)
    assert explanation.heatmaps.shape == (2, 12, 12)
    upsampled = [np.asarray(Image.fromarray(one, mode="F").resize((12, 12), Image.BILINEAR))
                 for one in GradCam(coarse)(images(2), 1).heatmaps]
    np.testing.assert_allclose(explanation.heatmaps, (GradCam(fine)(images(2), 1).heatmaps + upsampled) / 2,
                               atol=1e-5)


def test_a_model_grad_cam_cannot_cut_is_refused_saying_why():
    inputs = keras.Input((24, 24, 3))
    side = keras.Model(inputs, keras.layers.Conv2D(8, 3, name="conv")(inputs), name="side")
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(
        keras.layers.Conv2D(8, 3)(inputs)))
    model = keras.Model(inputs, keras.layers.Add()([outputs, keras.layers.Dense(2)(
        keras.layers.GlobalAveragePooling2D()(side(inputs)))]), name="two_paths")
    with pytest.raises(ModelFileError, match="Expected a classifier whose last feature map leads to its output"):
        GradCam(model)


_CHECK_ON_BACKEND = f"""
import sys
sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(Path(__file__).parents[2])!r}]
import keras
assert keras.backend.backend() == sys.argv[1], keras.backend.backend()
import test_gradcam
import tempfile
test_gradcam.check_heatmaps_of_a_tiny_model()
with tempfile.TemporaryDirectory() as folder:
    test_gradcam.check_an_ensemble_is_its_members_mean(folder)
print("Grad-CAM works on", keras.backend.backend())
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_gradcam_on_the_other_backends(backend):
    assert f"Grad-CAM works on {backend}" in run_on_backend(_CHECK_ON_BACKEND, backend)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """A run-like folder: model.keras, export/model.tflite (a stand-in), two classes of images."""
    root = tmp_path_factory.mktemp("explain")
    tiny_classifier(2).save(root / "model.keras")
    (root / "export").mkdir()
    (root / "export" / "model.tflite").write_bytes(b"TFL3")
    (root / "metrics.json").write_text(json.dumps({"class_names": ["cat", "dog"]}))
    write_class_folder(root / "images", per_class=3)
    return root


def test_explain_writes_one_picture_per_image_and_a_manifest(model_folder, tmp_path):
    out = tmp_path / "cams"
    result = explain_images(model_folder, [model_folder / "images" / "cat"], output_dir=out)
    names = sorted(path.name for path in result.written)
    assert names == ["cat_0_gradcam.png", "cat_1_gradcam.png", "cat_2_gradcam.png"]
    with Image.open(out / names[0]) as picture:
        assert picture.format == "PNG" and picture.width >= 500
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "explanation" and set(names) <= set(manifest["files"])
    again = explain_images(model_folder / "model.keras", [model_folder / "images" / "cat" / "cat_0.png"],
                           output_dir=out, class_name="dog")  # its own pictures may be replaced
    assert [path.name for path in again.written] == ["cat_0_gradcam.png"]


def test_explain_never_writes_over_a_users_file(model_folder, tmp_path):
    out = tmp_path / "cams"
    explain_images(model_folder, [model_folder / "images" / "cat" / "cat_0.png"], output_dir=out)
    (out / "cat_1_gradcam.png").write_text("mine")
    with pytest.raises(RunFolderError, match="cat_1_gradcam.png was not written by kerasdl"):
        explain_images(model_folder, [model_folder / "images" / "cat"], output_dir=out)
    assert (out / "cat_1_gradcam.png").read_text() == "mine"
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="or an earlier explanation"):
        explain_images(model_folder, [model_folder / "images" / "cat"], output_dir=tmp_path / "docs")
    with pytest.raises(RunFolderError, match="apart from the data"):  # the images' class-folder tree
        explain_images(model_folder, [model_folder / "images" / "cat"], output_dir=model_folder / "images")


def test_an_exported_model_names_the_runs_keras_file(model_folder):
    with pytest.raises(ModelFileError, match=f"Pass {model_folder / 'model.keras'}, the run's Keras model"):
        keras_model_path(model_folder / "export" / "model.tflite")
    assert keras_model_path(model_folder) == model_folder / "model.keras"


def test_an_unknown_class_is_refused_naming_the_classes(model_folder, tmp_path):
    with pytest.raises(DataError, match=r"\(cat, dog\)\. Received: class_name='cow'"):
        explain_images(model_folder, [model_folder / "images"], output_dir=tmp_path / "x", class_name="cow")
    assert not (tmp_path / "x").exists()


def test_cam_grids_show_wrong_and_right_images_and_the_report_names_them(model_folder, tmp_path):
    from kerasdl.data.scan import scan_images
    from kerasdl.evaluation.evaluate import write_evaluation
    from kerasdl.evaluation.report import write_report

    paths = sorted(str(p) for p in (model_folder / "images").rglob("*.png"))
    labels = np.array([0 if "/cat/" in p else 1 for p in paths])
    files, _ = scan_images([(p, int(label)) for p, label in zip(paths, labels, strict=True)])
    probabilities = np.tile([[0.9, 0.1]], (len(paths), 1))  # every dog is wrong
    written = write_cam_grids(keras.saving.load_model(model_folder / "model.keras"), files, labels,
                              probabilities, ["cat", "dog"], tmp_path)
    assert [path.name for path in written] == ["cam_wrong.png", "cam_right.png"]
    for path in written:
        with Image.open(path) as picture:
            assert picture.format == "PNG"
    write_evaluation(labels, probabilities, ["cat", "dog"], tmp_path, extra={"split": "val"})
    report = write_report(tmp_path).read_text()
    assert "![Where the model looked (Grad-CAM): the most confidently wrong images](cam_wrong.png)" in report
    assert "(cam_right.png)" in report
    written = write_cam_grids(keras.saving.load_model(model_folder / "model.keras"), files, labels,
                              np.eye(2)[labels], ["cat", "dog"], tmp_path)  # none wrong: a note, no stale grid
    assert [path.name for path in written] == ["cam_wrong.png", "cam_right.png"]


def test_cam_grids_explain_each_image_by_the_model_that_predicted_it(model_folder, tmp_path, monkeypatch):
    """Out-of-fold grids (a k-fold run's): each image under its own fold model's heatmap."""
    import kerasdl.evaluation.explain as explain_module
    from kerasdl.data.scan import scan_images

    paths = sorted(str(p) for p in (model_folder / "images").rglob("*.png"))
    labels = np.array([0 if "/cat/" in p else 1 for p in paths])
    files, _ = scan_images([(p, int(label)) for p, label in zip(paths, labels, strict=True)])
    folds = [keras.saving.load_model(model_folder / "model.keras") for _ in range(2)]
    model_of = np.arange(len(paths)) % 2
    seen, explain_files = {}, explain_module.explain_image_files

    def recording(cam, chosen, *args, **kwargs):
        seen.update({path: cam.model for path in chosen.paths})
        return explain_files(cam, chosen, *args, **kwargs)

    monkeypatch.setattr(explain_module, "explain_image_files", recording)
    written = write_cam_grids(folds, files, labels, np.tile([[0.9, 0.1]], (len(paths), 1)), ["cat", "dog"],
                              tmp_path, model_of=model_of)
    assert [path.name for path in written] == ["cam_wrong.png", "cam_right.png"]
    assert seen and all(model is folds[model_of[paths.index(path)]] for path, model in seen.items())


def test_a_failing_grad_cam_says_what_failed_without_blaming_the_backend(model_folder, tmp_path, monkeypatch,
                                                                          caplog):
    import kerasdl.evaluation.gradcam as gradcam_module
    from kerasdl.data.scan import scan_images

    def failing(*args):
        raise RuntimeError("no gradient for you")

    monkeypatch.setattr(gradcam_module, "_gradients", failing)
    paths = sorted(str(p) for p in (model_folder / "images").rglob("*.png"))
    files, _ = scan_images([(p, 1) for p in paths])
    with caplog.at_level("INFO", logger="kerasdl"):
        written = write_cam_grids(keras.saving.load_model(model_folder / "model.keras"), files,
                                  np.ones(len(paths), dtype=int), np.tile([[0.9, 0.1]], (len(paths), 1)),
                                  ["cat", "dog"], tmp_path)
    assert written == []
    assert "RuntimeError: no gradient for you" in caplog.text and "backend's gradients" not in caplog.text
