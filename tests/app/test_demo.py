"""`kerasdl demo`'s HTTP API: the page, /predict, bad uploads, and which model a run folder serves.

The page itself, in a real browser, is tested in test_demo_browser.py (slow).
"""

from __future__ import annotations

import csv
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kerasdl.app.demo import DemoOptions, demo_model_path, make_demo_server
from kerasdl.cli.commands import main
from kerasdl.errors import ModelFileError
from kerasdl.inference.predict import load_model_file, predict_files
from tests.support import write_class_folder, write_tiny_classifier


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """A run-like folder: a tiny untrained two-class model.keras (32 px), its TFLite export, labels."""
    from kerasdl.export.tflite import export_tflite

    folder = tmp_path_factory.mktemp("demo_run")
    model = write_tiny_classifier(folder)
    (folder / "export").mkdir()
    export_tflite(model, folder / "export" / "model.tflite")
    (folder / "export" / "labels.txt").write_text("cat\ndog\n")
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    root = write_class_folder(tmp_path_factory.mktemp("demo_images") / "images", per_class=2, size=40)
    return sorted(root.rglob("*.png"))


def serve(source, **options):
    server = make_demo_server(source, DemoOptions(port=0, **options))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


def post(url: str, data: bytes, name: str = "image.png", route: str = "predict",
         headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url + route, data=data, method="POST",
                                     headers={"X-File-Name": name, "Content-Type": "application/octet-stream",
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def predicted_by_cli_path(model_path: Path, image: Path, tmp_path: Path) -> dict[str, float]:
    """What `kerasdl predict` writes for one image (its CSV's probabilities, 6 decimals)."""
    output = tmp_path / f"{model_path.suffix.lstrip('.')}.csv"
    predict_files(load_model_file(model_path), [str(image)], output, progress=False)
    with open(output, newline="") as handle:
        row = next(csv.DictReader(handle))
    return {name: float(row[name]) for name in ("cat", "dog")}


@pytest.mark.parametrize("which", ["run folder (tflite)", "model.keras"])
def test_upload_gives_the_probabilities_predict_gives(run_folder, images, tmp_path, which):
    source = run_folder if which.startswith("run") else run_folder / "model.keras"
    model_path = run_folder / "export" / "model.tflite" if which.startswith("run") else source
    server = serve(source)
    try:
        with urllib.request.urlopen(server.url + "info", timeout=30) as response:
            info = json.loads(response.read())
        assert info["kind"] == ("tflite" if which.startswith("run") else "keras")
        assert info["class_names"] == ["cat", "dog"] and info["image_size"] == 32
        for image in images[:3]:
            status, answer = post(server.url, image.read_bytes(), image.name)
            assert status == 200, answer
            expected = predicted_by_cli_path(model_path, image, tmp_path)
            for name, probability in answer["probabilities"].items():
                assert round(probability, 6) == pytest.approx(expected[name], abs=1.5e-6)
            best = answer["predictions"][0]
            assert best["probability"] == max(answer["probabilities"].values())
            assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    finally:
        server.shutdown()
        server.server_close()


def test_bad_uploads_get_a_message_and_the_server_keeps_going(run_folder, images):
    server = serve(run_folder / "model.keras", max_upload_bytes=50_000)
    try:
        status, answer = post(server.url, b"these are not the pixels you are looking for", "notes.txt")
        assert status == 400
        assert answer["error"].startswith("Expected an image") and "notes.txt" in answer["error"]
        assert "Pick an image file" in answer["error"]

        status, answer = post(server.url, b"", "empty.png")
        assert status == 400 and "0 bytes" in answer["error"]

        status, answer = post(server.url, b"\x89PNG" + b"x" * 60_000, "huge.png")
        assert status == 413 and "at most 0.1 MB" in answer["error"] and "huge.png" in answer["error"]
        assert answer["error"].endswith("start the demo with a larger max_upload_bytes.")  # the Python words

        truncated = images[0].read_bytes()[:60]
        status, answer = post(server.url, truncated, "truncated.png")
        assert status == 400 and "truncated.png" in answer["error"]

        status, answer = post(server.url, images[0].read_bytes(), images[0].name)
        assert status == 200 and set(answer["probabilities"]) == {"cat", "dog"}
    finally:
        server.shutdown()
        server.server_close()


def test_the_page_and_unknown_routes(run_folder):
    server = serve(run_folder / "model.keras")
    try:
        with urllib.request.urlopen(server.url, timeout=30) as response:
            page = response.read().decode()
            assert response.headers["Content-Type"].startswith("text/html")
        assert 'type="file"' in page and 'fetch("/predict"' in page
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(server.url + "nothing-here", timeout=30)
        assert error.value.code == 404 and "open /" in json.loads(error.value.read())["error"]
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.shutdown()
        server.server_close()


def test_a_run_folder_serves_its_tflite_export_else_its_keras_model(tmp_path):
    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    (run / "model.keras").write_bytes(b"")
    assert demo_model_path(run) == run / "model.keras"
    (run / "export" / "model.tflite").write_bytes(b"")
    assert demo_model_path(run) == run / "export" / "model.tflite"
    assert demo_model_path(run / "model.keras") == run / "model.keras"
    with pytest.raises(ModelFileError, match="Expected a run folder with export/model.tflite or model.keras"):
        demo_model_path(tmp_path)
    with pytest.raises(ModelFileError, match="does not exist"):
        demo_model_path(tmp_path / "missing")



def test_demo_and_explain_resolve_a_run_folder_with_one_function(tmp_path):
    from kerasdl._util.paths import run_model_path
    from kerasdl.evaluation.explain import keras_model_path

    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    (run / "model.keras").write_bytes(b"")
    (run / "export" / "model.tflite").write_bytes(b"")
    both = ("export/model.tflite", "model.keras")
    assert run_model_path(run, both, expected="a model", fix="Fix it.") == run / "export" / "model.tflite"
    assert run_model_path(run, ("model.keras",), expected="a model", fix="Fix it.") == run / "model.keras"
    assert run_model_path(tmp_path, both, expected="a model", fix="Fix it.") == tmp_path  # holds none: itself
    with pytest.raises(ModelFileError) as caught:
        run_model_path(tmp_path / "missing", both, expected="a model", fix="Fix it.")
    assert str(caught.value) == f"Expected a model. Received: {tmp_path / 'missing'}, which does not exist. Fix it."
    # the two callers keep their preferences: the demo serves the export, Grad-CAM needs the .keras
    assert (demo_model_path(run), keras_model_path(run)) == (run / "export" / "model.tflite", run / "model.keras")
    with pytest.raises(ModelFileError, match=r"^Expected a Keras model file \(.keras\) or a run folder\. .*"
                                             r"does not exist\. Check the path\.$"):
        keras_model_path(tmp_path / "missing")

def info_and_explain(server, image):
    """`(/info, /explain's status, /explain's answer)` of a served model for one image; the server then stops."""
    try:
        with urllib.request.urlopen(server.url + "info", timeout=30) as response:
            info = json.loads(response.read())
        return (info, *post(server.url, image.read_bytes(), route="explain"))
    finally:
        server.shutdown()
        server.server_close()


def test_a_cut_short_model_keras_beside_the_export_turns_heatmaps_off_saying_why(run_folder, tmp_path):
    from kerasdl.app.demo import DemoApp

    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    for name in ("export/model.tflite", "export/labels.txt"):
        (run / name).write_bytes((run_folder / name).read_bytes())
    (run / "model.keras").write_bytes((run_folder / "model.keras").read_bytes()[:1000])
    info = DemoApp(run).info()
    assert info["kind"] == "tflite" and info["heatmaps"] is False
    assert info["heatmaps_note"].startswith(f"No heatmaps: Expected a Keras model file (.keras). Received: "
                                            f"{run / 'model.keras'}, which does not load as a Keras file")


def test_cli_demo_of_a_missing_model_is_one_clear_line(tmp_path):
    result = CliRunner().invoke(main, ["demo", str(tmp_path / "missing"), "--port", "0"])
    assert result.exit_code == 1, result.output
    assert "Error: Expected a run folder or a model file" in result.output
    assert "Traceback" not in result.output


def test_cli_demo_help_names_the_defaults():
    result = CliRunner().invoke(main, ["demo", "--help"])
    assert result.exit_code == 0
    assert "127.0.0.1" in result.output and "export/model.tflite" in result.output


def test_probabilities_are_plain_floats(run_folder, images):
    """JSON numbers, not strings: the page formats them."""
    server = serve(run_folder)
    try:
        _, answer = post(server.url, images[1].read_bytes())
        assert all(isinstance(p["probability"], float) for p in answer["predictions"])
        assert np.isfinite(list(answer["probabilities"].values())).all()
    finally:
        server.shutdown()
        server.server_close()


def test_the_heatmap_toggle_draws_grad_cam_with_the_runs_keras_model(run_folder, images, tmp_path):
    import base64
    import io
    import shutil

    from PIL import Image

    server = serve(run_folder)  # serves export/model.tflite; gradients come from model.keras
    try:
        with urllib.request.urlopen(server.url + "info", timeout=30) as response:
            info = json.loads(response.read())
        assert info["kind"] == "tflite" and info["heatmaps"] is True
        with urllib.request.urlopen(server.url, timeout=30) as response:
            assert 'id="heatmaps" type="checkbox"' in response.read().decode()
        _, predicted = post(server.url, images[0].read_bytes())
        status, answer = post(server.url, images[0].read_bytes(), route="explain")
        assert status == 200, answer
        assert answer["class"] == predicted["predictions"][0]["class"]
        prefix = "data:image/png;base64,"
        assert answer["heatmap"].startswith(prefix)
        with Image.open(io.BytesIO(base64.b64decode(answer["heatmap"][len(prefix):]))) as picture:
            assert picture.format == "PNG" and picture.size == (32, 32)
        status, answer = post(server.url, images[0].read_bytes(), route="explain", headers={"X-Class-Name": "dog"})
        assert status == 200 and answer["class"] == "dog"
        status, answer = post(server.url, images[0].read_bytes(), route="explain", headers={"X-Class-Name": "cow"})
        assert status == 400 and "cat, dog" in answer["error"]
    finally:
        server.shutdown()
        server.server_close()

    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(run_folder / "export" / "model.tflite", alone)
    shutil.copy(run_folder / "export" / "labels.txt", alone)
    info, status, answer = info_and_explain(serve(alone / "model.tflite"), images[0])
    assert info["heatmaps"] is False and "model.keras" in info["heatmaps_note"]
    assert status == 400 and "Grad-CAM needs the model's gradients" in answer["error"]


def test_a_model_grad_cam_cannot_explain_says_so_in_info_and_explain(images, tmp_path):
    import keras

    keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255.0), keras.layers.Flatten(),
                      keras.layers.Dense(2, activation="softmax")]).save(tmp_path / "model.keras")
    (tmp_path / "labels.txt").write_text("cat\ndog\n")
    info, status, answer = info_and_explain(serve(tmp_path), images[0])
    assert info["heatmaps"] is False and "convolutional feature map" in info["heatmaps_note"]
    assert status == 400 and "convolutional feature map" in answer["error"]
