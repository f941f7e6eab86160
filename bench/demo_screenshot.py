"""The screenshot of `kerasdl demo` in README (bench/demo.png).

Starts `kerasdl demo RUN_DIR --port 0`, opens the page in headless Chromium
(Debian's `chromium`, driven by Playwright), uploads the given images through
the file picker, waits for their results and saves a PNG of the page.

Usage (from the folder that holds runs/quickstart, so the page names it so):
    python bench/demo_screenshot.py runs/quickstart IMAGE... --output bench/demo.png
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--output", type=Path, default=Path("demo.png"))
    parser.add_argument("--width", type=int, default=760)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    process = subprocess.Popen([sys.executable, "-m", "kerasdl.cli", "demo", args.run_dir, "--port", "0"],
                               stdout=subprocess.PIPE, text=True)
    try:
        url = None
        for line in process.stdout:
            found = re.search(r"Open (http://\S+/)", line)
            if found:
                url = found.group(1)
                break
        if url is None:
            raise SystemExit("kerasdl demo did not start")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                                 args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": args.width, "height": 400})
            page.goto(url)
            page.wait_for_function("!document.getElementById('model').textContent.startsWith('Loading')")
            for count, image in enumerate(args.images, start=1):
                page.set_input_files("#files", str(image))
                page.locator(".result[data-status]").nth(count - 1).wait_for()
                page.wait_for_function(f"document.querySelectorAll('.result[data-status]').length >= {count}")
            page.screenshot(path=str(args.output), full_page=True)
            browser.close()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    print(f"Wrote {args.output} ({args.output.stat().st_size / 1e3:.0f} KB)")


if __name__ == "__main__":
    main()
