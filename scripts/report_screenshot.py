"""A screenshot of a report.html, for the README (docs/report.png).

    selfplay report runs/climb-demo --out /tmp/report.html
    python scripts/report_screenshot.py /tmp/report.html --out docs/report.png

Drives Debian's chromium (``apt-get install chromium``) headless through Playwright
(``pip install -e '.[browser]'``); nothing downloads a browser. The page is opened from the file
(report.html needs no server), at a fixed viewport, and its top ``--height`` pixels are saved.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/report.png"))
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=1400)
    args = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("report_screenshot: Debian's chromium is not installed (apt-get install chromium)")
    if not args.html.is_file():
        sys.exit(f"report_screenshot: {args.html}: no such file")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sys.exit("report_screenshot: needs Playwright: pip install -e '.[browser]'")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": args.width, "height": args.height})
        page.goto(args.html.resolve().as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(args.out), full_page=False)
        browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
