"""`fk datasets review` at LPFF's size: time to first paint, time until the page is usable, JS heap
and images fetched, for 20,000 generated faces in headless Chromium (needs chromium, chromedriver
and selenium; `.ci/run` installs them).

    .venv/bin/python bench/bench_review_page.py [--faces 20000] [--page OLD_PAGE.html]

``--page`` serves another version of review_page.html (e.g. ``git show 18c8066:packages/
plugin-datasets/src/fk_datasets/review_page.html > /tmp/old.html``, the page that put every
face in the document at once) for the figures side by side.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
import warnings
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=20_000)
    ap.add_argument("--page", type=Path, default=None)
    args = ap.parse_args()
    import fk_datasets.review as review
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_path = shutil.which("chromedriver")
    with tempfile.TemporaryDirectory(prefix="fk-review-") as tmp:
        root = Path(tmp)
        debug = root / "realign" / "debug"
        debug.mkdir(parents=True)
        Image.new("RGB", (672, 224), (120, 90, 60)).save(root / "panel.png")
        for i in range(args.faces):
            os.link(root / "panel.png", debug / f"{i:05d}_01.png")
        state = review.ReviewState(root)
        fetched = []
        real_image = state.image
        state.image = lambda kind, face: (fetched.append(face), real_image(kind, face))[1]
        if args.page:
            original = Path.read_text
            page_file = Path(review.__file__).with_name("review_page.html")
            Path.read_text = lambda self, *a, **k: (
                args.page.read_text(*a, **k) if self == page_file else original(self, *a, **k)
            )
        server = review.make_server(state)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        opts = webdriver.ChromeOptions()
        opts.binary_location = browser
        for flag in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1200,900",
            "--enable-precise-memory-info",
            f"--user-data-dir={root / 'profile'}",
        ):
            opts.add_argument(flag)
        driver = webdriver.Chrome(service=Service(driver_path), options=opts)
        with warnings.catch_warnings():  # deprecated spelling, but the one every selenium 4 has
            warnings.simplefilter("ignore", DeprecationWarning)
            driver.command_executor.set_timeout(60)  # a hung page answers no WebDriver command
        try:
            t0 = time.perf_counter()
            driver.get(f"http://127.0.0.1:{server.server_address[1]}/")
            while driver.execute_script("return document.body.dataset.ready") != "1":
                time.sleep(0.05)
            ready = time.perf_counter() - t0
            time.sleep(2)  # let visible images arrive
            paint = driver.execute_script(
                "const e = performance.getEntriesByName('first-contentful-paint')[0];"
                " return e ? e.startTime : null"
            )
            heap = driver.execute_script(
                "return performance.memory ? performance.memory.usedJSHeapSize : null"
            )
            nodes = driver.execute_script("return document.getElementsByTagName('*').length")
            images = driver.execute_script("return document.images.length")
        except Exception as exc:  # noqa: BLE001 - the figure is that it hung
            print(f"review page, {args.faces} faces: the browser stopped answering "
                  f"({type(exc).__name__} after {time.perf_counter() - t0:.0f} s); "
                  f"{len(fetched)} images fetched by then")
            return
        finally:
            try:
                driver.quit()
            except Exception:  # noqa: BLE001
                pass
            server.shutdown()
    print(
        f"review page, {args.faces} faces, load average {os.getloadavg()[0]:.1f} (shared machine: contended)"
    )
    print(
        f"  first contentful paint   {paint:.0f} ms" if paint is not None else "  first paint: not reported"
    )
    print(f"  usable (cards rendered)  {ready * 1000:.0f} ms")
    print(f"  JS heap                  {heap / 2**20:.1f} MiB" if heap else "  JS heap: not reported")
    print(f"  DOM elements {nodes}, <img> in the document {images}, images fetched {len(fetched)}")


if __name__ == "__main__":
    main()
