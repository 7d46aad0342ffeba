"""Open an HTML page in headless Chromium (Debian's ``chromium`` package), offline.

:func:`check_page` loads a copy of the page with a small script that, once the page has loaded,
records for every ``<img>`` whether it decoded (``complete`` and ``naturalWidth > 0``); Chromium's
``--dump-dom`` prints the resulting DOM, which is parsed here. It also lists every ``src`` and
``href`` of the page whose local target is missing, and takes a full-page screenshot.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

CANDIDATES = ("chromium", "chromium-browser", "/usr/bin/chromium")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--allow-file-access-from-files")
PROBE = """<script>
window.addEventListener("load", function () {
  var rows = Array.prototype.map.call(document.images, function (img) {
    return [img.getAttribute("src"), img.complete && img.naturalWidth > 0, img.naturalWidth];
  });
  document.body.setAttribute("data-image-check", JSON.stringify(rows));
});
</script>"""


def chromium() -> str | None:
    """Path of the Chromium executable, or None when it is not installed."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(browser: str, args: list[str], timeout: float) -> str:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        out = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                             text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"chromium failed ({out.returncode}): {out.stderr[-2000:]}")
    return out.stdout


def check_page(page: Path, screenshot: Path, *, width: int = 1200, height: int = 4000,
               timeout: float = 180.0) -> dict:
    """Render ``page`` and report what loaded.

    Returns ``{"images": [(src, loaded, natural width)], "missing": [targets not found],
    "external": [links to other hosts]}`` and writes ``screenshot`` (PNG).
    """
    browser = chromium()
    if browser is None:
        raise RuntimeError("chromium is not installed")
    page = Path(page).resolve()
    text = page.read_text()
    probe = page.with_name(f".{page.stem}-probe.html")
    probe.write_text(text.replace("</body>", PROBE + "</body>"))
    try:
        dom = _run(browser, ["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], timeout)
    finally:
        probe.unlink(missing_ok=True)
    match = re.search(r'data-image-check="([^"]*)"', dom)
    if match is None:
        raise RuntimeError("the page's load event never ran (no image check in the DOM)")
    images = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    missing, external = [], []
    for target in re.findall(r'(?:src|href)="([^"]+)"', text):
        url = urlparse(target)
        if url.scheme in ("http", "https"):
            external.append(target)
        elif url.scheme in ("", "file") and not target.startswith("#"):
            path = Path(unquote(url.path))
            if not (path if path.is_absolute() else page.parent / path).is_file():
                missing.append(target)
    _run(browser, [f"--window-size={width},{height}", f"--screenshot={Path(screenshot).resolve()}",
                   page.as_uri()], timeout)
    return {"images": images, "missing": missing, "external": external}
