"""`kerasdl demo`: a local web page that classifies the images a user drops on it.

The server is the standard library's `ThreadingHTTPServer`; the page
(`demo.html` beside this module) posts each image's bytes to `/predict` and
shows the JSON that comes back. Predictions go through
`kerasdl.inference.predict.predict_image_files`, the code `kerasdl
predict` runs, so the page shows the same probabilities for the same file.
Given a run folder, the demo runs its exported `export/model.tflite` when
there is one (what ships is what the user tries), else its `model.keras`.

The page's heatmap toggle shows each image under its Grad-CAM heatmap
(`kerasdl.evaluation.explain`), for the class the page shows first. Gradients
need the Keras model: for an exported file, the demo uses the `model.keras`
of its run (loaded on the first heatmap), and says so where there is none.

Routes:
    GET /            the page
    GET /info        {"model", "kind", "class_names", "image_size", "max_upload_bytes",
                     "heatmaps" (whether the demo can draw them), "heatmaps_note"}
    POST /predict    body: the image file's bytes -> {"predictions": [{"class",
                     "probability"}, ... best first], "probabilities": {class: p},
                     "model", "kind", "seconds"}; errors -> {"error": message}
                     with 400 (not an image, empty) or 413 (too large)
    POST /explain    body: the image file's bytes, header X-Class-Name (URL-encoded;
                     default: the predicted class) -> {"heatmap": a PNG data URL of
                     the image under its heatmap, "class", "seconds"}; errors as above
"""


from __future__ import annotations

import base64
import contextlib
import dataclasses
import http
import json
import logging
import os
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from kerasdl._util.paths import run_model_path
from kerasdl.errors import KerasdlError, ModelFileError

logger = logging.getLogger(__name__)


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# Bytes of request body read and thrown away after a refused upload, so the
# browser gets the answer instead of a reset connection.
_DRAIN_LIMIT = 64 * 1024 * 1024


