"""`kerasdl demo` as a person uses it: a real run, the demo command, headless Chromium.

Trains a tiny run with the CLI (its TFLite export is what the demo serves),
starts `kerasdl demo RUN_DIR --port 0`, opens the page in Debian's Chromium
driven by Playwright, uploads images through the file picker, and compares
what the page shows with what `kerasdl predict` writes for the same files.

Slow (a run, two CLI start-ups, a browser): `tox -e slow` or
`pytest -m slow tests/test_demo_browser.py`. Needs `apt-get install chromium`
and `pip install playwright` (the `test` extra); skips, saying which is
missing, without them. Set KERASDL_DEMO_SCREENSHOT=FILE.png to keep a
screenshot of the page.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import write_class_folder

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)
NOISE = re.compile(r"I0000|W0000|E0000|absl::|oneDNN|cuda|XNNPACK|\.py:\d*|Traceback")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here: apt-get install chromium"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason="playwright is not installed: pip install -e '.[test]'"),
]


def cli_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def kerasdl(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kerasdl.cli", *map(str, args)], capture_output=True,
                          text=True, env=cli_environment(), timeout=600, **kwargs)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny finished run (MobileNetV2 0.35, random weights, 32 px) with its TFLite export."""
    root = tmp_path_factory.mktemp("demo_browser")
    images = write_class_folder(root / "images", per_class=8, size=40)
    run = root / "run"
    done = kerasdl("run", "mobilenetv2-transfer", "--data", images, "--image-size", 32, "--epochs", 1,
                   "--fine-tune-epochs", 0, "--weights", "none", "--set", "backbone.alpha=0.35",
                   "--batch-size", 4, "--export", "tflite", "--output", run)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (run / "export" / "model.tflite").is_file()
    return run


@pytest.fixture
def demo_url(run_dir):
    """`kerasdl demo RUN_DIR --port 0` running; yields its URL, then stops it with Ctrl-C."""
    process = subprocess.Popen([sys.executable, "-m", "kerasdl.cli", "demo", str(run_dir), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_environment())
    lines = []
    deadline = time.monotonic() + 180
    url = None
    while url is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        found = re.search(r"Open (http://127\.0\.0\.1:\d+/)", line)
        url = found.group(1) if found else None
    assert url, "".join(lines) + process.stderr.read() if process.poll() is not None else "".join(lines)
    yield url, lines
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    lines.append(out)
    assert "Stopped." in out
    noisy = [line for line in ("".join(lines) + err).splitlines() if NOISE.search(line)]
    assert noisy == [], noisy


def predicted_by_cli(model: Path, image: Path, output: Path) -> dict[str, float]:
    done = kerasdl("predict", model, image, "--output", output)
    assert done.returncode == 0, done.stdout + done.stderr
    with open(output, newline="") as handle:
        row = next(csv.DictReader(handle))
    return {name: float(row[name]) for name in ("cat", "dog")}


def test_the_page_shows_the_probabilities_predict_gives(run_dir, demo_url, tmp_path):
    from playwright.sync_api import sync_playwright

    url, startup = demo_url
    assert any("tflite" in line for line in startup), startup
    images = sorted((run_dir.parent / "images").rglob("*.png"))
    chosen = [images[0], images[-1]]  # a cat and a dog
    not_an_image = tmp_path / "holiday.png"
    not_an_image.write_text("this is a text file with an image's name")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 820, "height": 640})
            page.goto(url)
            page.wait_for_function("document.getElementById('model').textContent.includes('tflite')")
            assert "classes: cat, dog" in page.inner_text("#model")

            shown = {}
            for image in chosen:
                page.set_input_files("#files", str(image))
                card = page.locator(f".result[data-file='{image.name}'][data-status='done']")
                card.wait_for(timeout=60_000)
                rows = card.locator(".row")
                shown[image] = {
                    rows.nth(i).get_attribute("data-class"): (
                        float(rows.nth(i).get_attribute("data-probability")),
                        rows.nth(i).locator(".probability").inner_text(),
                    )
                    for i in range(rows.count())
                }

            page.set_input_files("#files", str(not_an_image))
            error = page.locator(".result[data-file='holiday.png'][data-status='error'] .error")
            error.wait_for(timeout=60_000)
            assert error.inner_text().startswith("Expected an image") and "holiday.png" in error.inner_text()

            page.set_input_files("#files", str(chosen[0]))  # the server still answers
            page.locator(".result[data-status='done']").nth(2).wait_for(timeout=60_000)

            screenshot = tmp_path / "demo.png"
            page.screenshot(path=str(screenshot), full_page=True)
            if os.environ.get("KERASDL_DEMO_SCREENSHOT"):
                shutil.copy(screenshot, os.environ["KERASDL_DEMO_SCREENSHOT"])

            page.check("#heatmaps")  # each classified image under its Grad-CAM heatmap, then back
            page.wait_for_function(
                "[...document.querySelectorAll(\".result[data-status='done']\")].every(card =>"
                " card.dataset.heatmap === 'done' && card.querySelector('img').src.startsWith('data:image/png'))",
                timeout=60_000)
            page.uncheck("#heatmaps")
            assert page.locator(".result[data-status='done'] img").first.get_attribute("src").startswith("blob:")
        finally:
            browser.close()

    model = run_dir / "export" / "model.tflite"
    for image, classes in shown.items():
        expected = predicted_by_cli(model, image, tmp_path / f"{image.stem}.csv")
        assert set(classes) == set(expected)
        for name, (probability, text) in classes.items():
            assert probability == pytest.approx(expected[name], abs=1e-6), (image.name, name)
            assert float(text) == pytest.approx(expected[name], abs=5.1e-5), (image.name, name, text)
            assert re.fullmatch(r"[01]\.\d{4}", text)
