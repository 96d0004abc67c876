"""`rackctl status` as a command: read, compare, show; once or `--watch`.

Exit codes: 0 the rack matches its code, 1 drift, 2 the cluster could not be read (or bad input,
which rackctl's main turns into one line). Under --watch the code is the last refresh's.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Optional

from rackctl import stackfiles, status, status_views

CLEAR = "\x1b[H\x1b[2J"


def _write_page(out: Path, page: str) -> None:
    """Write the page at `out`, replacing only a page rackctl status wrote before."""
    if out.is_dir():
        raise status.StatusError(f"--out {out} is a directory; give a file name such as {out}/rack.html")
    if out.exists() and status_views.GENERATOR not in out.read_text(errors="replace")[:4096]:
        raise status.StatusError(f"--out {out} exists and was not written by rackctl status; give a new file name")
    tmp = out.with_name(f".{out.name}.rackctl-tmp")
    tmp.write_text(page)
    tmp.replace(out)


def run(stack: str, config_dir: Path, kubeconfig: Optional[str], fmt: str, out: Optional[str], watch: bool,
        interval: float) -> int:
    if out and fmt != "html":
        raise status.StatusError("--out is for --format html; text and json go to stdout")
    if interval <= 0:
        raise status.StatusError(f"--interval: expected a number of seconds above 0, got {interval:g}")
    rack = stackfiles.settings_for(stack, config_dir)  # an unknown or bad stack stops here, before any cluster
    swarming = rack.enabled("swarming")
    colour = fmt == "text" and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    code = 0
    try:
        while True:
            try:
                nodes, pods = status.read_cluster(stack, kubeconfig, swarming)
            except status.StatusError as e:
                if not watch:
                    raise
                print(f"{CLEAR if colour else ''}rackctl: {e} (retrying in {interval:g}s)", flush=True)
                code = 2
            else:
                current = status.compute(rack, nodes, pods, status.now())
                code = 1 if current.drift else 0
                if fmt == "html":
                    page = status_views.as_html(current, refresh=int(interval) if watch else None)
                    if out:
                        _write_page(Path(out), page)
                    else:
                        print(page, end="", flush=True)
                elif fmt == "json":
                    print(status_views.as_json_text(current, compact=watch), end="", flush=True)
                else:
                    print((CLEAR if colour and watch else "") + status_views.as_text(current, colour), end="",
                          flush=True)
            if not watch:
                return code
            time.sleep(interval)
    except KeyboardInterrupt:
        return code