@dataclasses.dataclass
class DemoOptions:
    """How `kerasdl demo` serves.

    Attributes:
        host: The address to listen on; loopback, so only this machine can
            reach the page.
        port: The TCP port; 0 picks a free one.
        max_upload_bytes: Largest image accepted, in bytes.
        top_k: Classes shown per image, best first.
        limit_setting: What raises `max_upload_bytes`, in the words of whoever
            started the demo: an upload refused as too large says to start it
            with a larger one (`kerasdl demo` gives its `--max-upload-mb`).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = 10_000_000
    top_k: int = 5
    limit_setting: str = "max_upload_bytes"


class UploadError(KerasdlError):
    """An upload the demo cannot classify; `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def demo_model_path(source: str | os.PathLike) -> Path:
    """The model file the demo runs for `source`.

    Args:
        source: A run folder (its `export/model.tflite` if present, else its
            `model.keras`), or a model file or SavedModel folder.

    Returns:
        The path to load with `load_model_file`.

    Raises:
        ModelFileError: if `source` does not exist, or is a folder with
            neither a model nor a SavedModel in it.
    """
    source = Path(source)
    if (source / "saved_model.pb").is_file():
        return source
    path = run_model_path(source, ("export/model.tflite", "model.keras"), expected="a run folder or a model file",
                          fix="Pass the folder a `kerasdl run` wrote, or a .keras/.tflite/.onnx file.")
    if path.is_file():
        return path
    raise ModelFileError(
        f"Expected a run folder with export/model.tflite or model.keras. Received: {source}, which "
        "has neither. Pass the folder a finished `kerasdl run` wrote, or a model file."
    )


class DemoApp:
    """The model behind the page, and the one function the routes call.

    Args:
        source: A run folder or model file (see `demo_model_path`).
        options: `DemoOptions`. Defaults to `None` (`DemoOptions()`).

    Example:
    ```python
    app = DemoApp("runs/quickstart")
    app.predict_bytes(open("face.jpg", "rb").read())["predictions"][0]
    ```
    """

    def __init__(self, source: str | os.PathLike, options: DemoOptions | None = None):
        from kerasdl.inference.predict import load_model_file

        self.options = options or DemoOptions()
        self.model_path = demo_model_path(source)
        self.model = load_model_file(self.model_path)
        self._lock = threading.Lock()  # LiteRT interpreters are not thread-safe
        self._cam = None  # Grad-CAM of the Keras model, made on the first heatmap
        self._keras_path, self._heatmaps_note = _gradient_model(self.model_path)
        if self._keras_path is not None and self.model.keras_model is not None:
            self._grad_cam_or_none()  # the served model is loaded: /info can say now whether it explains
        self._warm_up()

    def _warm_up(self) -> None:
        """Runs one gray image, so the first upload does not wait for TensorFlow to load."""
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.new("RGB", (self.model.image_size,) * 2, (128, 128, 128)).save(buffer, format="PNG")
        self.predict_bytes(buffer.getvalue(), name="warm-up")

    def info(self) -> dict[str, Any]:
        """What the page shows about the model."""
        return {"model": str(self.model_path), "kind": self.model.kind,
                "class_names": self.model.class_names, "image_size": self.model.image_size,
                "max_upload_bytes": self.options.max_upload_bytes,
                "heatmaps": self._keras_path is not None, "heatmaps_note": self._heatmaps_note}

    def predict_bytes(self, data: bytes, *, name: str = "upload") -> dict[str, Any]:
        """Classifies one image file's bytes.

        Args:
            data: The file's bytes (JPEG, PNG, BMP, GIF or WebP).
            name: The file's name, for messages. Defaults to `"upload"`.

        Returns:
            `{"predictions": [{"class", "probability"}, ...] (top_k, best
            first), "probabilities": {class: p}, "model", "kind", "seconds"}`.

        Raises:
            UploadError: for an empty, too large or undecodable upload.
        """
        from kerasdl.inference.predict import predict_image_files

        self._check_upload(data, name)
        started = time.perf_counter()
        with _upload_file(data) as path, self._lock:
            _, probabilities, skipped = predict_image_files(self.model, [str(path)])
        if skipped or not len(probabilities):
            raise _not_an_image(name, data, skipped[0].reason if skipped else "no image in it")
        row = probabilities[0]
        order = sorted(range(len(row)), key=lambda i: -float(row[i]))[: self.options.top_k]
        names = self.model.class_names
        return {
            "predictions": [{"class": names[i], "probability": float(row[i])} for i in order],
            "probabilities": {names[i]: float(p) for i, p in enumerate(row)},
            "model": self.model_path.name, "kind": self.model.kind,
            "seconds": round(time.perf_counter() - started, 4),
        }


    def explain_bytes(self, data: bytes, *, name: str = "upload", class_name: str | None = None) -> dict[str, Any]:
        """The Grad-CAM overlay of one image file's bytes.

        Args:
            data: The file's bytes.
            name: The file's name, for messages. Defaults to `"upload"`.
            class_name: The class whose heatmap to draw. Defaults to `None`
                (the Keras model's predicted class).

        Returns:
            `{"heatmap": "data:image/png;base64,...", "class", "seconds"}`.

        Raises:
            UploadError: for a bad upload, an unknown class, or a demo
                without a Keras model to take gradients of.
        """
        from kerasdl.data.scan import scan_images
        from kerasdl.evaluation.cam_pictures import overlay_png
        from kerasdl.evaluation.explain import explain_image_files
        from kerasdl.inference.predict import predict_image_files

        if self._keras_path is None:
            raise UploadError(self._heatmaps_note)
        names = self.model.class_names
        if class_name is not None and class_name not in names:
            raise UploadError(f"Expected a class of the model ({', '.join(names)}). Received: {class_name!r}.")
        self._check_upload(data, name)
        started = time.perf_counter()
        with _upload_file(data) as path, self._lock:
            readable, skipped = scan_images([(str(path), 0)], workers=1)
            if not len(readable):
                raise _not_an_image(name, data, skipped[0].reason if skipped else "no image in it")
            if class_name is None:  # the class the page shows first: the served model's best
                index = int(predict_image_files(self.model, [str(path)])[1][0].argmax())
            else:
                index = names.index(class_name)
            cam = self._grad_cam_or_none()
            if cam is None:
                raise UploadError(self._heatmaps_note)
            [(image, heatmap)] = explain_image_files(cam, readable, int(cam.model.inputs[0].shape[1]), [index])
        return {"heatmap": "data:image/png;base64," + base64.b64encode(overlay_png(image, heatmap)).decode(),
                "class": names[index], "seconds": round(time.perf_counter() - started, 4)}

    def _grad_cam_or_none(self):
        """The Grad-CAM of the Keras model, made once; `None` (and /info says why) for a model it cannot
        explain."""
        if self._cam is None and self._keras_path is not None:
            import keras

            from kerasdl.evaluation.gradcam import GradCam

            model = self.model.keras_model or keras.saving.load_model(self._keras_path, compile=False)
            try:
                self._cam = GradCam(model)
            except ModelFileError as error:
                self._keras_path, self._heatmaps_note = None, f"No heatmaps: {error}"
        return self._cam

    def _check_upload(self, data: bytes, name: str) -> None:
        limit = self.options.max_upload_bytes
        if not data:
            raise UploadError(f"Expected an image file. Received: {name}, 0 bytes. Pick an image.")
        if len(data) > limit:
            raise UploadError(_too_large(name, len(data), limit, self.options.limit_setting),
                              http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE)


@contextlib.contextmanager
def _upload_file(data: bytes):
    """The upload as a file in a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="kerasdl_demo_") as folder:
        path = Path(folder) / "upload"
        path.write_bytes(data)
        yield path


def _not_an_image(name: str, data: bytes, reason: str) -> UploadError:
    return UploadError(
        f"Expected an image (JPEG, PNG, BMP, GIF or WebP). Received: {name}, {len(data):,} "
        f"bytes that do not decode as one ({reason}). Pick an image file."
    )


def _gradient_model(model_path: Path) -> tuple[Path | None, str]:
    """The Keras model whose gradients draw the heatmaps (the served one, or its run's
    model.keras), or `None` and why not."""
    from kerasdl.evaluation.explain import keras_model_path, run_keras_model
    from kerasdl.inference.predict import check_keras_archive

    try:
        path = keras_model_path(model_path)
    except ModelFileError as error:
        path = run_keras_model(model_path)
        if path is None:
            return None, f"No heatmaps: {error}"
    try:
        check_keras_archive(path)  # a cut-short model.keras beside the served .tflite: say so now
    except ModelFileError as error:
        return None, f"No heatmaps: {error}"
    return path, ""


def _too_large(name: str, size: int, limit: int, setting: str) -> str:
    return (f"Expected an image of at most {limit / 1e6:.1f} MB. Received: {name}, "
            f"{size / 1e6:.1f} MB. Pick a smaller image, or start the demo with a larger {setting}.")


def page_html() -> bytes:
    """The demo page (`kerasdl/app/demo.html`)."""
    return resources.files("kerasdl.app").joinpath("demo.html").read_bytes()


class DemoRequestHandler(BaseHTTPRequestHandler):
    """The routes of the demo; `self.server.app` is the `DemoApp`."""

    server_version = "kerasdl-demo"
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.path in ("/", "/index.html"):
            self._send(http.HTTPStatus.OK, page_html(), "text/html; charset=utf-8")
        elif self.path == "/info":
            self._send_json(http.HTTPStatus.OK, self.server.app.info())
        else:
            self._send_json(http.HTTPStatus.NOT_FOUND, {"error": f"No page {self.path}: open / instead."})

    def do_POST(self):  # noqa: N802
        route = self.path.split("?")[0]
        if route not in ("/predict", "/explain"):
            self._drain(self._content_length())
            self._send_json(http.HTTPStatus.NOT_FOUND,
                            {"error": f"No route POST {self.path}: use /predict or /explain."})
            return
        name = urllib.parse.unquote(self.headers.get("X-File-Name", "upload"))[:200]
        try:
            length = self._content_length()
            limit = self.server.app.options.max_upload_bytes
            if length > limit:
                self._drain(length)
                raise UploadError(_too_large(name, length, limit, self.server.app.options.limit_setting),
                                  http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            body, app = self.rfile.read(length), self.server.app
            if route == "/explain":
                wanted = urllib.parse.unquote(self.headers.get("X-Class-Name", "")) or None
                result = app.explain_bytes(body, name=name, class_name=wanted)
            else:
                result = app.predict_bytes(body, name=name)
        except UploadError as error:
            logger.info("%s: refused (%s)", name, error)
            self._send_json(error.status, {"error": str(error)})
            return
        except Exception as error:  # noqa: BLE001 - one bad request must not stop the demo
            logger.warning("%s: %s: %s", name, type(error).__name__, error)
            self._send_json(http.HTTPStatus.INTERNAL_SERVER_ERROR,
                            {"error": f"The model failed on {name}: {type(error).__name__}: {error}"})
            return
        if route == "/explain":
            logger.info("%s: heatmap of %s (%.0f ms)", name, result["class"], result["seconds"] * 1e3)
        else:
            best = result["predictions"][0]
            logger.info("%s: %s %.4f (%.0f ms)", name, best["class"], best["probability"], result["seconds"] * 1e3)
        self._send_json(http.HTTPStatus.OK, result)

    def _content_length(self) -> int:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise UploadError("Expected a Content-Length header with the image's size. Received: none "
                              "that reads as a size. Send the file as the request body.")
        return length

    def _drain(self, length: int) -> None:
        if length > _DRAIN_LIMIT:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)

    def _send_json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        logger.debug("%s %s", self.address_string(), format % args)


def make_demo_server(source: str | os.PathLike, options: DemoOptions | None = None) -> ThreadingHTTPServer:
    """Loads the model and binds the demo's HTTP server (not yet serving).

    Args:
        source: A run folder or model file (see `demo_model_path`).
        options: `DemoOptions`. Defaults to `None` (`DemoOptions()`:
            127.0.0.1, port 8000).

    Returns:
        A `ThreadingHTTPServer` with `.app` (the `DemoApp`) and `.url`; call
        `serve_forever()` to serve and `shutdown()` to stop.

    Raises:
        ModelFileError: if the model cannot be found or loaded.
        KerasdlError: if the address cannot be bound (port in use).

    Example:
    ```python
    server = make_demo_server("runs/quickstart", DemoOptions(port=0))
    print(server.url)
    server.serve_forever()
    ```
    """
    options = options or DemoOptions()
    app = DemoApp(source, options)
    server_class = ThreadingHTTPServer
    if ":" in options.host:  # an IPv6 address
        import socket

        server_class = type("ThreadingHTTPServerV6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
    try:
        server = server_class((options.host, options.port), DemoRequestHandler)
    except OSError as error:
        raise KerasdlError(
            f"Expected a free port on {options.host} to serve the demo. Received: port {options.port} "
            f"({error.strerror or error}). Pick another port, or port=0 for any free one.",
            argument="port",
        ) from None
    server.daemon_threads = True
    server.app = app
    host, port = server.server_address[:2]
    server.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    return server
