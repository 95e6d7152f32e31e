"""Renders an HTML page in headless Chromium and reads its scroll width.

A report is readable at 1280 px only if the page does not scroll sideways:
``document.documentElement.scrollWidth`` at a 1280 px window says so. The
page is copied with a small script appended that writes the number into the
DOM after layout; ``--dump-dom`` prints the DOM once the page has loaded.
"""

import pathlib
import re
import shutil
import subprocess

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
PROBE = ("<script>window.addEventListener('load', () => {"
         "const p = document.createElement('pre');"
         "p.textContent = 'KC_SCROLL_WIDTH=' + document.documentElement.scrollWidth;"
         "document.body.appendChild(p);});</script>")


def chromium_binary() -> str:
    """The first Chromium found on PATH; skips the test when there is none."""
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("needs a headless Chromium on PATH to measure the page's width "
                f"(none of {', '.join(NAMES)} found; e.g. `apt-get install chromium`)")


def scroll_width(html_path, width: int = 1280) -> int:
    """The page's scroll width in CSS px when shown in a ``width`` px window."""
    binary = chromium_binary()
    html_path = pathlib.Path(html_path)
    probe = html_path.with_name(html_path.stem + "_probe.html")
    probe.write_text(html_path.read_text(encoding="utf-8") + PROBE, encoding="utf-8")
    try:
        proc = subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--window-size={width},900", "--virtual-time-budget=5000", "--dump-dom",
             probe.resolve().as_uri()],
            capture_output=True, text=True, timeout=60)
    finally:
        probe.unlink()
    found = re.search(r"KC_SCROLL_WIDTH=(\d+)", proc.stdout)
    assert found, f"Chromium printed no width (exit {proc.returncode}): {proc.stderr[-1000:]}"
    return int(found.group(1))


def dump_dom(html_path, fragment: str = "", probe: str = "", width: int = 1280,
             budget_ms: int = 5000, real_time: bool = False) -> str:
    """The DOM of ``html_path#fragment`` after the page (and ``probe``, a
    script appended to a copy of the page beside it) has run.

    ``real_time`` lets the page run for ``budget_ms`` of wall-clock time
    (its own ``performance.now()`` readings are then real); otherwise time
    is virtual and runs only while something waits, which is faster and
    deterministic.
    """
    binary = chromium_binary()
    html_path = pathlib.Path(html_path)
    page = html_path.with_name(html_path.stem + "_probe.html")
    page.write_text(html_path.read_text(encoding="utf-8") + probe, encoding="utf-8")
    timing = [f"--timeout={budget_ms}"] if real_time else [f"--virtual-time-budget={budget_ms}"]
    try:
        proc = subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--disable-background-networking", "--disable-component-update", "--no-first-run",
             f"--window-size={width},900", *timing, "--dump-dom",
             page.resolve().as_uri() + (f"#{fragment}" if fragment else "")],
            capture_output=True, text=True, timeout=120)
    finally:
        page.unlink()
    assert "<body" in proc.stdout, f"Chromium printed no DOM (exit {proc.returncode}): " \
                                   f"{proc.stderr[-1000:]}"
    return proc.stdout
