"""The screenshot of a run's report.md in README (bench/report.png).

Renders RUN_DIR/report.md to HTML with Python-Markdown (its tables and
pictures included, read from the run folder) and photographs the page with
headless Chromium through Playwright, as `demo_screenshot.py` does.

Usage (needs `pip install markdown playwright` and Debian's chromium):
    python bench/report_screenshot.py runs/quickstart --output bench/report.png
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

STYLE = """
body { font-family: sans-serif; max-width: 900px; margin: 24px auto; font-size: 14px; color: #222; }
table { border-collapse: collapse; margin: 8px 0; }
td, th { border: 1px solid #ccc; padding: 3px 8px; }
img { max-width: 420px; margin: 4px; vertical-align: top; }
code { background: #f3f3f3; padding: 1px 3px; }
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--output", type=Path, default=Path("report.png"))
    parser.add_argument("--width", type=int, default=960)
    parser.add_argument("--height", type=int, default=1500, help="Height of the picture (the page's top).")
    args = parser.parse_args()

    import markdown
    from playwright.sync_api import sync_playwright

    body = markdown.markdown((args.run_dir / "report.md").read_text(), extensions=["tables", "fenced_code"])
    with tempfile.TemporaryDirectory() as folder:
        page_path = Path(folder) / "report.html"
        # The report names its pictures relative to the run folder.
        for picture in args.run_dir.glob("*.png"):
            shutil.copy(picture, Path(folder) / picture.name)
        page_path.write_text(f"<html><head><style>{STYLE}</style></head><body>{body}</body></html>")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"))
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.goto(page_path.as_uri())
            page.screenshot(path=str(args.output))
            browser.close()
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    main()
