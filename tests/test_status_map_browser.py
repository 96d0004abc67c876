"""The status map's HTML page in a real browser: Debian's Chromium, headless, takes a screenshot of
rack1 as tests/cluster_docs.py describes it, and the test counts the cells it finds in the pixels
(each cell's coloured top bar), per colour. Skipped with the reason where Chromium is missing;
required in CI. UPDATE_SCREENSHOT=1 also writes the screenshot to docs/status-map.png (the README's).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path


from rackctl import status, status_views
from tests import cluster_docs as docs
from tests.ci import cannot_run
from tests.conftest import ROOT
from tests.test_rackctl_status import rack1

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM:
    cannot_run("the status map browser test needs chromium (apt-get install chromium)", module=True)

# The top bar of a cell, by severity: the page's CSS colours (rackctl/status_views.py).
BARS = {(0x1A, 0x7F, 0x37): "ok", (0xBF, 0x87, 0x00): "out", (0xCF, 0x22, 0x2E): "problem", (0x82, 0x50, 0xDF): "unknown"}
BAR_HEIGHT = 6


def screenshot(page: str, tmp: Path, size: str = "1100,1000") -> Path:
    html, png = tmp / "rack1.html", tmp / "rack1.png"
    html.write_text(page)
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--force-device-scale-factor=1", f"--user-data-dir={tmp / 'profile'}", f"--window-size={size}",
         f"--screenshot={png}", html.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert png.exists(), result.stderr[-2000:]
    return png


def cells(png: Path) -> Counter:
    """Cells drawn, by severity: the top-left pixel of each bar exactly BAR_HEIGHT tall (the legend's
    squares are taller, text never has these colours)."""
    from PIL import Image

    image = Image.open(png).convert("RGB")
    width, height = image.size
    px = image.load()
    found: Counter = Counter()
    for y in range(1, height - BAR_HEIGHT):
        for x in range(1, width):
            colour = px[x, y]
            if colour in BARS and px[x - 1, y] != colour and px[x, y - 1] != colour \
                    and px[x, y + BAR_HEIGHT - 1] == colour and px[x, y + BAR_HEIGHT] != colour:
                found[BARS[colour]] += 1
    return found


def test_the_page_renders_one_cell_per_pi_in_its_colour(tmp_path):
    rack = rack1()
    nodes, pods = docs.described_rack1(rack, rack.images.swarming)
    page = status_views.as_html(status.compute(rack, nodes, pods, docs.NOW))
    png = screenshot(page, tmp_path)
    assert cells(png) == Counter({"ok": 73, "out": 1, "problem": 6, "unknown": 1})
    if os.environ.get("UPDATE_SCREENSHOT"):
        shutil.copy(png, ROOT / "docs" / "status-map.png")
